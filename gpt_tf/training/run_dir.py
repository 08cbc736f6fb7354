"""The run directory: its files, `prepare_run` that creates one, `load_model` that reads it.

    config.json      the `RunConfig` (a resume's train.* overrides are written back)
    data_split.json  {"kind": "lm" | "tasks", "train": [...], "validation": [...]}
    tokenizer.model  and tokenizer.json
    init_from.json   fine-tuning runs: {"run_dir": BASE}, whose weights step 0 starts from
    checkpoints/     the latest `train.keep_checkpoints` (model, optimizer, step, dropout seeds)
    best/            the checkpoint with the best `train.best_metric`
    logs/            TensorBoard: train/, validation/, profile/
    history.jsonl    one line of validation metrics per evaluation
    config_changes.jsonl  one line per resume that changed train.* settings: the step and
                     each changed key's old and new value (config.json holds only the last)
    model.keras      the final model, written when a run completes or stops early
"""

import dataclasses
import json
import os
import shutil
import tempfile

import keras
import tensorflow as tf

from gpt_tf import data as data_lib
from gpt_tf.config import RunConfig, apply_overrides
from gpt_tf.errors import UserError
from gpt_tf.files import atomic_write_text
from gpt_tf.models import GPTCausalLM
from gpt_tf.textfiles import atomic_directory, resolve_text_files
from gpt_tf.tokenizer import MODEL_FILE, Tokenizer, load_tokenizer, train_tokenizer

CONFIG_FILE = "config.json"
SPLIT_FILE = "data_split.json"
MODEL_KERAS = "model.keras"
HISTORY_FILE = "history.jsonl"
CHANGES_FILE = "config_changes.jsonl"
# Fine-tuning runs start from another run's weights: {"run_dir": BASE}.
INIT_FILE = "init_from.json"
CHECKPOINTS_DIR = "checkpoints"
BEST_DIR = "best"
LOGS_DIR = "logs"


def is_run_dir(path):
    return os.path.isfile(os.path.join(path, CONFIG_FILE))


def load_run_config(run_dir):
    if not is_run_dir(run_dir):
        raise UserError(f"'{run_dir}' is not a run directory (no {CONFIG_FILE}); "
                        "create one with `gpt-tf train --data ... --run-dir DIR`")
    path = os.path.join(run_dir, CONFIG_FILE)
    with open(path) as handle:
        return RunConfig.from_json(handle.read(), source=path)


def write_run_config(run_dir, config):
    atomic_write_text(os.path.join(run_dir, CONFIG_FILE), config.to_json())


def load_split(run_dir):
    """The run's data: `{"train": [...], "validation": [...]}` (+ `kind`).

    `kind` is `lm` (lists of `Source`) or `tasks` (fine-tuning specs that
    `gpt_tf.task_data.examples.task_dataset` understands).
    """
    with open(os.path.join(run_dir, SPLIT_FILE)) as handle:
        split = json.load(handle)
    kind = split.pop("kind", "lm")
    if kind == "lm":
        split = {name: [data_lib.Source(**s) for s in sources] for name, sources in split.items()}
    split["kind"] = kind
    return split


def read_init_from(run_dir):
    """The base run whose weights a fine-tuning run starts from, or None."""
    path = os.path.join(run_dir, INIT_FILE)
    if not os.path.isfile(path):
        return None
    with open(path) as handle:
        return json.load(handle)["run_dir"]


def append_history(run_dir, metrics):
    with open(os.path.join(run_dir, HISTORY_FILE), "a") as handle:
        handle.write(json.dumps(metrics) + "\n")


def append_config_change(run_dir, step, old, new):
    """Records which `train.*` settings a resume at `step` changed, from `old` to `new`.

    config.json is rewritten with the new settings, so without this line a run's later
    readers (model cards, reproductions) could not tell what trained its first steps.
    """
    before, after = dataclasses.asdict(old.train), dataclasses.asdict(new.train)
    changed = {key: [before[key], after[key]] for key in after if before[key] != after[key]}
    if changed:
        with open(os.path.join(run_dir, CHANGES_FILE), "a") as handle:
            handle.write(json.dumps({"step": int(step), "train": changed}) + "\n")


def save_model_atomic(model, path):
    """`model.save(path)` through a temporary file renamed into place."""
    directory = os.path.dirname(path)
    handle, tmp = tempfile.mkstemp(suffix=".keras", dir=directory, prefix=".model-")
    os.close(handle)
    try:
        model.save(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def prepare_run(run_dir, config, data_paths, validation_paths=None, tokenizer_path=None):
    """Creates a run directory: checks data, splits it, trains the tokenizer.

    Everything is written to a temporary directory first and renamed into
    place, so a bad input leaves nothing behind.

    Args:
        run_dir: directory to create (must not exist).
        config: a `RunConfig`.
        data_paths: text files, directories or globs for training.
        validation_paths: optional held-out text; otherwise whole documents
            are held out by `config.data.validation_fraction`.
        tokenizer_path: optional existing `tokenizer.model` to reuse;
            `model.vocab_size` then follows it.

    Returns:
        The `RunConfig` written (vocab size may follow the tokenizer).
    """
    train_sources, validation_sources = _split_sources(config, data_paths, validation_paths)
    with atomic_directory(run_dir) as tmp:
        if tokenizer_path:
            shutil.copy(tokenizer_path, os.path.join(tmp, MODEL_FILE))
            tokenizer = Tokenizer(os.path.join(tmp, MODEL_FILE))
            tokenizer.save_metadata(tmp)
            config = apply_overrides(config, {"model.vocab_size": tokenizer.vocab_size})
        else:
            train_tokenizer(sorted({s.path for s in train_sources}), tmp,
                            vocab_size=config.model.vocab_size,
                            model_type=config.data.tokenizer_model_type)
        with open(os.path.join(tmp, CONFIG_FILE), "w") as handle:
            handle.write(config.to_json())
        with open(os.path.join(tmp, SPLIT_FILE), "w") as handle:
            json.dump({"train": [dataclasses.asdict(s) for s in train_sources],
                       "validation": [dataclasses.asdict(s) for s in validation_sources]},
                      handle, indent=2)
    return config


def _split_sources(config, data_paths, validation_paths):
    """`(train_sources, validation_sources)`: given files, or documents held out."""
    files = resolve_text_files(data_paths)
    if not validation_paths:
        return data_lib.split_documents(files, config.data.validation_fraction, config.data.seed)
    validation_files = resolve_text_files(validation_paths)
    overlap = set(files) & set(validation_files)
    if overlap:
        raise UserError(f"files are both training and validation data: {sorted(overlap)[:3]}")
    return [data_lib.Source(f) for f in files], [data_lib.Source(f) for f in validation_files]


def load_model(run_dir, checkpoint="final"):
    """Loads the trained `GPTCausalLM` of a run.

    Args:
        run_dir: run directory.
        checkpoint: `final` (model.keras, falling back to the latest
            checkpoint), `latest` or `best`.

    Returns:
        `(model, tokenizer, config)`.
    """
    config = load_run_config(run_dir)
    tokenizer = load_tokenizer(run_dir)
    final = os.path.join(run_dir, MODEL_KERAS)
    if checkpoint == "final" and os.path.isfile(final):
        try:
            model = keras.saving.load_model(final)
        except Exception as error:  # a corrupt zip raises many types
            raise UserError(f"'{final}' is unreadable ({type(error).__name__}); restore it "
                            "(git checkout or a re-export), retrain, or load the run's latest "
                            "checkpoint instead (`--checkpoint latest` of gpt-tf generate / "
                            "evaluate, checkpoint='latest' in Python)") from None
        return model, tokenizer, config
    model = GPTCausalLM.from_model_config(config.model)
    directory = os.path.join(run_dir, BEST_DIR if checkpoint == "best" else CHECKPOINTS_DIR)
    latest = tf.train.latest_checkpoint(directory)
    if latest is None:
        raise UserError(f"run '{run_dir}' has no {checkpoint} model or checkpoint yet; train it first")
    status = tf.train.Checkpoint(model=model).restore(latest)
    status.expect_partial().assert_existing_objects_matched()
    return model, tokenizer, config
