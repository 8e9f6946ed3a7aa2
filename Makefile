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

.PHONY: install quickstart test test-fast test-simd lint docs-examples
install: $(VENV)/.installed

quickstart: $(VENV)/.installed
	$(VENV)/bin/kdtune run sweeps/quickstart.yaml

test: $(VENV)/.installed
	$(VENV)/bin/pytest -q

test-fast: $(VENV)/.installed
	$(VENV)/bin/pytest -q -m "not slow"

# The tests whose results depend on the CPU's SIMD kernels (marked simd), again with the kernels of a CPU
# without AVX-512 (AVX2) and of one without AVX2 (baseline); `make test` ran them with this machine's own.
test-simd: $(VENV)/.installed
	@own=$$($(PY) -c 'import torch; print(torch.backends.cpu.get_cpu_capability().lower())'); \
	for kernels in avx2:AVX2 default:SSE41; do \
		aten=$${kernels%%:*}; onednn=$${kernels##*:}; \
		if [ "$$aten" = "$$own" ]; then echo "test-simd: $$aten kernels are this machine's own (make test ran them)"; continue; fi; \
		echo "test-simd: ATEN_CPU_CAPABILITY=$$aten ONEDNN_MAX_CPU_ISA=$$onednn pytest -m simd"; \
		ATEN_CPU_CAPABILITY=$$aten ONEDNN_MAX_CPU_ISA=$$onednn $(VENV)/bin/pytest -q -m simd || exit 1; \
	done

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check kdtune tests bench
	$(VENV)/bin/ruff format --check kdtune tests bench

# the example outputs in the docs, written anew from the quickstart run kept in tests/data (tests/test_docs_examples.py)
docs-examples: $(VENV)/.installed
	$(PY) -m tests.test_docs_examples
