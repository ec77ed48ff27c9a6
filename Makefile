# gradpath: `make run` (set-up + the main job) and `make test` (set-up + every check).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
# Three installs into one venv: the library (what the kernels' compile needs),
# the study's libraries (`make run`), then the dev tools and torch on top
# (`make test`); each stamp says its part is in.
CORE_STAMP  := $(VENV)/.core-stamp
STUDY_STAMP := $(VENV)/.study-stamp
DEV_STAMP   := $(VENV)/.dev-stamp
# The versions of what the compile imports, as the library's install left them:
# the later installs run beside the compile (`make test`) and must not change them.
KERNEL_PINS := $(VENV)/kernel-pins.txt
PINNED = $$(cat $(KERNEL_PINS))
CONFIG ?= configs/default.yaml
CORES  ?= 2
REPORT ?= reports/report.html

.PHONY: help setup setup-dev warmup run report demo test lint unit bench bench-peers chromium slurm system readme paper paper-full reseed clean

help:
	@echo "make run    set up (the study's libraries: .[study]), run the default study ($(CONFIG))"
	@echo "            and build $(REPORT)"
	@echo "make test   set up (.[dev] and torch on top), then every check (lint, tests incl. the"
	@echo "            smoke study, benchmarks)"
	@echo "  options: CONFIG=configs/full.yaml CORES=8 REPORT=reports/full.html"
	@echo "make bench  kernel speed targets, and the gate against BENCH_BASE (default HEAD~1)"
	@echo "make bench-peers  gradpath against PyTorch and JAX (installs them into .venv)"
	@echo "make paper  the published results as verdicts (configs/paper.yaml, reports/paper.html)"
	@echo "make reseed the study again with other training seeds (SEEDS=\"11 12 13\")"

# PyTorch, for the oracle test (and the peers), pinned first so that the
# `torch>=2.3` of the dev extra is already met: on the machines this suite is
# built for pip takes this version from a CPU-build wheel on local disk; where
# it comes from PyPI instead, Linux gets a CUDA build of several GB.
TORCH_CPU := 'torch==2.13.0'

# A local virtual environment with the package (editable) and its own
# dependencies (numpy, Numba, SciPy, ...): all the kernels' compile needs.
$(CORE_STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "gradpath needs Python >= 3.11"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	$(BIN)/python -c 'import importlib.metadata as m; print(*(f"{n}=={m.version(n)}" for n in \
	  ("numpy", "numba", "llvmlite", "scipy", "threadpoolctl", "psutil")), sep="\n")' > $(KERNEL_PINS)
	@touch $(CORE_STAMP)

# The study's libraries (the `study` extra): what `make run` needs, no torch, no
# dev tools. The kernel pins are requirements here: an extra that needed another
# numpy or Numba stops pip with a conflict, instead of changing the files of a
# compile that is running.
$(STUDY_STAMP): $(CORE_STAMP)
	$(BIN)/python -m pip install --quiet -e '.[study]' $(PINNED)
	@touch $(STUDY_STAMP)

# On top of it, for `make test`: torch first (TORCH_CPU), then the dev extra
# (the test tools, the SLURM executor) and the peers' JAX, so that the peers'
# tests run instead of skipping; pip adds only what is missing.
$(DEV_STAMP): $(STUDY_STAMP)
	$(BIN)/python -m pip install --quiet $(TORCH_CPU) $(PINNED)
	$(BIN)/python -m pip install --quiet -e '.[dev,peers]' $(PINNED)
	@touch $(DEV_STAMP)

setup: $(STUDY_STAMP)

setup-dev: $(DEV_STAMP)

# Fill Numba's on-disk cache once (a fresh clone compiles, float32 and float64 in two
# processes: 86 s on a 2-core AMD EPYC). It needs the library alone, so the study's
# and the dev tools' installs can run beside it (`make -j`).
warmup: $(CORE_STAMP)
	$(BIN)/python -m gradpath.cli demo --warmup

# The main job: the study from config to report.
run: setup warmup
	$(BIN)/python scripts/unlock_if_stale.py --configfile $(CONFIG)
	$(BIN)/snakemake --profile profiles/local --configfile $(CONFIG) --cores $(CORES)
	$(BIN)/snakemake --profile profiles/local --configfile $(CONFIG) --report $(REPORT)
	@echo
	@echo "Report: $(abspath $(REPORT))  (self-contained; open it in a browser)"

report: setup
	$(BIN)/snakemake --profile profiles/local --configfile $(CONFIG) --report $(REPORT)

# The lecture in one table (gradient norm by lag at initialisation).
demo: warmup
	$(BIN)/gradpath demo

# Debian's Chromium for the report test, when missing: installing it needs root
# (as on CI); without root, say what is needed and stop.
chromium:
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || { \
	  if [ "$$(id -u)" != 0 ]; then \
	    echo "make test needs Chromium for the report test: run as root (it installs"; \
	    echo "Debian's chromium package) or put a chromium on PATH (sudo apt-get install"; \
	    echo "chromium). Without root, plain \`pytest\` runs the rest (docs/testing.md)."; exit 1; fi; \
	  apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; }

lint: setup-dev
	$(BIN)/ruff check .
	$(BIN)/python scripts/lint_workflow.py --configfile configs/smoke.yaml

# Debian's SLURM and MUNGE for the cluster test (tests/local_slurm.py, run by
# tests/test_smoke_study.py), when missing. The test starts SLURM's daemons, which
# needs root: without it, say so now rather than at the end of the suite.
slurm:
	@if [ "$$(id -u)" != 0 ]; then \
	  echo "make test runs a one-node SLURM for the cluster test, which needs root (as on CI):"; \
	  echo "run it as root; it installs Debian's slurmctld, slurmd, slurm-client and munge"; \
	  echo "when they are missing. Without root, plain \`pytest\` runs the rest (docs/testing.md)."; exit 1; fi
	@command -v slurmctld >/dev/null && command -v slurmd >/dev/null && \
	  command -v sbatch >/dev/null && command -v munged >/dev/null || { \
	  apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	    slurmctld slurmd slurm-client munge; }

# Both of the above, one after the other (apt-get holds one lock at a time):
# `make test` runs this beside the set-up and the kernels' compile.
system:
	$(MAKE) --no-print-directory chromium
	$(MAKE) --no-print-directory slurm

# GRADPATH_REQUIRE_ALL=1: a test whose needs are missing (root for SLURM,
# Chromium) fails instead of skipping (tests/needs.py), so nothing is hidden.
# -n auto --dist loadfile: one pytest-xdist worker per core, a file's tests on
# one worker (the smoke study's tests share one build: tests/conftest.py).
unit: setup-dev warmup chromium slurm
	GRADPATH_REQUIRE_ALL=1 $(BIN)/pytest -q -n auto --dist loadfile --no-loadscope-reorder --durations=20

# Kernels against their numpy twin (absolute targets), then head against
# BENCH_BASE (default: the previous commit), paired and interleaved.
bench: setup-dev warmup
	$(BIN)/python bench/run_check.py

# gradpath against PyTorch and JAX: the table in bench/results/peers.md.
PEERS_STAMP := $(VENV)/.peers-stamp
$(PEERS_STAMP): $(DEV_STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,peers]' $(PINNED)
	@touch $(PEERS_STAMP)

# The peers' own checks first: with JAX installed here, its cases of
# tests/test_peers.py run (make test installs PyTorch only, and skips them).
bench-peers: warmup $(PEERS_STAMP)
	$(BIN)/pytest -q tests/test_peers.py
	$(BIN)/python bench/peers.py --scaling --readme README.md

# The study's libraries and the dev tools install while the kernels compile (the
# compile needs the library's install alone; KERNEL_PINS keeps what it imports
# as it was), then every check.
test:
	$(MAKE) --no-print-directory -j3 setup-dev warmup system
	$(MAKE) --no-print-directory lint unit bench

# The README's figures and tables, from the default (and paper) study's results.
readme: setup
	$(BIN)/snakemake --profile profiles/local --configfile configs/default.yaml --cores $(CORES) \
	  results/default/figures/b_decay_rate_theory.png results/default/figures/d_success_by_length.png \
	  results/default/figures/c_training_curves.png results/default/tables/findings.csv
	cp results/default/figures/b_decay_rate_theory.png docs/decay_rate_theory.png
	cp results/default/figures/d_success_by_length.png docs/success_by_length.png
	cp results/default/figures/c_training_curves.png docs/training_curves.png
	if [ -f results/paper/figures/h_pascanu_cliff.png ]; then \
	  cp results/paper/figures/h_pascanu_cliff.png docs/pascanu_cliff.png; fi
	$(BIN)/python scripts/readme_tables.py

clean:
	rm -rf $(VENV) .pytest_cache .benchmarks .hypothesis .snakemake
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

# The study again with other training seeds (scripts/reseed.py): do its verdicts hold?
SEEDS ?= 11 12 13
RESEEDED = results/$(notdir $(basename $(CONFIG)))-seeds.yaml
reseed: setup warmup
	$(BIN)/python scripts/reseed.py $(CONFIG) --seeds $(SEEDS) --out $(RESEEDED)
	$(BIN)/python scripts/unlock_if_stale.py --configfile $(RESEEDED)
	$(BIN)/snakemake --profile profiles/local --configfile $(RESEEDED) --cores $(CORES)

# The papers' budgets (configs/paper-full.yaml): hundreds of CPU-hours, for a
# cluster (the README's cost table; scripts/plan.py), e.g. on SLURM:
# snakemake --profile profiles/slurm --configfile configs/paper-full.yaml
paper-full: setup warmup
	$(BIN)/snakemake --profile profiles/local --configfile configs/paper-full.yaml --cores $(CORES)

# The published results as verdicts (configs/paper.yaml) and their report.
paper: setup warmup
	$(BIN)/python scripts/unlock_if_stale.py --configfile configs/paper.yaml
	$(BIN)/snakemake --profile profiles/local --configfile configs/paper.yaml --cores $(CORES)
	$(BIN)/snakemake --profile profiles/local --configfile configs/paper.yaml --report reports/paper.html
	@echo
	@echo "Report: $(abspath reports/paper.html)  (section 8: Reproductions)"
