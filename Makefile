# rmclean — `make help` lists the targets. The main job is `make clean DATASET=... THRESHOLD=...`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# CPU machines get the pinned CPU build; on a CUDA machine use e.g.
#   make install TORCH_SPEC=torch==2.13.0 TORCH_INDEX=--index-url=https://download.pytorch.org/whl/cu128
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=

DATASET ?= sample
THRESHOLD ?=
PERCENTILE ?=
INPUT ?=
MODEL ?=
FORMAT ?=
RUNNER ?=
BEAM_ARGS ?=
OVERWRITE ?=
TRUST_REMOTE_CODE ?=
# Scores are cached here by model and sample content: reruns score only what is new.
SCORE_CACHE ?= out/$(DATASET)/score-cache
# One prefix per run: a fresh timestamped folder unless OUTPUT is given.
OUTPUT ?= out/$(DATASET)/$(shell date -u +%Y%m%d-%H%M%S)
SAMPLE_DIR ?= data/sample
PYTEST_ARGS ?=

CLEAN_ARGS := --config configs/$(DATASET).yaml --output $(OUTPUT) \
	$(if $(THRESHOLD),--threshold $(THRESHOLD)) $(if $(PERCENTILE),--percentile $(PERCENTILE)) \
	$(if $(INPUT),--input $(INPUT)) $(if $(MODEL),--model $(MODEL)) \
	$(if $(FORMAT),--format $(FORMAT)) $(if $(RUNNER),--runner $(RUNNER)) \
	$(if $(OVERWRITE),--overwrite) $(if $(TRUST_REMOTE_CODE),--trust-remote-code) \
	$(if $(SCORE_CACHE),--score-cache $(SCORE_CACHE)) $(BEAM_ARGS)

.DEFAULT_GOAL := help
.PHONY: help install clean sample test test-fast lint format bench distclean

help: ## List the targets and the variables `make clean` takes
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'
	@echo "  variables: DATASET THRESHOLD PERCENTILE INPUT OUTPUT MODEL FORMAT RUNNER OVERWRITE TRUST_REMOTE_CODE SCORE_CACHE BEAM_ARGS"

install: $(VENV)/.installed ## Create .venv with CPU torch and the project (editable)

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || \
		$(BIN)/python -m pip install --quiet $(TORCH_INDEX) "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

clean: install ## THE MAIN JOB: make clean DATASET=sample THRESHOLD=-2.0 [PERCENTILE= INPUT= OUTPUT= ...]
	@if [ "$(DATASET)" = sample ] && [ -z "$(INPUT)" ]; then $(MAKE) --no-print-directory sample; fi
	$(BIN)/rmclean clean $(CLEAN_ARGS)

sample: install ## Generate the sample dataset into data/sample (once)
	@test -f $(SAMPLE_DIR)/labels.jsonl || $(BIN)/rmclean sample --output $(SAMPLE_DIR)

test: install ## Run the test suite (the README's test command)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

test-fast: install ## Tests without the slow end-to-end suites
	$(BIN)/python -m pytest -q -m "not slow" $(PYTEST_ARGS)

lint: install ## ruff lint and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install ## Apply ruff formatting
	$(BIN)/ruff format .

bench: install ## CPU benchmarks -> bench/results/cpu_pipeline.json, gpu_util.json
	$(BIN)/python -m bench.pipeline_bench
	$(BIN)/python -m bench.gpu_util_bench

distclean: ## Remove the venv, generated data and run outputs
	rm -rf $(VENV) data out build *.egg-info .pytest_cache .ruff_cache
