# The two commands a newcomer needs: `make run` and `make test`. Each creates the
# virtual environment first when it is missing (or when pyproject.toml changed).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Tests, benchmarks and studies read prepared TFDS datasets offline from a development copy
# beside the checkout when there is one; otherwise TFDS's own default (and its downloads) apply.
ifeq ($(TFDS_DATA_DIR),)
ifneq ($(wildcard ../shared/tfds),)
export TFDS_DATA_DIR := $(abspath ../shared/tfds)
endif
endif

.PHONY: run test ui study bench clean-store

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)  ## run the pipeline on the embedded default dataset
	$(BIN)/pipeline run

test: $(STAMP)  ## run the test suite (real components on tiny real data)
	$(BIN)/python -m pytest -ra --durations=25 $(PYTEST_ARGS)

ui: $(STAMP)  ## open the MLflow UI on http://127.0.0.1:5000
	$(BIN)/pipeline ui

study: $(STAMP)  ## every study at full size, reports under reports/
	$(BIN)/pipeline study all

bench: $(STAMP)  ## print the benchmark table and write benchmarks/results/
	$(BIN)/python -m benchmarks

clean-store:  ## delete the local MLflow store, artifacts and exports
	rm -rf mlruns/mlflow.db mlruns/artifacts mlruns/pipeline mlruns/serving
