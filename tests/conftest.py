"""Shared fixtures: one tiny corpus, tokenizer, model and trained run per session.

TensorFlow startup and XLA compiles dominate a small test's time, so the
expensive objects are built once and shared; tests must not mutate them.
"""

import glob
import os

import pytest

import gpt_tf  # noqa: F401  (sets the Keras backend before keras is imported)

DATA_DIR = os.path.join(os.path.dirname(__file__), "data")
CORPUS_FILES = sorted(glob.glob(os.path.join(DATA_DIR, "tiny_corpus", "*.txt")))
# Tiny shape from STYLE.md: 2 layers, hidden 16, context 32. The vocab must
# hold 256 byte pieces + 11 specials, hence 320 rather than 64.
TINY_VOCAB = 320


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: long end-to-end runs (CI runs them once)")


@pytest.fixture(scope="session")
def corpus_files():
    return CORPUS_FILES


@pytest.fixture(scope="session")
def tokenizer(tmp_path_factory):
    from gpt_tf.tokenizer import train_tokenizer

    return train_tokenizer(CORPUS_FILES, str(tmp_path_factory.mktemp("tok")),
                           vocab_size=TINY_VOCAB)


@pytest.fixture(scope="session")
def tiny_config():
    from gpt_tf.config import apply_overrides, preset

    return apply_overrides(preset("nano"), {
        "model.vocab_size": TINY_VOCAB, "model.sequence_length": 32, "model.hidden_dim": 16,
        "model.num_heads": 2, "model.intermediate_dim": 64, "model.num_layers": 2,
    })


@pytest.fixture(scope="session")
def tiny_model(tiny_config):
    import keras

    from gpt_tf.models import GPTCausalLM

    keras.utils.set_random_seed(7)
    return GPTCausalLM.from_model_config(tiny_config.model)


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, tiny_config):
    """A run directory trained for 60 steps on the tiny corpus."""
    from gpt_tf.config import apply_overrides
    from gpt_tf.training import prepare_run, train

    run_dir = str(tmp_path_factory.mktemp("runs") / "tiny")
    config = apply_overrides(tiny_config, {
        "train.steps": 60, "train.batch_size": 8, "train.learning_rate": 3e-3,
        "train.warmup_steps": 5, "train.eval_every": 30, "train.checkpoint_every": 20,
        "train.log_every": 10, "data.validation_fraction": 0.25, "train.sample_every": 30,
    })
    prepare_run(run_dir, config, CORPUS_FILES)
    events = []
    result = train(run_dir, on_event=lambda kind, info: events.append((kind, info)),
                   sample_prompts=["And God said"])
    return {"run_dir": run_dir, "result": result, "events": events}
