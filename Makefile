# identity-warehouse: `make run`, `make test`, `make ui`. Each creates and fills .venv on first use.
PYTHON ?= python3
VENV := .venv
INSTALLED := $(VENV)/.installed

export DAGSTER_HOME := $(CURDIR)/dagster_home
export DAGSTER_DISABLE_TELEMETRY := true
export DBT_SEND_ANONYMOUS_USAGE_STATS := False
# dagster-dbt finds `dbt` on PATH.
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: install run run-spark test test-fast ui docs bench clean

# Ports of `make ui` and `make docs`: a default that is taken moves to the next free port; a port
# given (`make ui UI_PORT=3001`, or in the environment) must be free.
UI_PORT ?= 3000
DOCS_PORT ?= 8080
port_of = $$($(VENV)/bin/python -m orchestration.cli.ports $(1) "$($(1))" $(if $(filter file,$(origin $(1))),default,requested))

install: $(INSTALLED)

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	@# The Spark target (dbt-spark, pyspark) when Java is there to run it: the equivalence test needs it.
	if command -v java >/dev/null 2>&1; then $(VENV)/bin/pip install --quiet -e '.[dev,spark]'; fi
	touch $@

## Land the files of LANDING_DIR (default: seeds/), build and check everything into DUCKDB_PATH.
run: $(INSTALLED)
	$(VENV)/bin/identity-warehouse run

## The same Dagster job on Apache Spark (local PySpark, needs Java): Spark lands LANDING_DIR and
## dbt builds there (SPARK_WAREHOUSE_DIR, default data/spark; docs/spark.md).
run-spark: $(INSTALLED)
	$(VENV)/bin/pip install --quiet -e '.[spark]'
	$(VENV)/bin/identity-warehouse run --target spark

## The whole test suite: unit tests, dbt tests and end-to-end runs of the real Dagster job.
test: $(INSTALLED)
	$(VENV)/bin/pytest

## Only the fast unit tests (no dbt, no Dagster runs).
test-fast: $(INSTALLED)
	$(VENV)/bin/pytest -m "not e2e"

## The Dagster UI on http://127.0.0.1:3000 (UI_PORT; same project, same DuckDB file as `make run`).
ui: $(INSTALLED)
	port=$(call port_of,UI_PORT) && \
	$(VENV)/bin/python -c 'from orchestration.location.project import prepare_manifest; prepare_manifest()' && \
	$(VENV)/bin/dagster dev -m orchestration.location.definitions -h 127.0.0.1 -p $$port

## dbt's documentation site for analysts on http://127.0.0.1:8080 (DOCS_PORT).
docs: $(INSTALLED)
	port=$(call port_of,DOCS_PORT) && \
	$(VENV)/bin/python -c 'from orchestration.location.project import prepare_manifest; prepare_manifest()' && \
	cd dbt_project && ../$(VENV)/bin/dbt docs generate --profiles-dir .. && ../$(VENV)/bin/dbt docs serve --profiles-dir .. --host 127.0.0.1 --port $$port

## The benchmarks (not tests): the real job on generated people at scale, and the identity graph
## against other algorithms. Writes benchmarks/results/. Options: make bench BENCH_ARGS='--people 100000 --repeats 1'
bench: $(INSTALLED)
	$(VENV)/bin/pip install --quiet -e '.[bench]'
	$(VENV)/bin/python -m benchmarks $(BENCH_ARGS)
	$(VENV)/bin/python -m benchmarks.graphs --families chain_sorted,chain_random,hub,giant --out benchmarks/results $(GRAPH_BENCH_ARGS)

clean:
	rm -rf data dbt_project/target dbt_project/logs
	find dagster_home -mindepth 1 ! -name dagster.yaml -exec rm -rf {} +
