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
# Unset, rmclean's own defaults apply: each run a fresh timestamped prefix under the config's
# output folder (out/<dataset>/<UTC timestamp>), one score cache beside them.
SCORE_CACHE ?=
OUTPUT ?=
SAMPLE_DIR ?= data/sample
# apply-review: the reviewers' decisions files, where the reviewed dataset goes, and where
# flagged samples nobody decided go (review, keep or drop).
DECISIONS ?=
REVIEWED ?= $(OUTPUT)-reviewed
UNDECIDED ?= review
PYTEST_ARGS ?=

# A mistyped variable (THRESHHOLD=-5) would otherwise be ignored and the run cut at the
# config's threshold: refuse every command-line variable this Makefile does not read.
KNOWN_VARIABLES := DATASET THRESHOLD PERCENTILE INPUT OUTPUT MODEL FORMAT RUNNER BEAM_ARGS \
	OVERWRITE TRUST_REMOTE_CODE SCORE_CACHE DECISIONS REVIEWED UNDECIDED SAMPLE_DIR PYTEST_ARGS \
	PYTHON VENV TORCH_SPEC TORCH_INDEX
UNKNOWN_VARIABLES := $(filter-out $(KNOWN_VARIABLES),$(foreach v,$(.VARIABLES),$(if \
	$(filter command line,$(origin $(v))),$(v))))
ifneq ($(UNKNOWN_VARIABLES),)
NEAREST := $(shell $(PYTHON) -c 'import difflib, sys; \
	close = difflib.get_close_matches(sys.argv[1], sys.argv[2:], n=1); \
	print(f" (did you mean {close[0]}?)" if close else "")' \
	$(firstword $(UNKNOWN_VARIABLES)) $(KNOWN_VARIABLES))
$(error unknown variable $(firstword $(UNKNOWN_VARIABLES))$(NEAREST); known: $(KNOWN_VARIABLES))
endif

CLEAN_ARGS := --config configs/$(DATASET).yaml $(if $(OUTPUT),--output $(OUTPUT)) \
	$(if $(THRESHOLD),--threshold $(THRESHOLD)) $(if $(PERCENTILE),--percentile $(PERCENTILE)) \
	$(if $(INPUT),--input $(INPUT)) $(if $(MODEL),--model $(MODEL)) \
	$(if $(FORMAT),--format $(FORMAT)) $(if $(RUNNER),--runner $(RUNNER)) \
	$(if $(OVERWRITE),--overwrite) $(if $(TRUST_REMOTE_CODE),--trust-remote-code) \
	$(if $(SCORE_CACHE),--score-cache $(SCORE_CACHE)) $(BEAM_ARGS)

.DEFAULT_GOAL := help
.PHONY: help install clean apply-review sample test test-fast lint format bench distclean

help: ## List the targets and the variables `make clean` takes
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-13s %s\n", $$1, $$2}'
	@echo "  variables: $(KNOWN_VARIABLES)"
	@echo "  no target deletes run outputs (out/) or downloads (data/ other than data/sample)"

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

apply-review: install ## Apply review decisions: OUTPUT=<run> DECISIONS="a.jsonl ..." [REVIEWED= UNDECIDED=]
	@if [ "$(origin OUTPUT)" = file ] || [ -z "$(DECISIONS)" ]; then \
		echo "make apply-review needs OUTPUT=<the run's prefix> and DECISIONS=<decisions.jsonl ...>" >&2; exit 2; fi
	$(BIN)/rmclean apply-review $(OUTPUT) $(foreach f,$(DECISIONS),--decisions $(f)) \
		--output $(REVIEWED) --undecided $(UNDECIDED) $(if $(OVERWRITE),--overwrite)

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

distclean: ## Remove what the project generated: .venv, data/sample, build files and caches
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
	test ! -f $(SAMPLE_DIR)/labels.jsonl || rm -rf $(SAMPLE_DIR)  # only the generated sample
	find . -name __pycache__ -type d -prune -not -path './$(VENV)/*' -exec rm -rf {} +
