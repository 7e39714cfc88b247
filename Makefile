# flexconn developer commands. Every target installs what it needs into .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test test-fast test-slow lint typecheck pytest docs demo bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check flexconn tests benchmarks examples
	$(BIN)/ruff format --check flexconn tests benchmarks examples

typecheck: $(STAMP)
	$(BIN)/mypy
	$(BIN)/mypy tests/conftest.py

# The suite waits on sockets and clocks far more than it computes, so it runs in parallel even on
# 2 cores; the slow tests (see tests/conftest.py) start first.
PYTEST_WORKERS ?= 4

pytest: $(STAMP)
	$(BIN)/pytest -n $(PYTEST_WORKERS)

# Everything but the long real-time runs (for quick iterations), and those runs alone.
test-fast: $(STAMP)
	$(BIN)/pytest -n $(PYTEST_WORKERS) -m "not slow"

test-slow: $(STAMP)
	$(BIN)/pytest -n $(PYTEST_WORKERS) -m slow

# The documentation site (into site/); --strict turns any warning, a broken reference above
# all, into a failure.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

# A scripted session against the embedded simulator, in a live terminal view.
demo: $(STAMP)
	$(BIN)/flexconn demo

test: lint typecheck pytest docs

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .hypothesis site

# Benchmarks: every benchmarks/bench_*.py (about 10 minutes on 2 cores, loopback only), then
# benchmarks/results/REPORT.md (goals met or MISSED, tables, plots) and docs/benchmarks.md,
# generated from the report (never edit that page by hand).
BENCH_STAMP := $(VENV)/.installed-bench
SOAK_MINUTES ?= 60
.PHONY: soak

$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BIN)/python benchmarks/report.py

# The long soak (not part of `make test`): 60 minutes by default, the goal's length; `make bench`
# reports every soak it finds and judges the newest 60-minute one (RSS slope, last two thirds).
soak: $(STAMP)
	$(BIN)/python benchmarks/soak.py --duration $$(( $(SOAK_MINUTES) * 60 )) \
		--out benchmarks/results/soak-$$(date -u +%Y%m%dT%H%M)
