# Thin wrappers; every target bootstraps uv and the locked virtualenv when missing.
SHELL := /bin/bash
PYTHON ?= python3.11
TOOLS := .venv-tools
UV := $(TOOLS)/bin/uv
VENV := .venv
BIN := $(VENV)/bin
STACK ?= dev
export UV_PYTHON_DOWNLOADS := never
# Plans start fresh processes: precompiled bytecode saves seconds per run (this machine sets PYTHONDONTWRITEBYTECODE).
export UV_COMPILE_BYTECODE := 1

.PHONY: setup tools plan up test lint typecheck unit checkov bench bench-plan bench-serving bench-drift

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==0.13.9

$(BIN)/mlops-infra: $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen --python $(PYTHON) --quiet
	@touch $@

setup: $(BIN)/mlops-infra

tools:
	scripts/ensure-tools.sh

plan: setup
	$(BIN)/mlops-infra plan $(STACK)

up: setup
	pulumi up --stack $(STACK)

lint: setup
	$(BIN)/ruff check infra tests policies workloads monitoring examples
	$(BIN)/ruff format --check infra tests policies workloads monitoring examples

typecheck: setup
	$(BIN)/mypy

unit: setup tools
	$(BIN)/pytest -n 2

checkov: setup
	scripts/checkov.sh

test: lint typecheck unit checkov

bench-plan: setup
	$(BIN)/python bench/bench_plan.py

bench-serving: setup tools
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python workloads/serving/bench/run.py

bench-drift: setup
	$(BIN)/python workloads/retraining/bench/bench_drift.py

bench: bench-plan bench-drift bench-serving
