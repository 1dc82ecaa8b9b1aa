# quantum-gate: every target creates and uses its own .venv, so a fresh clone needs only Python 3.11+.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint bench clean quality-gate-cutover diagnose-cutover

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

## make run: the daemon on an embedded Redis with a simulated engine (http://127.0.0.1:9731/)
##   flags of `quantum-gate demo` go in ARGS: make run ARGS='--listen 127.0.0.1:9732 --speed 4'
run: $(STAMP)
	$(BIN)/quantum-gate demo $(ARGS)

## make test: the whole suite (private redis-server instances; promtool/chromium tests need those tools)
test: $(STAMP)
	$(BIN)/pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check quantum_gate tests bench
	$(BIN)/ruff format --check quantum_gate tests bench
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python -m bench.run

## Operators working from the repository (the seed's recommendation):
##   make quality-gate-cutover CUTOVER_TS=2026-01-10T05:43:15Z
quality-gate-cutover: $(STAMP)
	@test -n "$(CUTOVER_TS)" || { echo "usage: make quality-gate-cutover CUTOVER_TS=<ISO time | epoch | stream id>"; exit 1; }
	$(BIN)/quantum-gate check --after "$(CUTOVER_TS)" --report-dir reports $(ARGS)

diagnose-cutover: $(STAMP)
	@test -n "$(CUTOVER_TS)" || { echo "usage: make diagnose-cutover CUTOVER_TS=<ISO time | epoch | stream id>"; exit 1; }
	$(BIN)/quantum-gate diagnose --after "$(CUTOVER_TS)" $(ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
