# flexconn developer commands. Every target installs what it needs into .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test lint typecheck pytest bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check flexconn tests benchmarks
	$(BIN)/ruff format --check flexconn tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest

test: lint typecheck pytest

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .hypothesis

# Benchmarks: every benchmarks/bench_*.py, then benchmarks/results/REPORT.md with plots.
BENCH_STAMP := $(VENV)/.installed-bench
SOAK_MINUTES ?= 30
.PHONY: soak

$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BIN)/python benchmarks/report.py

# The long soak (not part of `make test`; `make bench` reports the newest one it finds).
soak: $(STAMP)
	$(BIN)/python benchmarks/soak.py --duration $$(( $(SOAK_MINUTES) * 60 )) \
		--out benchmarks/results/soak-$$(date -u +%Y%m%dT%H%M)
