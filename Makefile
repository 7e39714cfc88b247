# flexconn developer commands. Every target installs what it needs into .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test lint typecheck pytest docs demo bench clean

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

pytest: $(STAMP)
	$(BIN)/pytest

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
