# mlops-lab: `make up` starts the lab, `make test` runs the tests. `make help` lists the rest.
# Works with GNU make 3.81 (macOS): no .ONESHELL, no make-4 functions.

.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=
# Test processes for make test/unit/integration (pytest-xdist): auto = one per core, 0 = one process.
PYTEST_WORKERS ?= auto

# The lab's verbs live in labctl/, a standard-library package: no venv needed to start the lab.
LAB := $(PYTHON) -m labctl

.PHONY: help venv lint format unit integration test lock \
	up down restart ps logs doctor build train gate pipeline promote rollback status smoke load e2e clean urls \
	traffic drift retrain-on-drift approve \
	exercises check solve bundle bundle-load mirror \
	summary state-save state-restore images-login images-push images-tag bench weight user source-run latest-source-run

help: ## List the targets (make up: start the lab, make test: run the tests)
	@grep -hE '^[a-zA-Z0-9_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-17s\033[0m %s\n", $$1, $$2}'

# A loaded classroom bundle's wheels (make bundle-load): then the venv installs from them
# alone, with no network; delete .bundle/wheelhouse to install from PyPI again.
WHEELHOUSE := .bundle/wheelhouse
PIP_SOURCE := $(if $(wildcard $(WHEELHOUSE)/*.whl),--no-index --find-links $(WHEELHOUSE))

$(VENV)/.installed: constraints.txt requirements-dev.in services/mlflow/requirements.in \
	$(foreach c,training gatekeeper serving loadtests,$(c)/requirements.in $(c)/pyproject.toml)
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "mlops-lab needs Python 3.11 or newer (found " + sys.version.split()[0] + "); set PYTHON=/path/to/python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet $(PIP_SOURCE) --upgrade pip
	$(BIN)/python -m pip install --quiet $(PIP_SOURCE) -r requirements-dev.in -c constraints.txt
	@# The components, editable: their dependencies are already there, and the pinned
	@# setuptools builds them (no build isolation: nothing unpinned is downloaded).
	$(BIN)/python -m pip install --quiet --no-build-isolation --no-deps $(foreach c,training gatekeeper serving loadtests,-e ./$(c))
	@touch $@

venv: $(VENV)/.installed ## Create the virtual environment with the pinned dependencies

WORKFLOWS := $(wildcard .github/workflows/*.yml)
DOCKERFILES := $(wildcard */Dockerfile services/*/Dockerfile .ci/standins/*/Dockerfile)
# `docker compose config` needs no engine, only the variables the file insists on.
LINT_SECRETS := GIT_SHA=lint POSTGRES_PASSWORD=lint S3_ACCESS_KEY=lint S3_SECRET_KEY=lint \
	MLFLOW_ADMIN_PASSWORD=lint MLFLOW_READER_PASSWORD=lint MLFLOW_SECRET_KEY=lint \
	REGISTRY_PASSWORD=lint
COMPOSE_LINT := $(LINT_SECRETS) \
	docker compose --env-file /dev/null --project-directory . -f compose/compose.yaml \
	-f compose/classroom.yaml \
	--profile minio --profile seaweedfs --profile build --profile jobs --profile load config -q
COMPOSE_LINT_ROOT := $(LINT_SECRETS) \
	docker compose --profile minio --profile seaweedfs --profile build --profile jobs \
	--profile load config -q

lint: venv ## Lint: ruff, GitHub workflow schemas, the compose file, Dockerfiles (hadolint if installed)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/check-jsonschema --builtin-schema vendor.github-workflows $(WORKFLOWS)
	$(BIN)/check-jsonschema --builtin-schema vendor.dependabot .github/dependabot.yml
	@if docker compose version >/dev/null 2>&1; then \
		echo "docker compose config -q (dummy secrets)"; $(COMPOSE_LINT); \
		echo "docker compose config -q from the root (compose.yaml includes compose/)"; \
		$(COMPOSE_LINT_ROOT); \
	else echo "lint: no 'docker compose' here, compose/compose.yaml not checked"; fi
	@if command -v hadolint >/dev/null 2>&1; then \
		echo "hadolint $(DOCKERFILES)"; hadolint --failure-threshold error $(DOCKERFILES); \
	else echo "lint: hadolint not installed, Dockerfiles not checked"; fi

format: venv ## Format the Python code (ruff)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

unit: venv ## Unit tests only (no network, no servers)
	$(BIN)/pytest -m "not integration and not e2e" -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

integration: venv ## Integration tests (real MLflow server, gunicorn and Locust as local processes)
	$(BIN)/pytest -m integration -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

test: lint ## Lint, unit and integration tests on every core (creates the venv on first use; PYTEST_WORKERS=0: one process)
	$(BIN)/pytest -m "not e2e" -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

bench: venv ## Serving benchmark: ours vs mlflow models serve vs the HTTP floor (needs wrk)
	$(BIN)/python -m bench.servebench $(BENCH_ARGS)

weight: venv ## The docker lab's weight: its images' sizes and the idle stack's memory
	$(BIN)/python -m bench.weight images memory $(WEIGHT_ARGS)

lock: ## Re-resolve every lock file (constraints.txt, */requirements.txt)
	PYTHON=$(PYTHON) scripts/lock.sh

# ---- the lab (LAB_MODE=auto|docker|local; see README) ----------------------------------

up: ## Start the lab (builds, starts, bootstraps a production model on first run)
	@$(LAB) up

down: ## Stop the lab, keep every run, model and image
	@$(LAB) down

restart: ## down, then up
	@$(LAB) restart

ps: ## Show the lab's services
	@$(LAB) ps

logs: ## Show recent logs (SERVICE=mlflow for one service)
	@$(LAB) logs

doctor: ## Check Docker, Compose, ports, memory and disk
	@$(LAB) doctor

build: ## Build the images and push them to the local registry, tagged by git sha
	@$(LAB) build

train: ## Train a new candidate (TRAIN_DATASET=, LABEL_NOISE=, TRAIN_SEED=)
	@$(LAB) train

gate: ## Run the quality gate on @candidate (exit 1 stops the line)
	@$(LAB) gate

# VERSION only from make's command line: a shell or CI may export VERSION for other things.
promote: ## Promote: TO=staging (candidate->staging) or TO=production (staging->production, needs make load; SKIP_LOAD_GATE=1 overrides); VERSION=N picks the version
	@$(LAB) promote --version "$(if $(filter command line,$(origin VERSION)),$(VERSION))"

pipeline: ## The stop-the-line chain: train, gate, promote to staging, load, promote to production (names the stage that stops it)
	@$(LAB) pipeline

rollback: ## Point @production back at the previous production version
	@$(LAB) rollback

status: ## Show which version each alias points to
	@$(LAB) status

smoke: ## Smoke-test a model server (ALIAS=staging|production)
	@$(LAB) smoke

load: ## Locust latency gate against staging, verdict recorded on the version (LOAD_ALIAS=production)
	@$(LAB) load

traffic: ## Send a model server dataset rows for a while (ALIAS=production|staging, SHIFT="petal length (cm)=+1.5" to drift on purpose)
	@$(LAB) traffic

drift: ## Drift check: what @production served against its training data (0 no drift, 1 drift, 2 cannot tell; reports/drift/)
	@$(LAB) drift

retrain-on-drift: ## Drift check, and only on drift the whole pipeline, training on the newer window (SHIFT=...; TO=staging stops before production)
	@$(LAB) retrain-on-drift

# VERSION and BY only from make's command line, as for promote.
approve: ## Record your approval of a version for production (VERSION=N BY=name; needed when PROMOTE_REQUIRE_APPROVAL=1)
	@$(LAB) approve --version "$(if $(filter command line,$(origin VERSION)),$(VERSION))" \
		--by "$(if $(filter command line,$(origin BY)),$(BY))"

urls: ## Print the lab's URLs
	@$(LAB) urls

summary: ## Gate and latency reports as Markdown (appended to $GITHUB_STEP_SUMMARY on GitHub)
	@$(LAB) summary

state-save: ## Stop the lab, save its volumes and .env to one file (STATE_FILE=lab-state.tgz)
	@$(LAB) state-save

state-restore: ## Restore a saved lab into fresh volumes (STATE_FILE=lab-state.tgz), then make up
	@$(LAB) state-restore

images-login: ## CI: docker login to LAB_REMOTE_IMAGES' registry (REMOTE_IMAGES_USER, REMOTE_IMAGES_TOKEN)
	@$(LAB) images-login

images-push: ## CI: push this commit's images to LAB_REMOTE_IMAGES (ghcr.io/OWNER/REPO/<image>:<sha>)
	@$(LAB) images-push

images-tag: ## CI: point LAB_REMOTE_IMAGES' serving:staging and :production at their aliases' images
	@$(LAB) images-tag

# RUN_ID comes from a workflow input: the shell reads it from the environment (never pasted
# into the command by make) and it must be a number before anything else runs.
source-run: ## CI: refuse a state unless RUN_ID is a successful pipeline run on the default branch
	@case "$$RUN_ID" in ''|*[!0-9]*) echo "RUN_ID must be a run number" >&2; exit 1 ;; esac; \
	gh api "repos/$$GITHUB_REPOSITORY/actions/runs/$$RUN_ID" | $(PYTHON) .github/scripts/source_run.py \
		--run-id "$$RUN_ID" --repository "$$GITHUB_REPOSITORY" \
		--default-branch "$$DEFAULT_BRANCH" --workflow .github/workflows/lab-pipeline.yml

latest-source-run: ## CI: the newest successful pipeline run on the default branch, as run_id= in $GITHUB_OUTPUT
	@gh api "repos/$$GITHUB_REPOSITORY/actions/workflows/lab-pipeline.yml/runs?branch=$$DEFAULT_BRANCH&status=success&per_page=30" \
		| $(PYTHON) .github/scripts/source_run.py --latest --repository "$$GITHUB_REPOSITORY" \
		--default-branch "$$DEFAULT_BRANCH" --workflow .github/workflows/lab-pipeline.yml

# NAME and PASSWORD only from make's command line: shells often export NAME (WSL does).
user: ## Classroom mode: add an MLflow login for a student (NAME=alice [PASSWORD=...])
	@$(LAB) user --name "$(if $(filter command line,$(origin NAME)),$(NAME))" \
		--password "$(if $(filter command line,$(origin PASSWORD)),$(PASSWORD))"

exercises: ## List the exercise book (exercises/) with each exercise's status on this lab
	@$(LAB) exercises

check: ## Self-check exercise EX=N: 0 done, 1 not yet (with hints), 2 the lab is not up
	@$(LAB) check

solve: ## Apply the instructor's solution to exercise EX=N
	@$(LAB) solve

# ---- the classroom kit (docs/instructor.md) ---------------------------------------------

bundle: venv ## Classroom kit: every image, the venv's wheels (BUNDLE_STATE=a state) in one file (BUNDLE=, BUNDLE_ARCH=)
	@$(LAB) bundle

bundle-load: ## Load a classroom bundle (BUNDLE=path): make up and make test then need no network
	@$(LAB) bundle-load

mirror: ## Classroom: a pull-through cache of Docker Hub for the room, on every address (MIRROR_PORT=5000)
	@$(LAB) mirror

e2e: venv ## End-to-end tests against the running lab: they train, promote and restart it (asks first; FORCE=1 skips)
	@$(LAB) e2e

clean: ## Delete the lab's data (asks first; FORCE=1 skips the question)
	@$(LAB) clean
