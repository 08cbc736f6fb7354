# Two entry points for a fresh machine (each makes its own virtual environment):
#   make demo   set up, fetch real data, train a small GPT on Shakespeare, generate
#   make test   set up and run the whole test suite (what CI runs)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_RUN ?= runs/demo
DEMO_STEPS ?= 600
DEMO_PROMPT ?= ROMEO. O, she doth teach the torches

MODELS_DIR ?= runs/models
PRETRAIN_STEPS ?= 2500
FINETUNE_STEPS ?= 1500

.PHONY: setup demo test test-fast bench models clean

$(BIN)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

setup: $(BIN)/.installed

demo: setup
	$(BIN)/gpt-tf data prepare lm-en
	$(BIN)/gpt-tf train --run-dir $(DEMO_RUN) --dataset lm-en --preset mini \
		--train.steps=$(DEMO_STEPS) --train.eval_every=200 --train.checkpoint_every=200
	$(BIN)/gpt-tf evaluate $(DEMO_RUN)
	$(BIN)/gpt-tf generate $(DEMO_RUN) --prompt "$(DEMO_PROMPT)" --max-new-tokens 120 --seed 1

test: setup
	$(BIN)/python -m pytest -q

test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow"

# Reproduces the shipped multi-task model from scratch (about 1 hour on 2 CPU cores):
# data -> pretraining mixture -> pretrain -> fine-tune on the tasks.
models: setup
	$(BIN)/gpt-tf data prepare lm-en mt-en-fr sentiment-en sentiment-en-3class qa-en
	test -d $(MODELS_DIR)/mix || $(BIN)/gpt-tf data mix lm-en mt-en-fr sentiment-en \
		sentiment-en-3class --out $(MODELS_DIR)/mix
	$(BIN)/gpt-tf train --run-dir $(MODELS_DIR)/base --data $(MODELS_DIR)/mix/train \
		--validation-data $(MODELS_DIR)/mix/validation --preset mini \
		--train.steps=$(PRETRAIN_STEPS) --train.eval_every=500 --train.checkpoint_every=250

bench: setup
	$(BIN)/pip install --quiet -e ".[bench]"
	$(BIN)/python bench/bench_foundation.py

clean:
	rm -rf $(VENV) build *.egg-info
