# rmclean — `make help` lists the targets. The main job is `make clean DATASET=... THRESHOLD=...`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# `make install` keeps a torch that already imports, else installs the pinned build, then the
# project with its extras, torch held at the installed version so that pip picks the torchvision
# built for it (the ixc extra's). With TORCH_INDEX it (re)installs torch and a matching
# torchvision from that index; `make install-gpu` does that with the CUDA index TORCH_CUDA
# names, plus flash-attn.
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=
TORCH_CUDA ?= cu128
FLASH_ATTN_VERSION ?= 2.8.3
# The project's extras to install (pyproject.toml): e.g. dev,ixc,s3 for object storage.
EXTRAS ?= dev,ixc

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
# export: the run to export, where to (a new folder), llava or jsonl, and clean/review/dropped.
RUN ?=
EXPORTED ?= $(RUN)-export
LAYOUT ?= llava
PART ?= clean
# subset: the share of each manifest to keep and where the subset's root goes.
FRACTION ?= 0.01
SUBSET ?= data/$(DATASET)-subset
PYTEST_ARGS ?=

# A mistyped variable (THRESHHOLD=-5) would otherwise be ignored and the run cut at the
# config's threshold: refuse every command-line variable this Makefile does not read.
KNOWN_VARIABLES := DATASET THRESHOLD PERCENTILE INPUT OUTPUT MODEL FORMAT RUNNER BEAM_ARGS \
	OVERWRITE TRUST_REMOTE_CODE SCORE_CACHE DECISIONS REVIEWED UNDECIDED SAMPLE_DIR PYTEST_ARGS \
	RUN EXPORTED LAYOUT PART FRACTION SUBSET PYTHON VENV TORCH_SPEC TORCH_INDEX TORCH_CUDA \
	FLASH_ATTN_VERSION EXTRAS
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

# One stamp per (torch, index, extras): asking for another torch or extras on an existing .venv
# reinstalls instead of answering "Nothing to be done" with the old torch still in place.
INSTALL_KEY := $(shell printf '%s|%s|%s' '$(TORCH_SPEC)' '$(TORCH_INDEX)' '$(EXTRAS)' | cksum | cut -d' ' -f1)
INSTALLED := $(VENV)/.installed-$(INSTALL_KEY)

.DEFAULT_GOAL := help
.PHONY: help install install-gpu clean apply-review export report doctor subset sample test test-fast \
	lint format bench distclean

help: ## List the targets and the variables `make clean` takes
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-13s %s\n", $$1, $$2}'
	@echo "  variables: $(KNOWN_VARIABLES)"
	@echo "  no target deletes run outputs (out/) or downloads (data/ other than data/sample)"

install: $(INSTALLED) ## Create .venv with torch (CPU build unless TORCH_INDEX=) and the project

$(INSTALLED): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	@if [ -n '$(TORCH_INDEX)' ]; then \
		echo "installing $(TORCH_SPEC) and torchvision from $(TORCH_INDEX)"; \
		$(BIN)/python -m pip uninstall --quiet --yes torch torchvision; \
		$(BIN)/python -m pip install --quiet $(TORCH_INDEX) "$(TORCH_SPEC)" torchvision; \
	else \
		$(BIN)/python -c "import torch" 2>/dev/null || \
			$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"; \
	fi
	$(BIN)/python -m pip install --quiet -e '.[$(EXTRAS)]' \
		"torch==$$($(BIN)/python -c 'import torch; print(torch.__version__.split("+")[0])')"
	rm -f $(VENV)/.installed $(VENV)/.installed-*
	touch $@
	@$(BIN)/python -c 'import torch; print(f"installed: torch {torch.__version__}", \
		f"(CUDA {torch.version.cuda})" if torch.version.cuda else "(CPU build)", \
		"and rmclean[$(EXTRAS)] in $(VENV); run commands with make, or source $(BIN)/activate")'

install-gpu: ## GPU machine: CUDA torch (TORCH_CUDA=cu128), the ixc extra, flash-attn if a wheel exists
	@nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null || \
		echo "install-gpu: nvidia-smi found no GPU; installing the CUDA build anyway" >&2
	$(MAKE) --no-print-directory install EXTRAS=dev,ixc \
		TORCH_INDEX=--index-url=https://download.pytorch.org/whl/$(TORCH_CUDA)
	@url=$$($(BIN)/python deploy/flash_attn_wheel.py $(FLASH_ATTN_VERSION)) && \
		$(BIN)/python -m pip install --quiet "$$url" && echo "installed: flash-attn from $$url" || \
		echo "flash-attn: no prebuilt wheel for this torch/CUDA/Python ($$url); skipped:" \
			"ixc25 uses torch's scaled-dot-product attention instead"
	@$(BIN)/rmclean doctor || true

clean: install ## THE MAIN JOB: make clean DATASET=sample THRESHOLD=-2.0 [PERCENTILE= INPUT= OUTPUT= ...]
	@if [ "$(DATASET)" = sample ] && [ -z "$(INPUT)" ]; then $(MAKE) --no-print-directory sample; fi
	$(BIN)/rmclean clean $(CLEAN_ARGS)

apply-review: install ## Apply review decisions: OUTPUT=<run> DECISIONS="a.jsonl ..." [REVIEWED= UNDECIDED=]
	@if [ "$(origin OUTPUT)" = file ] || [ -z "$(DECISIONS)" ]; then \
		echo "make apply-review needs OUTPUT=<the run's prefix> and DECISIONS=<decisions.jsonl ...>" >&2; exit 2; fi
	$(BIN)/rmclean apply-review $(OUTPUT) $(foreach f,$(DECISIONS),--decisions $(f)) \
		--output $(REVIEWED) --undecided $(UNDECIDED) $(if $(OVERWRITE),--overwrite)

export: install ## Write a run's samples in their original layout: RUN=<run> [EXPORTED= LAYOUT= PART=]
	@if [ -z "$(RUN)" ]; then echo "make export needs RUN=<the run's prefix>" >&2; exit 2; fi
	$(BIN)/rmclean export $(RUN) --output $(EXPORTED) --layout $(LAYOUT) --part $(PART)

report: install ## Rebuild a run's report page: OUTPUT=<run>
	@if [ "$(origin OUTPUT)" = file ]; then echo "make report needs OUTPUT=<the run's prefix>" >&2; exit 2; fi
	$(BIN)/rmclean report $(OUTPUT)

subset: install ## A slice of a downloaded dataset to try first: DATASET= [FRACTION=0.01 SUBSET= INPUT=]
	$(BIN)/rmclean subset --config configs/$(DATASET).yaml --fraction $(FRACTION) \
		--output $(SUBSET) $(if $(INPUT),--input $(INPUT))

doctor: install ## What this machine can run: torch, CUDA, GPUs, packages, each config's models
	$(BIN)/rmclean doctor

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
