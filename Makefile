# Two entry points for a fresh machine (each makes its own virtual environment):
#   make demo   set up, run the four apps on held-out examples with the shipped models
#               (SavedModel in process, TFLite runner, REST server)
#   make test   set up and run the whole test suite (what CI runs)
# More: make train-demo (fetch Shakespeare, train, evaluate, generate), make models /
# make models-portable (rebuild the shipped model from scratch), make bench.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_RUN ?= runs/demo
DEMO_STEPS ?= 600
DEMO_PROMPT ?= ROMEO. O, she doth teach the torches

.PHONY: setup demo train-demo test test-fast bench models models-portable ship reports reports-full compare cards clean

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

# The shipped multi-task model: data -> pretraining mixture -> tokenizer -> pretrain ->
# fine-tune on the four tasks -> compared with the shipped model; `make ship` then exports
# SavedModel + int8 TFLite and writes the evaluation report.
#   make models            a generalist model from scratch on this CPU (rounds 10 and 13:
#                          docs/OPTIMISATION.md): modern data for every task (docs, news,
#                          IMDB reviews, software messages, tweets, editorials), bfloat16,
#                          about 80 minutes of pretraining and 25 of fine-tuning on 2 cores
#                          with the defaults, then `compare` (nothing is replaced). Every
#                          stage resumes where it stopped: rerun `make models` after an
#                          interruption.
#   make models-portable   the same Keras model trained with the JAX backend from packed
#                          arrays (tools/portable_train.py; on a GPU with JAX_EXTRA=[cuda13];
#                          it made the round-9 model from Shakespeare and the Bible), then
#                          `compare`
#   make ship RUN=...      REPLACES models/, saved_models/ and tflite/ (git checkout restores)
MODELS_DIR ?= runs/models
PRETRAIN_STEPS ?= 1300
FINETUNE_STEPS ?= 600
FINETUNE_LR ?= 5e-4
PORTABLE_DIR ?= runs/portable
JAX_EXTRA ?=
# TOKENIZER= trains a new tokenizer on the mixture (make models always does); a path reuses one.
TOKENIZER ?=
PORTABLE_PRETRAIN = --pretrain train.steps=12000 --pretrain train.batch_size=64 \
	--pretrain train.learning_rate=1e-3 --pretrain train.min_learning_rate=1e-4 \
	--pretrain train.warmup_steps=300 --pretrain train.eval_every=250
PORTABLE_FINETUNE = --finetune train.steps=8000 --finetune train.batch_size=64 \
	--finetune train.warmup_steps=150 --finetune train.eval_every=250 \
	--finetune train.early_stopping_patience=6
# The pretraining mixture (train and validation splits only) and the model shape. The
# evaluation-only sets (lm-en-wiki, qa-en-wiki, sentiment-en-reviews, sentiment-en-products,
# lm-en-reviews) are refused here: they are the report's out-of-domain columns.
MIX_SETS ?= lm-en lm-en-news lm-en-docs lm-en-imdb mt-en-fr-broad sentiment-en-broad
PRESET ?= mini
EVAL_SETS = lm-en-wiki qa-en-wiki sentiment-en-reviews sentiment-en-products mt-en-fr-software
# One stamp per set list, so a new MIX_SETS rebuilds the mixture.
MIX_DONE = $(MODELS_DIR)/mix/.done-$(shell echo $(MIX_SETS) | tr ' ' '+')
TASKS = --task translate=mt-en-fr-broad --task qa=qa-en-broad --task sentiment=sentiment-en-broad \
	--task generate=lm-en-docs --weight sentiment=3 --weight generate=0.4
PRETRAIN = --preset $(PRESET) --model.dropout=0.0 --train.steps=$(PRETRAIN_STEPS) \
	--train.batch_size=32 --train.learning_rate=1e-3 --train.min_learning_rate=1e-4 \
	--train.warmup_steps=150 --train.eval_every=250 --train.eval_steps=20 \
	--train.checkpoint_every=100 --train.mixed_precision=bfloat16

$(MIX_DONE):
	$(BIN)/gpt-tf data prepare $(MIX_SETS) qa-en qa-en-broad mt-en-fr sentiment-en $(EVAL_SETS)
	rm -rf $(MODELS_DIR)/mix
	$(BIN)/gpt-tf data mix $(MIX_SETS) --out $(MODELS_DIR)/mix
	touch $@

models-portable: setup $(MIX_DONE)
	rm -rf $(PORTABLE_DIR) $(PORTABLE_DIR).tokenizer
	$(if $(TOKENIZER),,$(BIN)/gpt-tf tokenizer train $(MODELS_DIR)/mix/train \
		--output $(PORTABLE_DIR).tokenizer --vocab-size 8192)
	$(BIN)/python tools/portable_train.py prepare --work $(PORTABLE_DIR) --mix $(MODELS_DIR)/mix \
		--tokenizer $(or $(TOKENIZER),$(PORTABLE_DIR).tokenizer/tokenizer.model) $(TASKS) \
		--preset $(PRESET) $(PORTABLE_PRETRAIN) $(PORTABLE_FINETUNE)
	$(BIN)/python -c "import jax" 2>/dev/null || $(BIN)/pip install --quiet "jax$(JAX_EXTRA)"
	KERAS_BACKEND=jax $(BIN)/python tools/portable_train.py train --work $(PORTABLE_DIR) \
		--finetune-learning-rates 1e-3,2e-3
	$(BIN)/python tools/portable_train.py import --work $(PORTABLE_DIR)
	$(MAKE) compare RUN=$(PORTABLE_DIR)/multitask
	@echo "compared with the shipped model in reports/candidate/report.md; if it is better as a"
	@echo "whole: make ship RUN=$(PORTABLE_DIR)/multitask TRAINING=$(PORTABLE_DIR)/output/history.json"

# The tokenizer is trained on the mixture's train split by the first `gpt-tf train`.
models: setup $(MIX_DONE)
	$(BIN)/gpt-tf train --run-dir $(MODELS_DIR)/base --data $(MODELS_DIR)/mix/train \
		--validation-data $(MODELS_DIR)/mix/validation $(PRETRAIN) \
		$(if $(TOKENIZER),--tokenizer $(TOKENIZER)) --quiet
	$(BIN)/gpt-tf finetune --base $(MODELS_DIR)/base --run-dir $(MODELS_DIR)/multitask \
		$(TASKS) --train.steps=$(FINETUNE_STEPS) --train.batch_size=16 --train.learning_rate=$(FINETUNE_LR) \
		--train.warmup_steps=50 --train.eval_every=150 --train.eval_steps=20 \
		--train.checkpoint_every=100 --train.best_metric=task_loss \
		--train.restore_best_weights=true --quiet
	$(MAKE) compare RUN=$(MODELS_DIR)/multitask
	@echo "compared with the shipped model in reports/candidate/report.md; if it is better as a"
	@echo "whole: make ship RUN=$(MODELS_DIR)/multitask MODELS_DIR=$(MODELS_DIR)"

# Copies a fine-tuned run to models/multitask, exports it as the next SavedModel version
# (older versions are removed: the repository keeps one) and int8 TFLite, evaluates all
# three backends on the test splits, in and out of domain, and writes the model cards.
# TRAINING: the portable trainer's history.json (kept as models/multitask/training_history.json);
# with it, RUN's own history.jsonl is a further fine-tuning on this machine (round 10's
# adaptation of the round-9 model: make ship RUN=runs/adapt TRAINING=...).
# BASE: the pretraining run of gpt-tf's own loop (its config, history and mixture are kept
# under models/multitask/pretraining/ for the card).
BASE ?= $(MODELS_DIR)/base
CARD_REPORTS = --report reports/evaluation/report.json \
	$(foreach r,$(wildcard reports/full-test/*/report.json),--report $(r))
ship: setup
	test -f $(RUN)/model.keras
	rm -rf models/multitask.new && mkdir -p models/multitask.new
	cp $(RUN)/config.json $(RUN)/tokenizer.model $(RUN)/tokenizer.json $(RUN)/model.keras \
		$(RUN)/task_card.json $(RUN)/export_tasks.json models/multitask.new/
	cp $(RUN)/history.jsonl models/multitask.new/
	$(if $(wildcard $(RUN)/init_from.json),cp $(RUN)/init_from.json models/multitask.new/)
	$(if $(wildcard $(RUN)/config_changes.jsonl),cp $(RUN)/config_changes.jsonl models/multitask.new/)
	$(if $(TRAINING),,mkdir -p models/multitask.new/pretraining && \
		cp $(BASE)/config.json $(BASE)/history.jsonl $(wildcard $(BASE)/config_changes.jsonl) \
			models/multitask.new/pretraining/ && \
		cp $(MODELS_DIR)/mix/mixture.json models/multitask.new/pretraining/)
	$(if $(TRAINING),cp $(TRAINING) models/multitask.new/training_history.json)
	rm -rf models/multitask && mv models/multitask.new models/multitask
	next=$$(( $$(ls saved_models/multitask 2>/dev/null | sort -n | tail -1) + 1 )); \
		rm -rf saved_models/multitask && $(BIN)/gpt-tf export savedmodel models/multitask \
		--name multitask --stable --version $$next
	rm -rf tflite/multitask-int8
	$(BIN)/gpt-tf export tflite models/multitask --name multitask-int8 --quantize int8
	rm -rf reports/full-test
	$(MAKE) reports

# The shipped model's reports and model cards: all tasks on the three backends, each on its
# in-domain test set and its out-of-domain sets (default sizes, about 35 minutes on 2 cores).
# `make reports-full` (Keras, about 30 minutes) measures what the default sizes leave within
# noise: QA, translation and sentiment on their whole in-domain test splits, the whole
# out-of-domain sentiment and software-translation sets, and 1,000 Wikipedia questions.
# Whole reviews are read in windows (about 5 a review, one model call each): 100 of them.
REPORT_LIMITS ?= --limit sentiment-en-reviews=100
reports: setup
	$(BIN)/gpt-tf evaluate --task all --model models/multitask --backend-compare \
		$(REPORT_LIMITS) --output reports/evaluation
	$(MAKE) cards

reports-full: setup
	$(BIN)/gpt-tf evaluate --task qa --limit 0 --limit qa-en-wiki=1000 --model models/multitask \
		--output reports/full-test/qa
	$(BIN)/gpt-tf evaluate --task translate --limit 0 \
		--model models/multitask --output reports/full-test/translate
	$(BIN)/gpt-tf evaluate --task sentiment --limit 0 \
		--model models/multitask --output reports/full-test/sentiment
	$(MAKE) cards

# A candidate run against the shipped model, Keras, on the same examples (the report's samples
# and 1,000 Wikipedia questions and 300 whole reviews): each metric's margin over the shipped
# model with its 95% interval, in reports/candidate/ (COMPARE_OUT=DIR keeps an earlier comparison).
# Nothing is replaced; `make ship` does that.
COMPARE_OUT ?= reports/candidate
compare: setup
	$(if $(RUN),,$(error give the candidate: make compare RUN=DIR))
	$(if $(filter $(abspath $(RUN)),$(abspath models/multitask)),$(error RUN is the shipped model itself))
	test -f $(RUN)/model.keras
	$(BIN)/gpt-tf evaluate --task all --model models/multitask --model $(RUN) \
		--limit qa-en-wiki=1000 --limit sentiment-en-reviews=300 --output $(COMPARE_OUT)

cards: setup
	$(BIN)/python tools/model_card.py --run models/multitask $(CARD_REPORTS) \
		$(if $(wildcard models/multitask/training_history.json),--training models/multitask/training_history.json) \
		$(if $(wildcard models/multitask/pretraining/config.json),--base models/multitask/pretraining --mixture models/multitask/pretraining/mixture.json) \
		--out models/multitask/MODEL_CARD.md --out saved_models/multitask/MODEL_CARD.md \
		--out tflite/multitask-int8/MODEL_CARD.md

bench: setup
	$(BIN)/pip install --quiet -e ".[bench]"
	$(BIN)/python bench/bench_foundation.py

clean:
	rm -rf $(VENV) build *.egg-info
