# Portico: the two commands a new machine needs are `make up` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The data plane's request path compiled with mypyc (data_plane/native.py);
# rebuilt whenever a module it was checked against changes.
NATIVE := build/native/manifest.json
NATIVE_SOURCES := $(shell find data_plane shared -name '*.py')

.PHONY: up dp demo test lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

$(NATIVE): $(STAMP) $(NATIVE_SOURCES)
	$(BIN)/python scripts/native.py build $(NATIVE_FLAGS)

# Running Portico does not need the build (nodes fall back to the source);
# the tests do, so that the compiled modules are tested.
up dp demo bench: NATIVE_FLAGS := --if-possible

## up: run a control plane on SQLite and the echo upstream, ready for the walkthrough
up: $(NATIVE)
	$(BIN)/python scripts/up.py

## dp: attach a data plane node to a runtime group (GROUP=name)
dp: $(NATIVE)
	$(BIN)/python scripts/dp.py $(if $(GROUP),--group "$(GROUP)",)

## demo: run the whole composite walkthrough against `make up`
demo: $(NATIVE)
	$(BIN)/python scripts/demo.py

## test: lint, type-check, run the whole test suite, then the data plane's
##       tests again on its Python source (without the compiled modules)
test: $(NATIVE)
	bash scripts/services.sh
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	PORTICO_NATIVE=require $(BIN)/python -m pytest
	PORTICO_NATIVE=off $(BIN)/python -m pytest -q tests/data_plane

## bench: run the benchmarks (QUICK=1 for the short version)
bench: $(NATIVE)
	$(BIN)/python -m bench $(if $(QUICK),--quick,)

clean:
	rm -rf $(VENV) var build *.egg-info
