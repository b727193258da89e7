# hyperbench: `make run` sets up and runs the main job, `make test` runs the tests.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
EPOCHS ?= 20
# Seed 001 table budget: epochs per row, chosen to fit about 35 minutes for all six rows on 2 shared CPU cores.
INVARIANCE_EPOCHS ?= 1
STAMP := $(shell date +%Y-%m-%d_%H-%M-%S)

# Offline datasets: use ../shared/data when it sits beside the checkout (as on CI).
ifneq ($(wildcard ../shared/data),)
export HYPERBENCH_DATA ?= $(abspath ../shared/data)
endif

.PHONY: install run test summary table-mnist lr-grid-mnist table-cifar table-invariance bench clean

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

clean:
	rm -rf .pytest_cache build *.egg-info
