# Portico: the two commands a new machine needs are `make up` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: up dp demo test lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

## up: run a control plane on SQLite and the echo upstream, ready for the walkthrough
up: $(STAMP)
	$(BIN)/python scripts/up.py

## dp: attach a data plane node to a runtime group (GROUP=name)
dp: $(STAMP)
	$(BIN)/python scripts/dp.py $(if $(GROUP),--group "$(GROUP)",)

## demo: run the whole composite walkthrough against `make up`
demo: $(STAMP)
	$(BIN)/python scripts/demo.py

## test: lint, type-check and run the whole test suite
test: $(STAMP)
	bash scripts/services.sh
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python -m pytest

## bench: run the benchmarks (QUICK=1 for the short version)
bench: $(STAMP)
	$(BIN)/python -m bench $(if $(QUICK),--quick,)

clean:
	rm -rf $(VENV) var build *.egg-info
