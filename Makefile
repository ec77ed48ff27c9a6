# gradpath: `make run` (set-up + the main job) and `make test` (set-up + every check).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: setup run demo test lint unit bench bench-full warmup clean help

help:
	@echo "make run    set up, then run the main job"
	@echo "make test   set up, then run every check (lint, unit tests, benchmark regression)"

# A local virtual environment with the package (editable) and its dev tools.
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "gradpath needs Python >= 3.11"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

setup: $(STAMP)

# Fill Numba's on-disk cache once (a few seconds on a fresh clone).
warmup: setup
	$(BIN)/gradpath demo --warmup

demo: warmup
	$(BIN)/gradpath demo

run: demo

lint: setup
	$(BIN)/ruff check .

unit: warmup
	$(BIN)/pytest -q

bench: warmup
	$(BIN)/python bench/run_check.py

test: lint unit bench

clean:
	rm -rf $(VENV) .pytest_cache .benchmarks .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
