# The two commands a newcomer needs: `make run` and `make test`. Everything else is for contributors.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
export PORT
# The sandbox wallet's notification retries and reviews, compressed for demos (1.0 = real wallet timing).
run web worker beat: export SANDBOX_TIME_SCALE ?= 0.01

.PHONY: run test reliability screenshots lint format worker beat web migrate seed bench bench-notify bench-reconcile bench-admin bench-rls clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] < (3, 11))' || { echo "Python 3.11+ is required; set PYTHON=/path/to/python3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstall only when the dependency list changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --editable ".[dev]"
	@touch $@

install: $(VENV)/.installed

# The SDKs that tests/conformance runs against as peers; they pin their own cryptography, so a venv of their own.
CONFORMANCE_VENV := .venv-conformance

$(CONFORMANCE_VENV)/.installed: tests/conformance/requirements.txt | $(BIN)/python
	$(PYTHON) -m venv $(CONFORMANCE_VENV)
	$(CONFORMANCE_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(CONFORMANCE_VENV)/bin/python -m pip install --quiet --requirement tests/conformance/requirements.txt
	@touch $@

conformance-env: $(CONFORMANCE_VENV)/.installed

migrate: install
	$(BIN)/python manage.py migrate --no-input -v 0

seed: migrate
	$(BIN)/python manage.py seed_demo

## run: the platform with demo data at http://127.0.0.1:$(PORT), plus a Celery worker and beat (Ctrl-C stops all)
run: seed
	$(BIN)/honcho --procfile Procfile start

web worker beat: install
	$(BIN)/honcho --procfile Procfile start $@

## test: the whole suite (SQLite by default; PostgreSQL and Redis when DATABASE_URL / REDIS_URL are set)
TEST_WORKERS ?= 2
test: install conformance-env
	$(BIN)/python -m pytest -n $(TEST_WORKERS) $(PYTEST_ARGS)

## reliability: the reliability and security suite (T-SEC-*, T-REL-*) alone, with its figures at the end;
## RELIABILITY_SCALE=nightly runs the nightly-sized counts
reliability: install conformance-env
	$(BIN)/python -m pytest -n $(TEST_WORKERS) -m reliability $(PYTEST_ARGS)

## screenshots: the README's pictures of the admin, taken by the browser tests (needs Debian's chromium)
screenshots: install
	SCREENSHOTS=docs/screenshots $(BIN)/python -m pytest tests/browser -p no:randomly -q

bench: install ; $(BIN)/python bench/order_create.py $(BENCH_ARGS)
bench-notify: install ; $(BIN)/python bench/notify.py $(BENCH_ARGS)
bench-reconcile: install ; $(BIN)/python bench/reconcile.py $(BENCH_ARGS)
bench-admin: install ; $(BIN)/python bench/admin.py $(BENCH_ARGS)
bench-rls: install ; $(BIN)/python bench/rls.py $(BENCH_ARGS)

## lint: ruff, formatting, no missing migrations, the Dockerfile (hadolint) and the Kubernetes manifests against
## their schemas (offline)
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python manage.py makemigrations --check --dry-run
	$(BIN)/hadolint deploy/Dockerfile
	$(BIN)/kubernetes-validate --strict --quiet deploy/k8s/*.yaml

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) .venv-conformance var .pytest_cache .ruff_cache
