# Chorus: `make run` starts everything locally, `make test` runs every test.
# Each target installs what it needs first (a virtual environment and the pinned
# Python and npm packages), so both work on a fresh clone.

PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
# Bicep parser and policy scanner: their own environment, so their pins never meet the app's.
INFRA_VENV := .venv-infra
NODE_DIR := devhost/node
PYTEST_ARGS ?=
ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help prerequisites install browser run stack host test faults test-unit lint format schema-snapshot bench clean

help:
	@echo "make run     start the local stack and the app at http://127.0.0.1:7071/api (two processes;"
	@echo "             a host that dies is restarted). ARGS=--keep-data keeps the last run's data"
	@echo "make test    run the whole test suite (unit, integration, e2e)"
	@echo "make faults  the fault suite: stores cut, the host killed, feeds replayed (report in .devhost/)"
	@echo "make stack   start only the local services (for 'make host' or 'func start'); ARGS=--keep-data"
	@echo "make host    host the app against the running stack (Ctrl-C or kill it; the data stays)"
	@echo "make lint    ruff (format + check), mypy, the import contract (lint-imports); eslint and"
	@echo "             prettier for devhost/node"
	@echo "make bench   run the benchmarks (ARGS=--quick for a tiny run); results in bench/results/"
	@echo "make schema-snapshot   refresh sql/schema.snapshot.json after changing sql/"
	@echo "make clean   remove the virtual environment, node_modules and local data"

prerequisites:
	@PYTHON="$(PYTHON)" sh tools/check-prerequisites.sh

$(VENV)/.installed: requirements.txt requirements-dev.txt
	@PYTHON="$(PYTHON)" sh tools/check-prerequisites.sh
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $@

$(NODE_DIR)/node_modules/.installed: $(NODE_DIR)/package.json $(NODE_DIR)/package-lock.json
	@PYTHON="$(PYTHON)" sh tools/check-prerequisites.sh
	cd $(NODE_DIR) && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

$(INFRA_VENV)/.installed: requirements-infra.txt
	@PYTHON="$(PYTHON)" sh tools/check-prerequisites.sh
	$(PYTHON) -m venv $(INFRA_VENV)
	$(INFRA_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-infra.txt
	@touch $@

install: $(VENV)/.installed $(NODE_DIR)/node_modules/.installed $(INFRA_VENV)/.installed

# The API docs page's browser test drives Debian's chromium, headless: installed here when it is
# missing and this is a root shell with apt-get (as on CI); elsewhere a note says how, and that
# one test is skipped.
browser:
	@sh tools/ensure-chromium.sh

run: install
	$(PY) -m devhost run $(ARGS)

stack: install
	$(PY) -m devhost stack $(ARGS)

host: install
	$(PY) -m devhost host $(ARGS)

test: install browser
	$(PY) -m pytest $(PYTEST_ARGS)

# Each fault test cuts a store or kills the host of a running stack; figures in .devhost/faults-report.md.
faults: install
	$(PY) -m pytest tests/faults -m faults $(PYTEST_ARGS)

test-unit: install
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache
	cd $(NODE_DIR) && npm run --silent lint

bench: install
	$(PY) -m bench $(ARGS)

# After changing sql/: the expected schema the drift check compares the live database with.
schema-snapshot: install
	$(PY) -m devhost schema-snapshot

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .
	cd $(NODE_DIR) && npm run --silent format

clean:
	rm -rf $(VENV) $(INFRA_VENV) $(NODE_DIR)/node_modules .devhost .mypy_cache .ruff_cache .pytest_cache
