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
# The project's extras to install (pyproject.toml): dev and ixc (IXC-2.5-Reward's own imports)
# by default; e.g. dev,ixc,s3 for object storage, dev,ixc,airflow for the scheduled-run DAG
# (deploy/airflow/).
EXTRAS ?= dev,ixc

DATASET ?= sample
THRESHOLD ?=
PERCENTILE ?=
# truncate: keep the good prefix of a conversation whose later turns scored low.
REPAIR ?=
INPUT ?=
MODEL ?=
FORMAT ?=
RUNNER ?=
BEAM_ARGS ?=
OVERWRITE ?=
TRUST_REMOTE_CODE ?=
# Unset, rmclean's own defaults apply: each run a fresh timestamped prefix under the config's
# output folder (out/<dataset>/<UTC timestamp>), one score cache beside them. For report and
# apply-review, OUTPUT is the run to read: unset, the latest finished run of DATASET.
SCORE_CACHE ?=
OUTPUT ?=
SAMPLE_DIR ?= data/sample
# apply-review: the reviewers' decisions files, where the reviewed dataset goes (unset:
# reviewed-<run> beside the run), and where flagged samples nobody decided go.
DECISIONS ?=
REVIEWED ?=
UNDECIDED ?= review
# export: the run to export (unset: the latest finished run of DATASET), where to (unset:
# export-<run> beside the run; a new folder), llava or jsonl, and clean/review/dropped.
RUN ?=
EXPORTED ?=
LAYOUT ?= llava
PART ?= clean
# compare: the earlier run (default: the one before RUN) and the PSI above which it exits 3.
OLD ?=
DRIFT ?=
# subset: the share of each manifest to keep and where the subset's root goes.
FRACTION ?= 0.01
SUBSET ?= data/$(DATASET)-subset
# download-llava-video: the bucket, and how many of its video archives (unset: all).
BUCKET ?= 0_30_s_youtube_v0_1
ARCHIVES ?=
PYTEST_ARGS ?=
# RUNNER=spark / flink: the loopback engines (deploy/engines/), installed by `make engines`.
ENGINES_DIR ?= .engines
ENGINE_RUNNERS := spark flink

# A mistyped variable (THRESHHOLD=-5) would otherwise be ignored and the run cut at the
# config's threshold: refuse every command-line variable this Makefile does not read.
KNOWN_VARIABLES := DATASET THRESHOLD PERCENTILE REPAIR INPUT OUTPUT MODEL FORMAT RUNNER BEAM_ARGS \
	OVERWRITE TRUST_REMOTE_CODE SCORE_CACHE DECISIONS REVIEWED UNDECIDED SAMPLE_DIR PYTEST_ARGS \
	RUN EXPORTED LAYOUT PART FRACTION SUBSET BUCKET ARCHIVES PYTHON VENV TORCH_SPEC TORCH_INDEX \
	TORCH_CUDA FLASH_ATTN_VERSION EXTRAS OLD DRIFT ENGINES_DIR
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
	$(if $(REPAIR),--repair $(REPAIR)) \
	$(if $(INPUT),--input $(INPUT)) $(if $(MODEL),--model $(MODEL)) \
	$(if $(FORMAT),--format $(FORMAT)) $(if $(RUNNER),--runner $(RUNNER)) \
	$(if $(OVERWRITE),--overwrite) $(if $(TRUST_REMOTE_CODE),--trust-remote-code) \
	$(if $(SCORE_CACHE),--score-cache $(SCORE_CACHE)) $(BEAM_ARGS)

# One stamp per (torch, index, extras): asking for another torch or extras on an existing .venv
# reinstalls instead of answering "Nothing to be done" with the old torch still in place.
INSTALL_KEY := $(shell printf '%s|%s|%s' '$(TORCH_SPEC)' '$(TORCH_INDEX)' '$(EXTRAS)' | cksum | cut -d' ' -f1)
INSTALLED := $(VENV)/.installed-$(INSTALL_KEY)
ENGINES_INSTALLED := $(ENGINES_DIR)/.installed-$(INSTALL_KEY)

.DEFAULT_GOAL := help
.PHONY: help install install-gpu clean apply-review export report runs compare doctor subset sample test test-fast \
	lint format bench distclean download-allava-1pct download-allava download-llava-video \
	download-ixc25 engines engine-start engine-stop

# The run a target reads: $(1) if given, else the latest finished run of DATASET (its LATEST
# pointer, `rmclean latest`); the shell variable `run` holds it for the recipe's next command.
define RUN_OR_LATEST
run='$(1)'; if [ -z "$$run" ]; then \
	run=$$($(BIN)/rmclean latest --config configs/$(DATASET).yaml) || exit 2; fi
endef

help: ## List the targets and the variables `make clean` takes
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-21s %s\n", $$1, $$2}'
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

# RUNNER=spark / flink: the job runs from the engines' environment, on the engine engine.sh
# finds up on loopback or starts (and stops) for it.
clean: install $(if $(filter $(ENGINE_RUNNERS),$(RUNNER)),$(ENGINES_INSTALLED)) ## THE MAIN JOB: make clean DATASET=sample THRESHOLD=-2.0 [PERCENTILE= INPUT= OUTPUT= RUNNER= ...]
	@if [ "$(DATASET)" = sample ] && [ -z "$(INPUT)" ]; then $(MAKE) --no-print-directory sample; fi
ifeq ($(filter $(ENGINE_RUNNERS),$(RUNNER)),)
	$(BIN)/rmclean clean $(CLEAN_ARGS)
else
	ENGINES_DIR=$(ENGINES_DIR) deploy/engines/engine.sh run $(RUNNER) \
		$(ENGINES_DIR)/venv/bin/rmclean clean $(CLEAN_ARGS)
endif

engines: $(ENGINES_INSTALLED) ## Install the loopback Spark and Flink engines in .engines/ (pip, mvn, go)

$(ENGINES_INSTALLED): pyproject.toml deploy/engines/versions.env deploy/engines/install.sh \
		deploy/engines/spark-job-server.pom.xml deploy/engines/flink-job-server.pom.xml
	ENGINES_DIR=$(ENGINES_DIR) TORCH_SPEC='$(TORCH_SPEC)' PYTHON=$(PYTHON) deploy/engines/install.sh
	rm -f $(ENGINES_DIR)/.installed-*
	touch $@

engine-start: engines ## Start a loopback engine and leave it up: make engine-start RUNNER=spark|flink
	ENGINES_DIR=$(ENGINES_DIR) deploy/engines/engine.sh start $(RUNNER)

engine-stop: ## Stop the loopback engine engine-start started: make engine-stop RUNNER=spark|flink
	ENGINES_DIR=$(ENGINES_DIR) deploy/engines/engine.sh stop $(RUNNER)

apply-review: install ## Apply review decisions: DECISIONS="a.jsonl ..." [OUTPUT=<run> REVIEWED= UNDECIDED=]
	@if [ -z "$(DECISIONS)" ]; then \
		echo "make apply-review needs DECISIONS=<decisions.jsonl ...> (and OUTPUT=<run>, or the latest run of DATASET)" >&2; exit 2; fi
	@$(call RUN_OR_LATEST,$(OUTPUT)); set -x; $(BIN)/rmclean apply-review "$$run" \
		$(foreach f,$(DECISIONS),--decisions $(f)) $(if $(REVIEWED),--output $(REVIEWED)) \
		--undecided $(UNDECIDED) $(if $(OVERWRITE),--overwrite)

export: install ## Write a run's samples in their original layout: [RUN=<run> EXPORTED= LAYOUT= PART=]
	@$(call RUN_OR_LATEST,$(RUN)); set -x; $(BIN)/rmclean export "$$run" \
		$(if $(EXPORTED),--output $(EXPORTED)) --layout $(LAYOUT) --part $(PART)

report: install ## Rebuild a run's report page: [OUTPUT=<run>, default the latest run of DATASET]
	@$(call RUN_OR_LATEST,$(OUTPUT)); set -x; $(BIN)/rmclean report "$$run"

runs: install ## List a dataset's finished runs: DATASET= (its config's output folder)
	$(BIN)/rmclean runs --config configs/$(DATASET).yaml

compare: install ## What changed between two runs: [RUN=<new run, default the latest> OLD=<earlier run> DRIFT=0.2]
	@$(call RUN_OR_LATEST,$(RUN)); set -x; $(BIN)/rmclean compare $(OLD) "$$run" \
		$(if $(DRIFT),--fail-on-drift $(DRIFT))

subset: install ## A slice of a downloaded dataset to try first: DATASET= [FRACTION=0.01 SUBSET= INPUT=]
	$(BIN)/rmclean subset --config configs/$(DATASET).yaml --fraction $(FRACTION) \
		--output $(SUBSET) $(if $(INPUT),--input $(INPUT))

download-allava-1pct: install ## ALLaVA-4V's manifests and 1 of 10 LAION image zips, unzipped (~21 GB)
	$(BIN)/rmclean download allava-1pct

download-allava: install ## All of ALLaVA-4V: every LAION zip and Vision-Flan's images, unzipped (~260 GB)
	$(BIN)/rmclean download allava

download-llava-video: install ## One LLaVA-Video-178K bucket: BUCKET= [ARCHIVES=N] (~5.3 GB per video archive)
	$(BIN)/rmclean download llava-video --bucket $(BUCKET) $(if $(ARCHIVES),--archives $(ARCHIVES))

download-ixc25: install ## IXC-2.5-Reward, its CLIP vision tower and font into data/models (~19 GB)
	$(BIN)/rmclean download ixc25

doctor: install ## What this machine can run: torch, CUDA, GPUs, packages, each config's models
	$(BIN)/rmclean doctor

sample: install ## Generate the sample dataset into data/sample (once)
	@test -f $(SAMPLE_DIR)/labels.jsonl || $(BIN)/rmclean sample --output $(SAMPLE_DIR)

# Runs the command $(1), then says how long it took, on how many cores and at what load, so a
# test time is never quoted without the machine it was measured on.
define TIMED
@start=$$(date +%s); machine=$$($(BIN)/python -c 'import os; \
	print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the start")'); \
	$(1); code=$$?; echo "make $@: $$(( $$(date +%s) - start )) s on $$machine"; exit $$code
endef

test: install ## Run the test suite (the README's test command); ends with its time, cores and load
	$(call TIMED,$(BIN)/python -m pytest -q $(PYTEST_ARGS))

test-fast: install ## Tests without the slow end-to-end suites; ends with its time, cores and load
	$(call TIMED,$(BIN)/python -m pytest -q -m "not slow" $(PYTEST_ARGS))

lint: install ## ruff lint and format check, and the import contracts (pyproject.toml, lint-imports)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache

format: install ## Apply ruff formatting
	$(BIN)/ruff format .

bench: install ## CPU benchmarks -> bench/results/cpu_pipeline.json, gpu_util.json
	$(BIN)/python -m bench.pipeline_bench
	$(BIN)/python -m bench.gpu_util_bench

distclean: ## Remove what the project generated: .venv, .engines, data/sample, build files and caches
	rm -rf $(VENV) $(ENGINES_DIR) build *.egg-info .pytest_cache .ruff_cache
	test ! -f $(SAMPLE_DIR)/labels.jsonl || rm -rf $(SAMPLE_DIR)  # only the generated sample
	find . -name __pycache__ -type d -prune -not -path './$(VENV)/*' -exec rm -rf {} +
