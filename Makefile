# The two commands a new user needs: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8080

.PHONY: run test bench lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e ".[test]"
	touch $@ $(VENV)/.installed

run: $(VENV)/.installed
	$(BIN)/sseserver serve --demo --host $(HOST) --port $(PORT)

test: $(VENV)/.installed-test
	$(BIN)/ruff check sseserver tests benchmarks
	$(BIN)/python -m pytest -q --benchmark-disable

bench: $(VENV)/.installed-test
	$(BIN)/python -m pytest -q benchmarks --benchmark-only --benchmark-group-by=group

lint: $(VENV)/.installed-test
	$(BIN)/ruff check sseserver tests benchmarks

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .benchmarks
