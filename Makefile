# Set-up is part of every target: a fresh clone needs only `make demo` or `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.installed-bench

.PHONY: demo test lint typecheck unit components bench bytecode soak sim-million venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,gcp,docker,redis,sim]'
	$(MAKE) --no-print-directory bytecode
	touch $(STAMP)

# burla's modules compiled, as `pip install` leaves a package that is not editable: each
# process of a cluster would compile them again at every start where
# PYTHONDONTWRITEBYTECODE is set, a tenth of a second of a cold start.
bytecode:
	$(BIN)/python -m compileall -q burla

$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,gcp,docker,redis,sim,bench]'
	touch $(BENCH_STAMP)

demo: $(STAMP)
	$(BIN)/python examples/demo.py
	$(BIN)/burla plan --standby 5x96 --inputs 1000

lint: $(STAMP)
	$(BIN)/ruff check burla tests benchmarks examples
	$(BIN)/ruff format --check burla tests benchmarks examples

typecheck: $(STAMP)
	$(BIN)/mypy

# Installs the real components the integration tests start (tools/components/*.sh).
components: $(STAMP)
	for script in tools/components/*.sh; do [ -e "$$script" ] || continue; PATH="$(CURDIR)/$(BIN):$$PATH" bash "$$script" || exit 1; done

unit: $(STAMP)
	$(BIN)/pytest

test: lint typecheck components unit

# An hour of clients, faults and kills (tests/faults/test_soak.py), then 10,000 jobs
# through one main_service (tests/faults/test_memory.py); their numbers are kept.
soak: $(STAMP)
	BURLA_SOAK_S=3600 BURLA_SOAK_MAIN_KILLS=4 BURLA_SOAK_STEADY=0.6 \
	BURLA_SOAK_REPORT=benchmarks/soak-hour.json \
	BURLA_MEMORY_JOBS=10000 BURLA_MEMORY_REPORT=benchmarks/memory-jobs.json \
	$(BIN)/pytest -p no:cacheprovider -q tests/faults/test_soak.py tests/faults/test_memory.py

# burla against its peers on this machine, and where burla's time goes; the results
# (results.md, results.json, chart.png) are kept in benchmarks/local-speed/.
bench: $(BENCH_STAMP) bytecode
	$(BIN)/python -m benchmarks run --out benchmarks/local-speed

# The full million of the simulator (1,000,000 inputs of a second on 1,000 x 96 CPUs, on
# Firestore; about five minutes); its report is kept.
sim-million: $(STAMP)
	$(BIN)/burla sim million --json benchmarks/sim-million.json

clean:
	rm -rf $(VENV)
