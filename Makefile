# hyperbench: `make run` sets up and runs the main job, `make test` runs the tests.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# CONSTRAINTS="-c constraints.txt": install the exact versions the recorded results were measured with
CONSTRAINTS ?=
EPOCHS ?= 20
# Invariance study (Potapov, "Can Deep Networks Learn Invariants?"): epochs per row (the time each row takes:
# docs/studies/invariance.md).
INVARIANCE_EPOCHS ?= 3
# Learning transformations (Potapov's SingularityNET articles), the same budget for all four models: one pass over
# TRANSFORM_TRAIN_SIZE training pairs (312 steps of 128); its measured wall time is in
# docs/studies/transformations.md.
TRANSFORM_EPOCHS ?= 1
TRANSFORM_TRAIN_SIZE ?= 40000
TRANSFORM_ARGS ?=
STAMP := $(shell date +%Y-%m-%d_%H-%M-%S)
TRANSFORM_SWEEP ?= outputs/sweeps/$(STAMP)_curves-transform
# Rotation compensation (Potapov, "Just Deep is too Flat"): the same budget as curves-transform by default
# (docs/studies/compensation.md).
COMPENSATE_EPOCHS ?= $(TRANSFORM_EPOCHS)
COMPENSATE_TRAIN_SIZE ?= $(TRANSFORM_TRAIN_SIZE)
COMPENSATE_ARGS ?=
COMPENSATE_SWEEP ?= outputs/sweeps/$(STAMP)_curves-compensate
# Continual-learning table budget (docs/continual.md): epochs per task on each benchmark, all methods, seeds 0-2.
CONTINUAL_SPLIT_EPOCHS ?= 2
CONTINUAL_PERMUTED_EPOCHS ?= 1
CONTINUAL_SWEEP ?= outputs/sweeps/$(STAMP)_table-continual

# Data root: HYPERBENCH_DATA from your environment; CI keeps the datasets in a shared folder beside the checkout.
ifneq ($(wildcard ../shared/data),)
export HYPERBENCH_DATA ?= $(abspath ../shared/data)
endif

.PHONY: install run test test-fast summary table-mnist lr-grid-mnist table-cifar table-invariance curves-transform curves-compensate table-continual bench gpu-check clean

install: $(VENV)/.installed

$(VENV)/.installed: setup.cfg pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(CONSTRAINTS) -e '.[dev,cluster,equivariant]'
	touch $@

## The main job: Hyper5_5 on MNIST with the recipe of Vineet's CS618 report, EPOCHS epochs.
run: install
	$(BIN)/hyperbench model=hyper5_5 data=mnist trainer.epochs=$(EPOCHS)

## The test suite, both tiers: the fast in-process tests and the slow ones that run the hyperbench command.
## One pytest-xdist worker per core (TEST_WORKERS), one thread each: most of the time is single-threaded work
## (interpreter start-up, small ops), so the cores serve separate test files (each module's fixtures built once).
TEST_WORKERS ?= auto
PYTEST_PARALLEL = OMP_NUM_THREADS=1 $(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadfile
test: install
	$(PYTEST_PARALLEL)

## The fast tier only (in-process: configs, validation messages, models, metrics, geometry), for the edit loop.
test-fast: install
	$(PYTEST_PARALLEL) -m "not slow"

summary: install
	$(BIN)/hyperbench task=summary model=hyper5_5 data=mnist

## Table 2 of Vineet's CS618 report: the nine MNIST rows, then the report beside the published numbers.
table-mnist: install
	$(BIN)/hyperbench -m experiment=table_mnist trainer.epochs=$(EPOCHS) hydra.sweep.dir=outputs/sweeps/$(STAMP)_table-mnist
	$(BIN)/hyperbench-report outputs/sweeps/$(STAMP)_table-mnist

## Appendix Tables 6-7 of Vineet's CS618 report: each model at lr 0.003, 0.004, 0.005.
lr-grid-mnist: install
	$(BIN)/hyperbench -m experiment=lr_grid_mnist trainer.epochs=$(EPOCHS) hydra.sweep.dir=outputs/sweeps/$(STAMP)_lr-grid-mnist
	$(BIN)/hyperbench-report outputs/sweeps/$(STAMP)_lr-grid-mnist

## Tables 3-5 of Vineet's CS618 report: VGG-Block1/2/3 ConvModel and HyperA_B rows on CIFAR-10 (15 runs), then the report.
table-cifar: install
	$(BIN)/hyperbench -m experiment=table_cifar trainer.epochs=$(EPOCHS) hydra.sweep.dir=outputs/sweeps/$(STAMP)_table-cifar
	$(BIN)/hyperbench-report outputs/sweeps/$(STAMP)_table-cifar

## Invariance study (Potapov, "Can Deep Networks Learn Invariants?", "Recognition"): Ptest/P34in/Pout/Pinv of the
## six CNN rows, then the report (one table, one figure).
table-invariance: install
	$(BIN)/hyperbench -m experiment=table_invariance trainer.epochs=$(INVARIANCE_EPOCHS) hydra.sweep.dir=outputs/sweeps/$(STAMP)_table-invariance
	$(BIN)/hyperbench-report outputs/sweeps/$(STAMP)_table-invariance

## Benchmark: hyperbench's pipeline vs torchvision + DataLoader, GFLOP/s, batched rotation, then every model family's
## training step against the measured matmul and memory-copy limits (not a test; docs/performance.md).
## BENCH_FAMILIES=all|none|conv,capsnet,...  BENCH_STEPS: timed steps per family.
BENCH_FAMILIES ?= all
BENCH_STEPS ?= 3
bench: install
	$(BIN)/python benchmarks/bench.py --families $(BENCH_FAMILIES) --steps $(BENCH_STEPS) $(BENCH_ARGS)

## Whenever a GPU is at hand: every task and model family a few hundred steps in fp32, bf16 and compiled, metrics
## checked against fp32, images/s and peak memory, a markdown summary (docs/gpu.md). Without a GPU: says so, exits 0.
gpu-check: install
	$(BIN)/python benchmarks/gpu_check.py $(GPU_CHECK_ARGS)

## Learning transformations (Potapov's SingularityNET articles): ae, aae, shallow and deep HyperNet learn rotation under rotation=restricted49 on one
## budget; each is then evaluated on the rendered symbols; the report overlays the digit-4 loss-vs-angle curves.
curves-transform: install
	$(BIN)/hyperbench -m experiment=curves_transform trainer.epochs=$(TRANSFORM_EPOCHS) data.train_size=$(TRANSFORM_TRAIN_SIZE) $(TRANSFORM_ARGS) hydra.sweep.dir=$(TRANSFORM_SWEEP)
	for run in $(TRANSFORM_SWEEP)/[0-9]*_*/; do \
	  $(BIN)/hyperbench task=transform eval.run=$$run eval.images=symbols hydra.run.dir=$(TRANSFORM_SWEEP)/transfer_symbols/$$(basename $$run) || exit 1; \
	done
	$(BIN)/hyperbench-report $(TRANSFORM_SWEEP)

## Rotation compensation (Potapov, "Just Deep is too Flat"): the deep HyperNet (control network fed the rotated image) and the
## plain autoencoder normalise rotated digits on one budget; transfer to the rendered symbols; the report overlays
## their digit-4 curves and tabulates the 6/9 figure.
curves-compensate: install
	$(BIN)/hyperbench -m experiment=curves_compensate trainer.epochs=$(COMPENSATE_EPOCHS) data.train_size=$(COMPENSATE_TRAIN_SIZE) $(COMPENSATE_ARGS) hydra.sweep.dir=$(COMPENSATE_SWEEP)
	for run in $(COMPENSATE_SWEEP)/[0-9]*_*/; do \
	  $(BIN)/hyperbench task=compensate eval.run=$$run eval.images=symbols hydra.run.dir=$(COMPENSATE_SWEEP)/transfer_symbols/$$(basename $$run) || exit 1; \
	done
	$(BIN)/hyperbench-report $(COMPENSATE_SWEEP)

## Verdicts at real budgets: the long runs behind each study's verdict, each budget a variable. The defaults are
## the budgets run on a 2-core CPU; on a GPU set the sources' (transformations: 100,000 steps of 128 = 233 epochs
## of the 55,000-image split; invariance: 300 epochs). Fixed sweep folders: rerun with REPRO_ARGS=trainer.resume=true
## to continue an interrupted target. Each ends with hyperbench-report, whose first table is the verdicts.
REPRO_DIR ?= outputs/reproduce
REPRO_ARGS ?=
REPRO_SEEDS ?= 0
# deep HyperNet 47 x 429 = 20,163 steps; autoencoder 12 x 429 = 5,148
REPRO_DEEP_EPOCHS ?= 47
REPRO_AE_EPOCHS ?= 12
REPRO_SHALLOW_EPOCHS ?= 12
REPRO_INVARIANCE_EPOCHS ?= 20
REPRO_INVARIANCE_SEEDS ?= 0,1
REPRO_CIFAR1_EPOCHS ?= 100
REPRO_CIFAR2_EPOCHS ?= 60
REPRO_SHIFT_EPOCHS ?= 5
# the autoencoder with the semantic-vision code's recipe (TensorFlow initialisation and RMSProp): with PyTorch's
# defaults it collapses to the all-background output on the full split (docs/studies/transformations.md)
REPRO_AE_RECIPE ?= model.init=glorot trainer.optimizer=rmsprop_tf trainer.momentum=0.0
# the deep HyperNet on the 68x68 canvas: with Adam it collapses to an empty canvas (docs/studies/transformations.md)
REPRO_SHIFT_DEEP_RECIPE ?= trainer.optimizer=rmsprop_tf trainer.momentum=0.0

.PHONY: reproduce-transformations reproduce-shift reproduce-invariance reproduce-cifar

reproduce-transformations: install
	$(BIN)/hyperbench -m task=transform model=hypernet_deep seed=$(REPRO_SEEDS) trainer.epochs=$(REPRO_DEEP_EPOCHS) $(REPRO_ARGS) hydra.sweep.dir=$(REPRO_DIR)/transformations/deep
	$(BIN)/hyperbench -m task=transform model=ae seed=$(REPRO_SEEDS) trainer.epochs=$(REPRO_AE_EPOCHS) $(REPRO_AE_RECIPE) $(REPRO_ARGS) hydra.sweep.dir=$(REPRO_DIR)/transformations/ae
	$(BIN)/hyperbench -m task=transform model=hypernet_shallow seed=$(REPRO_SEEDS) trainer.epochs=$(REPRO_SHALLOW_EPOCHS) trainer.fused=true $(REPRO_ARGS) hydra.sweep.dir=$(REPRO_DIR)/transformations/shallow
	for run in $(REPRO_DIR)/transformations/{deep,shallow}/[0-9]*_*/; do \
	  $(BIN)/hyperbench task=transform eval.run=$$run eval.images=symbols hydra.run.dir=$(REPRO_DIR)/transformations/transfer_symbols/$$(basename $$(dirname $$run))_$$(basename $$run) || exit 1; \
	done
	$(BIN)/hyperbench-report $(REPRO_DIR)/transformations

## Shift as the semantic-vision code did it (68x68 canvas, +-20 px): autoencoder vs deep HyperNet.
reproduce-shift: install
	$(BIN)/hyperbench -m task=transform transform=shift68 model=hypernet_deep seed=$(REPRO_SEEDS) trainer.epochs=$(REPRO_SHIFT_EPOCHS) $(REPRO_SHIFT_DEEP_RECIPE) $(REPRO_ARGS) hydra.sweep.dir=$(REPRO_DIR)/shift68/deep
	$(BIN)/hyperbench -m task=transform transform=shift68 model=ae seed=$(REPRO_SEEDS) trainer.epochs=$(REPRO_SHIFT_EPOCHS) $(REPRO_AE_RECIPE) $(REPRO_ARGS) hydra.sweep.dir=$(REPRO_DIR)/shift68/ae
	$(BIN)/hyperbench-report $(REPRO_DIR)/shift68

## Invariance rows at a longer budget, with the rotation-equivariant row beside them.
reproduce-invariance: install
	$(BIN)/hyperbench -m task=invariance model=cnn,cnn_bn_dropout,steerable_cnn seed=$(REPRO_INVARIANCE_SEEDS) trainer.epochs=$(REPRO_INVARIANCE_EPOCHS) $(REPRO_ARGS) hydra.sweep.dir=$(REPRO_DIR)/invariance
	$(BIN)/hyperbench-report $(REPRO_DIR)/invariance

## CIFAR-10: VGG-Block1 ConvModel and Hyper4_4, VGG-Block2 ConvModel and Hyper16_16, until the ConvModels converge.
reproduce-cifar: install
	$(BIN)/hyperbench -m data=cifar10 model=vgg_block1,vgg_block1_hyper4_4 seed=$(REPRO_SEEDS) trainer.epochs=$(REPRO_CIFAR1_EPOCHS) $(REPRO_ARGS) hydra.sweep.dir=$(REPRO_DIR)/cifar/block1
	$(BIN)/hyperbench -m data=cifar10 model=vgg_block2,vgg_block2_hyper16_16 seed=$(REPRO_SEEDS) trainer.epochs=$(REPRO_CIFAR2_EPOCHS) $(REPRO_ARGS) hydra.sweep.dir=$(REPRO_DIR)/cifar/block2
	$(BIN)/hyperbench-report $(REPRO_DIR)/cifar
## Continual learning (von Oswald et al., "Continual learning with hypernetworks"): finetune, ewc, si, hnet, joint
## on split_mnist and permuted_mnist, 3 seeds each, then the report beside the published table (docs/continual.md).
table-continual: install
	$(BIN)/hyperbench -m experiment=table_continual data=split_mnist trainer.epochs=$(CONTINUAL_SPLIT_EPOCHS) hydra.sweep.dir=$(CONTINUAL_SWEEP)/split_mnist
	$(BIN)/hyperbench -m experiment=table_continual data=permuted_mnist trainer.epochs=$(CONTINUAL_PERMUTED_EPOCHS) hydra.sweep.dir=$(CONTINUAL_SWEEP)/permuted_mnist
	$(BIN)/hyperbench-report $(CONTINUAL_SWEEP)

clean:
	rm -rf .pytest_cache build *.egg-info
