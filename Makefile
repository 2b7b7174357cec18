# The two commands of the README: `make run` and `make test`. Both install what is missing.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP_PY := $(VENV)/.installed
STAMP_NODE := node_modules/.installed

.DEFAULT_GOAL := help
.PHONY: help install run test lint typecheck fmt check bench soak clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(STAMP_PY): requirements.txt requirements-dev.txt cli/pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "Python 3.11 is required ($(PYTHON) not found)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

$(STAMP_NODE): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# The browser tests (tests/browser/) drive Debian's Chromium; Playwright never downloads one.
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

$(CHROMIUM):
	$(SUDO) apt-get install -y --no-install-recommends chromium || \
	  { $(SUDO) apt-get update && $(SUDO) apt-get install -y --no-install-recommends chromium; }

install: $(STAMP_PY) $(STAMP_NODE) ## Create .venv and install Azurite (only what is missing)

run: install ## Start Azurite (data in .azurite/) and the app on http://localhost:7071/api
	$(PY) -m devhost --with-azurite $(DEVHOST_ARGS)

test: install $(CHROMIUM) ## Run the whole suite (browser tests included) against a private, in-memory Azurite
	$(PY) -m pytest

lint: install ## ruff check and format check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: install ## mypy (strict, cli/ included; tests/ and bench/ may leave test functions unannotated)
	$(VENV)/bin/mypy shared devhost bench tests function_app.py cli/scheduler_cli

fmt: install ## Format the code
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

check: lint typecheck ## Lint and type-check

bench: install ## Benchmarks: timer pass cost, dispatch rate, lateness (not part of `make test`)
	$(PY) -m bench

soak: install ## Chaos soak: 3 instances, one SIGKILLed every 10 s, 2,000 occurrences (about 10 min)
	$(PY) -m bench.chaos

clean: ## Remove the installs and local data
	rm -rf $(VENV) node_modules .azurite .mypy_cache .ruff_cache .pytest_cache
