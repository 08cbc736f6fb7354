# Two entry points for a fresh machine (each makes its own virtual environment):
#   make demo   set up, run the four apps on held-out examples with the shipped models
#               (SavedModel in process, TFLite runner, REST server)
#   make test   set up and run the whole test suite (what CI runs)
# More: make train-demo (fetch Shakespeare, train, evaluate, generate), make models
# (rebuild the shipped models from scratch), make bench.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_RUN ?= runs/demo
DEMO_STEPS ?= 600
DEMO_PROMPT ?= ROMEO. O, she doth teach the torches

MODELS_DIR ?= runs/models
PRETRAIN_STEPS ?= 2000
FINETUNE_STEPS ?= 1200

.PHONY: setup demo train-demo test test-fast bench models clean

$(BIN)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

setup: $(BIN)/.installed

demo: setup
	$(BIN)/python -m apps.demo

train-demo: setup
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
	$(BIN)/gpt-tf finetune --base $(MODELS_DIR)/base --run-dir $(MODELS_DIR)/multitask \
		--task translate=mt-en-fr --task qa=qa-en --task sentiment=sentiment-en \
		--task generate=lm-en --weight qa=3 --weight sentiment=3 \
		--train.steps=$(FINETUNE_STEPS) --train.learning_rate=5e-4 --train.warmup_steps=50 \
		--train.eval_every=300 --train.checkpoint_every=300
	$(BIN)/gpt-tf export savedmodel $(MODELS_DIR)/multitask --name multitask --stable
	$(BIN)/gpt-tf export tflite $(MODELS_DIR)/multitask --name multitask-int8 --quantize int8
	$(BIN)/gpt-tf evaluate --task all --model $(MODELS_DIR)/multitask --backend-compare \
		--output reports/evaluation

bench: setup
	$(BIN)/pip install --quiet -e ".[bench]"
	$(BIN)/python bench/bench_foundation.py

clean:
	rm -rf $(VENV) build *.egg-info
