# mlops-lab: `make up` starts the lab, `make test` runs the tests. `make help` lists the rest.
# Works with GNU make 3.81 (macOS): no .ONESHELL, no make-4 functions.

.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: help venv lint format unit integration test lock

help: ## List the targets
	@echo "mlops-lab: make up (start the lab), make test (run the tests)"
	@echo
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}'

$(VENV)/.installed: constraints.txt requirements-dev.in training/requirements.in gatekeeper/requirements.in serving/requirements.in loadtests/requirements.in services/mlflow/requirements.in
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "mlops-lab needs Python 3.11 or newer (found " + sys.version.split()[0] + "); set PYTHON=/path/to/python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.in -c constraints.txt
	@touch $@

venv: $(VENV)/.installed ## Create the virtual environment with the pinned dependencies

lint: venv ## Lint the Python code (ruff)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: venv ## Format the Python code (ruff)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

unit: venv ## Unit tests only (no network, no servers)
	$(BIN)/pytest -m "not integration and not e2e" $(PYTEST_ARGS)

integration: venv ## Integration tests (real MLflow server, gunicorn and Locust as local processes)
	$(BIN)/pytest -m integration $(PYTEST_ARGS)

test: lint ## Lint, unit and integration tests (creates the venv on first use)
	$(BIN)/pytest -m "not e2e" $(PYTEST_ARGS)

lock: ## Re-resolve every lock file (constraints.txt, */requirements.txt)
	PYTHON=$(PYTHON) scripts/lock.sh
