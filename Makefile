# hyperbench: `make run` sets up and runs the main job, `make test` runs the tests.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
EPOCHS ?= 20
# Seed 001 table budget: epochs per row (3: the six CNN rows took 20 minutes on 2 CPU cores, capsnet 48 minutes, README).
INVARIANCE_EPOCHS ?= 3
# Seeds 000/001 "Generation" budget, the same for all four models: one pass over TRANSFORM_TRAIN_SIZE training
# pairs (312 steps of 128). make curves-transform took 8 min 54 s with it on 2 shared CPU cores (the shallow
# HyperNet 6.5 min of that); see README "Learning transformations".
TRANSFORM_EPOCHS ?= 1
TRANSFORM_TRAIN_SIZE ?= 40000
TRANSFORM_ARGS ?=
STAMP := $(shell date +%Y-%m-%d_%H-%M-%S)
TRANSFORM_SWEEP ?= outputs/sweeps/$(STAMP)_curves-transform
# Seed 000 "Compensation of Transformations": the same budget as curves-transform by default (README).
COMPENSATE_EPOCHS ?= $(TRANSFORM_EPOCHS)
COMPENSATE_TRAIN_SIZE ?= $(TRANSFORM_TRAIN_SIZE)
COMPENSATE_ARGS ?=
COMPENSATE_SWEEP ?= outputs/sweeps/$(STAMP)_curves-compensate
# Continual-learning table budget (docs/continual.md): epochs per task on each benchmark, all methods, seeds 0-2.
CONTINUAL_SPLIT_EPOCHS ?= 2
CONTINUAL_PERMUTED_EPOCHS ?= 1
CONTINUAL_SWEEP ?= outputs/sweeps/$(STAMP)_table-continual

# Offline datasets: use ../shared/data when it sits beside the checkout (as on CI).
ifneq ($(wildcard ../shared/data),)
export HYPERBENCH_DATA ?= $(abspath ../shared/data)
endif

.PHONY: install run test summary table-mnist lr-grid-mnist table-cifar table-invariance curves-transform curves-compensate table-continual bench clean

install: $(VENV)/.installed

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev,cluster]'
	touch $@

## The main job: seed-002 Hyper5_5 on MNIST with the paper recipe, EPOCHS epochs.
run: install
	$(BIN)/hyperbench model=hyper5_5 data=mnist trainer.epochs=$(EPOCHS)

## The test suite (a few minutes on 2 CPU cores).
test: install
	$(BIN)/pytest -q

summary: install
	$(BIN)/hyperbench task=summary model=hyper5_5 data=mnist

## Seed 002 Table 2: the nine MNIST rows, then the report beside the published numbers.
table-mnist: install
	$(BIN)/hyperbench -m experiment=table_mnist trainer.epochs=$(EPOCHS) hydra.sweep.dir=outputs/sweeps/$(STAMP)_table-mnist
	$(BIN)/hyperbench-report outputs/sweeps/$(STAMP)_table-mnist

## Seed 002 appendix Tables 6-7: each model at lr 0.003, 0.004, 0.005.
lr-grid-mnist: install
	$(BIN)/hyperbench -m experiment=lr_grid_mnist trainer.epochs=$(EPOCHS) hydra.sweep.dir=outputs/sweeps/$(STAMP)_lr-grid-mnist
	$(BIN)/hyperbench-report outputs/sweeps/$(STAMP)_lr-grid-mnist

## Seed 002 Tables 3-5: VGG-Block1/2/3 ConvModel and HyperA_B rows on CIFAR-10 (15 runs), then the report.
table-cifar: install
	$(BIN)/hyperbench -m experiment=table_cifar trainer.epochs=$(EPOCHS) hydra.sweep.dir=outputs/sweeps/$(STAMP)_table-cifar
	$(BIN)/hyperbench-report outputs/sweeps/$(STAMP)_table-cifar

## Seed 001 "Recognition": Ptest/P34in/Pout/Pinv of the six CNN rows, then the report (one table, one figure).
table-invariance: install
	$(BIN)/hyperbench -m experiment=table_invariance trainer.epochs=$(INVARIANCE_EPOCHS) hydra.sweep.dir=outputs/sweeps/$(STAMP)_table-invariance
	$(BIN)/hyperbench-report outputs/sweeps/$(STAMP)_table-invariance

## Issue 9 benchmark: hyperbench's pipeline vs torchvision + DataLoader, GFLOP/s, batched rotation (not a test).
bench: install
	$(BIN)/python benchmarks/bench.py $(BENCH_ARGS)

## Seeds 000/001 "Generation": ae, aae, shallow and deep HyperNet learn rotation under rotation=seed000 on one
## budget; each is then evaluated on the rendered symbols; the report overlays the digit-4 loss-vs-angle curves.
curves-transform: install
	$(BIN)/hyperbench -m experiment=curves_transform trainer.epochs=$(TRANSFORM_EPOCHS) data.train_size=$(TRANSFORM_TRAIN_SIZE) $(TRANSFORM_ARGS) hydra.sweep.dir=$(TRANSFORM_SWEEP)
	for run in $(TRANSFORM_SWEEP)/[0-9]*_*/; do \
	  $(BIN)/hyperbench task=transform eval.run=$$run eval.images=symbols hydra.run.dir=$(TRANSFORM_SWEEP)/transfer_symbols/$$(basename $$run) || exit 1; \
	done
	$(BIN)/hyperbench-report $(TRANSFORM_SWEEP)

## Seed 000 "Compensation of Transformations": the deep HyperNet (control network fed the rotated image) and the
## plain autoencoder normalise rotated digits on one budget; transfer to the rendered symbols; the report overlays
## their digit-4 curves and tabulates the 6/9 figure.
curves-compensate: install
	$(BIN)/hyperbench -m experiment=curves_compensate trainer.epochs=$(COMPENSATE_EPOCHS) data.train_size=$(COMPENSATE_TRAIN_SIZE) $(COMPENSATE_ARGS) hydra.sweep.dir=$(COMPENSATE_SWEEP)
	for run in $(COMPENSATE_SWEEP)/[0-9]*_*/; do \
	  $(BIN)/hyperbench task=compensate eval.run=$$run eval.images=symbols hydra.run.dir=$(COMPENSATE_SWEEP)/transfer_symbols/$$(basename $$run) || exit 1; \
	done
	$(BIN)/hyperbench-report $(COMPENSATE_SWEEP)

## Continual learning (von Oswald et al., "Continual learning with hypernetworks"): finetune, ewc, si, hnet, joint
## on split_mnist and permuted_mnist, 3 seeds each, then the report beside the published table (docs/continual.md).
table-continual: install
	$(BIN)/hyperbench -m experiment=table_continual data=split_mnist trainer.epochs=$(CONTINUAL_SPLIT_EPOCHS) hydra.sweep.dir=$(CONTINUAL_SWEEP)/split_mnist
	$(BIN)/hyperbench -m experiment=table_continual data=permuted_mnist trainer.epochs=$(CONTINUAL_PERMUTED_EPOCHS) hydra.sweep.dir=$(CONTINUAL_SWEEP)/permuted_mnist
	$(BIN)/hyperbench-report $(CONTINUAL_SWEEP)

clean:
	rm -rf .pytest_cache build *.egg-info
