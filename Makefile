# drifthouse developer tasks. Needs python3 (3.11+), make, and for the tests Java 17+ and Maven.
#
#   make venv         .venv with the package (editable) and the dev tools; quick when up to date
#   make demo         the whole pipeline on one machine (no services needed)
#   make test         install Java and Maven if missing, start a Kafka broker, run pytest, stop it
#   make lint         ruff check, ruff format --check, mypy (and shellcheck when installed)
#   make kafka-start  start the local test broker (127.0.0.1, port KAFKA_PORT or 9092)
#   make kafka-stop   stop it
#
# PYTEST_ARGS passes options to pytest, e.g. make test PYTEST_ARGS='-m "not kafka" -x'.
# PYTEST_WORKERS is how many pytest-xdist processes run the tests side by side (default 3: most
# broker tests spend their time waiting; 0 runs them in this process, one after another).

PYTHON ?= python3
VENV ?= .venv
PYTEST_ARGS ?=
PYTEST_WORKERS ?= 3
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help system-deps venv demo test lint kafka-start kafka-stop

help:
	@sed -n 's/^#   make /make /p' $(firstword $(MAKEFILE_LIST))

venv: $(STAMP)

# Reinstall only when pyproject.toml changes (or the venv is gone).
$(STAMP): pyproject.toml
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV) || { \
	  echo "error: '$(PYTHON) -m venv' failed; on Debian/Ubuntu install python3-venv (apt-get install -y python3-venv)"; \
	  rm -rf $(VENV); exit 1; }
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e ".[dev]"
	@touch $@

demo: venv
	$(VENV)/bin/drifthouse demo

# The broker runs under a lease held by this recipe's shell: it is stopped at the end whatever
# pytest's outcome, unless it was started by hand (make kafka-start) or another session uses it.
system-deps:
	@scripts/system-deps

test: system-deps venv
	@export KAFKA_LEASE=$$$$ PYTHON=$(VENV)/bin/python; \
	scripts/kafka start >/dev/null || exit 1; \
	status=0; $(VENV)/bin/pytest -n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder $(PYTEST_ARGS) || status=$$?; \
	scripts/kafka stop; \
	exit $$status

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	@if command -v shellcheck >/dev/null 2>&1; then shellcheck scripts/kafka scripts/system-deps .ci/run; \
	else echo "shellcheck not installed: shell scripts not checked"; fi

kafka-start:
	@PYTHON=$(VENV)/bin/python scripts/kafka start

kafka-stop:
	@scripts/kafka stop
