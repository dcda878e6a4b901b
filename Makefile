# ecom-lakehouse: `make help` lists the targets.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help setup run report test test-fast lint format wheel bench clean databricks-cli

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[local,upload,remote,charts,bench,dev]"
	@touch $(STAMP)

setup: $(STAMP) ## create .venv and install the package with local Spark + Delta and dev tools (.venv/bin/ecom)

run: $(STAMP) ## run the pipeline locally on the bundled sample into ./lakehouse and print the report
	$(BIN)/ecom run

report: $(STAMP) ## print the report from the existing ./lakehouse
	$(BIN)/ecom report

test: $(STAMP) ## the whole test suite (classic Spark), then the `connect` tests again on a Spark Connect session
	$(BIN)/pytest
	ECOM_SPARK_MODE=connect $(BIN)/pytest -m connect

test-fast: $(STAMP) ## only the tests that need no Spark
	$(BIN)/pytest tests/test_bundle.py tests/test_generate.py tests/test_extraction.py

lint: $(STAMP) ## ruff lint and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check src tests bench data_extraction

format: $(STAMP) ## apply ruff fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format src tests bench data_extraction

wheel: $(STAMP) ## build the wheel the Databricks bundle deploys (dist/)
	$(BIN)/python -m build --wheel

databricks-cli: ## build the pinned Databricks CLI into ~/.cache for tests/test_bundle_cli.py (needs Go)
	@.ci/databricks-cli.sh

bench: $(STAMP) ## benchmark the pipeline against DuckDB (bench/results/)
	$(BIN)/python -m bench.run

clean: ## remove the local lakehouse and build outputs (keeps .venv)
	rm -rf lakehouse spark-warehouse metastore_db derby.log dist build .pytest_cache
