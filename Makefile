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

# The npm clients the tests drive (the AI SDK's useChat transport), as the lockfile pins.
# Without npm those tests skip (they need Node.js too) rather than stop the suite.
node_modules/.package-lock.json: package.json package-lock.json
	@if command -v npm >/dev/null 2>&1; then npm ci --no-audit --no-fund; \
	else echo "npm not found: the Node.js client tests skip (apt install nodejs npm)"; fi

test: $(VENV)/.installed-test node_modules/.package-lock.json
	$(BIN)/ruff check sseserver tests benchmarks
	$(BIN)/python -m pytest -q --benchmark-disable

$(VENV)/.installed-bench: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e ".[test,bench]"
	touch $@ $(VENV)/.installed $(VENV)/.installed-test

# Micro benchmarks, then the load benchmark against the peers (server on CPU 0, load
# on CPU 1); the table goes to stdout, JSON and the plot to benchmarks/results/.
bench: $(VENV)/.installed-bench node_modules/.package-lock.json
	$(BIN)/python -m pytest -q benchmarks --benchmark-only --benchmark-group-by=group
	$(BIN)/python -m benchmarks.load --streams 100 1000 5000 --tokens 40 --rate 20 \
		--contenders sseserver sseserver-chat floor aiohttp --repeat 3 \
		--json benchmarks/results/realistic.json --plot benchmarks/results/realistic.png
	$(BIN)/python -m benchmarks.load --streams 100 1000 --tokens 40 --rate 20 \
		--contenders starlette --json benchmarks/results/realistic-starlette.json
	# Saturation: every stream's tokens as fast as the fake sends them, so reads carry
	# several events each (bursts), against the floor and the Node/Express relay.
	$(BIN)/python -m benchmarks.load --streams 1000 --tokens 100 --rate 0 \
		--contenders sseserver floor express --repeat 3 \
		--json benchmarks/results/saturation.json
	$(BIN)/python -m benchmarks.ttft --requests 300

lint: $(VENV)/.installed-test
	$(BIN)/ruff check sseserver tests benchmarks

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .benchmarks node_modules
