# `make quickstart` and `make test` set themselves up on a fresh machine (a virtual env in .venv).
VENV ?= .venv
PY := $(VENV)/bin/python
# The CPU build of torch 2.13.0 (an unpinned torch pulls several GB of CUDA packages).
TORCH ?= torch==2.13.0

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

.PHONY: install quickstart test test-fast lint docs-examples
install: $(VENV)/.installed

quickstart: $(VENV)/.installed
	$(VENV)/bin/kdtune run sweeps/quickstart.yaml

test: $(VENV)/.installed
	$(VENV)/bin/pytest -q

test-fast: $(VENV)/.installed
	$(VENV)/bin/pytest -q -m "not slow"

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check kdtune tests bench
	$(VENV)/bin/ruff format --check kdtune tests bench

# the example outputs in the docs, written anew from the quickstart run kept in tests/data (tests/test_docs_examples.py)
docs-examples: $(VENV)/.installed
	$(PY) -m tests.test_docs_examples
