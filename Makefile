# Two entry points for a fresh machine (each makes its own virtual environment):
#   make demo   set up, fetch real data, train a small GPT on Shakespeare, generate
#   make test   set up and run the whole test suite (what CI runs)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_RUN ?= runs/demo
DEMO_STEPS ?= 600
DEMO_PROMPT ?= ROMEO. O, she doth teach the torches

.PHONY: setup demo test test-fast bench clean

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

bench: setup
	$(BIN)/pip install --quiet -e ".[bench]"
	$(BIN)/python bench/bench_foundation.py

clean:
	rm -rf $(VENV) build *.egg-info
