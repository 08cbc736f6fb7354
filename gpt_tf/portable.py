"""Training on pre-tokenized arrays with any Keras 3 backend.

Why: `gpt_tf.training` drives TensorFlow strategies, but an accelerator machine
may have JAX and no TensorFlow (the GPU machines lent to this project do; a
TensorFlow wheel is too large to carry there). The model is plain Keras 3, so
the same `GPTCausalLM` trains there from arrays made here:

1. `pack_arrays` (host, needs the data files): tokenizes a pretraining run's
   documents and a fine-tuning run's task windows into one `.npz`.
2. `train_on_arrays` (any backend, no TensorFlow, no data files): pretrains on
   the document stream, then fine-tunes on the masked task windows, keeping
   the weights with the best validation loss of each stage.
3. `import_weights` (TensorFlow): writes the weights into the run directories
   as `model.keras`, with `history.jsonl` and TensorBoard event files, so
   export, evaluation and the apps use them like any trained run.

This module imports neither TensorFlow nor the data layer at import time.
"""

import dataclasses
import json
import os

import numpy as np

from gpt_tf.errors import UserError

ARRAYS_FORMAT_VERSION = 1
PRETRAIN, FINETUNE = "pretrain", "finetune"


# --------------------------------------------------------------------------- packing

def _source_lines(source):
    with open(source.path, encoding="utf-8") as handle:
        lines = handle.read().split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    end = None if source.take_lines < 0 else source.skip_lines + source.take_lines
    return lines[source.skip_lines:end]


def document_tokens(sources, tokenizer):
    """Each source as `[EOT] + tokens of its lines (newline kept)`, like `gpt_tf.data`."""
    docs = []
    for source in sources:
        lines = _source_lines(source)
        ids = [tokenizer.end_of_text_id]
        for row in tokenizer.encode([line + "\n" for line in lines]) if lines else []:
            ids.extend(row)
        docs.append(np.asarray(ids, np.uint16))
    return docs


def pack_arrays(pretrain_run, finetune_run, out_path):
    """Writes the `.npz` that `train_on_arrays` reads.

    Args:
        pretrain_run: a prepared (not necessarily trained) LM run directory.
        finetune_run: a prepared fine-tuning run directory (kind `tasks`) with
            the same tokenizer and model config.
        out_path: the `.npz` to write.

    Returns:
        A dict of counts (tokens, windows).
    """
    from gpt_tf.task_data.examples import task_windows
    from gpt_tf.tokenizer import load_tokenizer
    from gpt_tf.training import load_run_config, load_split

    pre_config, ft_config = load_run_config(pretrain_run), load_run_config(finetune_run)
    if dataclasses.replace(ft_config.model, dropout=pre_config.model.dropout) != pre_config.model:
        raise UserError(f"'{pretrain_run}' and '{finetune_run}' have different model shapes")
    tokenizer = load_tokenizer(pretrain_run)
    if tokenizer.fingerprint() != load_tokenizer(finetune_run).fingerprint():
        raise UserError(f"'{pretrain_run}' and '{finetune_run}' use different tokenizers")
    if tokenizer.vocab_size > np.iinfo(np.uint16).max:
        raise UserError("pack_arrays stores ids as uint16; the vocabulary is too large")
    length = pre_config.model.sequence_length
    pre_split, ft_split = load_split(pretrain_run), load_split(finetune_run)
    if pre_split["kind"] != "lm" or ft_split["kind"] != "tasks":
        raise UserError("pack_arrays needs an LM run and a fine-tuning (tasks) run")
    train_docs = document_tokens(pre_split["train"], tokenizer)
    validation_docs = document_tokens(pre_split["validation"], tokenizer)
    ft_train = task_windows(ft_split["train"], tokenizer, length, shuffle=True,
                            seed=ft_config.data.seed)
    ft_validation = task_windows(ft_split["validation"], tokenizer, length, shuffle=False)
    arrays = {
        "pre_train": np.concatenate(train_docs),
        "pre_train_offsets": np.cumsum([0] + [len(d) for d in train_docs]).astype(np.int64),
        "pre_validation": np.concatenate(validation_docs),
        "ft_train_tokens": ft_train[0].astype(np.uint16),
        "ft_train_mask": ft_train[1].astype(np.uint8),
        "ft_validation_tokens": ft_validation[0].astype(np.uint16),
        "ft_validation_mask": ft_validation[1].astype(np.uint8),
    }
    counts = {"format_version": ARRAYS_FORMAT_VERSION, "sequence_length": length,
              "pretrain_documents": len(train_docs),
              "pretrain_tokens": int(arrays["pre_train"].size),
              "pretrain_validation_tokens": int(arrays["pre_validation"].size),
              "finetune_windows": int(len(ft_train[0])),
              "finetune_answer_tokens": int(ft_train[1].sum()),
              "finetune_validation_windows": int(len(ft_validation[0]))}
    arrays["meta"] = np.frombuffer(json.dumps(counts).encode(), np.uint8)
    tmp = out_path + ".tmp.npz"
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, out_path)
    return counts


def load_arrays(path):
    """The arrays written by `pack_arrays` (a dict) and their counts."""
    try:
        with np.load(path) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError) as error:
        raise UserError(f"'{path}' is not a readable arrays file ({error}); "
                        "write it again with tools/portable/pack.py") from None
    if "meta" not in arrays:
        raise UserError(f"'{path}' has no 'meta' entry; it was not written by pack_arrays")
    meta = json.loads(arrays.pop("meta").tobytes().decode())
    if meta.get("format_version") != ARRAYS_FORMAT_VERSION:
        raise UserError(f"'{path}' has format {meta.get('format_version')}, this code reads "
                        f"{ARRAYS_FORMAT_VERSION}; pack it again")
    return arrays, meta


# --------------------------------------------------------------------------- batches

def lm_epoch_windows(tokens, offsets, length, rng):
    """One epoch of `(length + 1)`-token windows: documents in a new order, a random start."""
    order = rng.permutation(len(offsets) - 1)
    stream = np.concatenate([tokens[offsets[i]:offsets[i + 1]] for i in order])
    start = int(rng.integers(length + 1))
    count = (len(stream) - start) // (length + 1)
    windows = stream[start:start + count * (length + 1)].reshape(count, length + 1)
    return windows[rng.permutation(count)]


def lm_batches(tokens, offsets, length, batch_size, seed):
    """Endless `(inputs, targets, weights)` batches of the document stream."""
    rng = np.random.default_rng(seed)
    while True:
        windows = lm_epoch_windows(tokens, offsets, length, rng)
        for i in range(0, len(windows) - batch_size + 1, batch_size):
            w = windows[i:i + batch_size].astype(np.int32)
            yield w[:, :-1], w[:, 1:], np.ones(w[:, 1:].shape, np.float32)


def task_batches(tokens, mask, batch_size, seed):
    """Endless shuffled `(inputs, targets, weights)` batches of packed task windows."""
    rng = np.random.default_rng(seed)
    while True:
        order = rng.permutation(len(tokens))
        for i in range(0, len(order) - batch_size + 1, batch_size):
            rows = order[i:i + batch_size]
            w = tokens[rows].astype(np.int32)
            yield w[:, :-1], w[:, 1:], mask[rows, 1:].astype(np.float32)


def sequential_windows(tokens, length):
    """Validation: the stream cut in order into `(inputs, targets, weights)` arrays."""
    count = len(tokens) // (length + 1)
    w = tokens[:count * (length + 1)].reshape(count, length + 1).astype(np.int32)
    return w[:, :-1], w[:, 1:], np.ones(w[:, 1:].shape, np.float32)


# --------------------------------------------------------------------------- training

def _stage(model, batches, validation, train_config, log, stage, max_seconds=None):
    """One stage with `model.fit`; returns its history rows and best validation loss.

    `max_seconds` stops the stage at the first evaluation past that time (a
    lent machine's time is fixed; the best weights so far are kept).
    """
    import time

    import keras

    from gpt_tf.optimizer import make_optimizer

    optimizer = make_optimizer(train_config, model)
    if train_config.clip_norm:
        optimizer.global_clipnorm = train_config.clip_norm
    model.compile(optimizer=optimizer,
                  loss=keras.losses.SparseCategoricalCrossentropy(
                      from_logits=True, reduction="mean_with_sample_weight"),
                  jit_compile=bool(train_config.xla))
    rows, best = [], {"loss": float("inf"), "weights": None, "step": 0}
    patience = train_config.early_stopping_patience
    started = time.time()

    class Track(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            step = (epoch + 1) * train_config.eval_every
            row = {"stage": stage, "step": step, "loss": float(logs["loss"]),
                   "validation_loss": float(logs["val_loss"]),
                   "seconds": round(time.time() - started, 1)}
            rows.append(row)
            log(json.dumps(row))
            if row["validation_loss"] < best["loss"]:
                best.update(loss=row["validation_loss"], step=step,
                            weights=[np.array(w) for w in model.get_weights()])
            elif patience and step - best["step"] >= patience * train_config.eval_every:
                self.model.stop_training = True
            if max_seconds and time.time() - started > max_seconds:
                log(f"{stage}: time budget of {max_seconds} s reached at step {step}")
                self.model.stop_training = True

    epochs = max(1, train_config.steps // train_config.eval_every)
    model.fit(batches, steps_per_epoch=train_config.eval_every, epochs=epochs,
              validation_data=validation, validation_batch_size=train_config.batch_size,
              callbacks=[Track()], verbose=0)
    model.set_weights(best["weights"])
    return rows, best["loss"], best["step"]


def train_on_arrays(arrays, model_config, pretrain_config, finetune_configs, save, log=print,
                    max_seconds=(None, None), pretrained=None):
    """Pretrains, then fine-tunes each of `finetune_configs` from the pretrained weights.

    Args:
        arrays: the dict from `load_arrays`.
        model_config: the runs' `ModelConfig`.
        pretrain_config: `TrainConfig` of the pretraining stage (`steps`,
            `eval_every`, `batch_size`, learning rate schedule, ...).
        finetune_configs: list of `TrainConfig`s tried for fine-tuning (a small
            sweep); the one with the lowest validation loss is kept.
        save: `save(stage, model)` stores the weights of a finished stage.
        log: called with one line per evaluation.
        max_seconds: time budget of the pretraining stage and of each
            fine-tuning trial (None: no limit).
        pretrained: optional weights file (`save_weight_arrays`) of an earlier
            pretraining stage: pretraining is skipped and fine-tuning starts there.

    Returns:
        A dict with each stage's history, best step and validation loss, and
        the chosen fine-tuning config index.
    """
    import keras

    from gpt_tf.models import GPTCausalLM

    for config in (pretrain_config, *finetune_configs):
        if config.best_metric != "loss":
            raise UserError(f"the portable trainer selects by validation loss only (got "
                            f"train.best_metric={config.best_metric}); use `gpt-tf finetune` "
                            "for an accuracy-selected run")
    keras.utils.set_random_seed(pretrain_config.seed)
    length = model_config.sequence_length
    model = GPTCausalLM.from_model_config(model_config)
    if pretrained:
        load_weight_arrays(model, pretrained)
        pre_rows, pre_loss, pre_step = [], None, None
    else:
        pre_rows, pre_loss, pre_step = _stage(
            model,
            lm_batches(arrays["pre_train"], arrays["pre_train_offsets"], length,
                       pretrain_config.batch_size, pretrain_config.seed),
            sequential_windows(arrays["pre_validation"], length), pretrain_config, log,
            PRETRAIN, max_seconds[0])
        save(PRETRAIN, model)
    start = [np.array(w) for w in model.get_weights()]
    validation = (arrays["ft_validation_tokens"][:, :-1].astype(np.int32),
                  arrays["ft_validation_tokens"][:, 1:].astype(np.int32),
                  arrays["ft_validation_mask"][:, 1:].astype(np.float32))
    trials, best = [], None
    for number, config in enumerate(finetune_configs):
        model.set_weights(start)
        rows, loss, step = _stage(
            model, task_batches(arrays["ft_train_tokens"], arrays["ft_train_mask"],
                                config.batch_size, config.seed + number),
            validation, config, log, f"{FINETUNE}-{number}", max_seconds[1])
        trials.append({"config": config.__dict__, "history": rows, "best_step": step,
                       "best_validation_loss": loss})
        if best is None or loss < best[0]:
            best = (loss, number, [np.array(w) for w in model.get_weights()])
    model.set_weights(best[2])
    save(FINETUNE, model)
    return {"pretrain": {"config": pretrain_config.__dict__, "history": pre_rows,
                         "best_step": pre_step, "best_validation_loss": pre_loss,
                         "weights_from": pretrained},
            "finetune_trials": trials, "chosen_trial": best[1]}


# --------------------------------------------------------------------------- weights

def save_weight_arrays(model, path):
    """The model's weights (not the optimizer's) as an `.npz` keyed by variable path."""
    arrays = {w.path: np.asarray(w.numpy() if hasattr(w, "numpy") else w)
              for w in model.weights}
    with open(path + ".tmp", "wb") as handle:
        np.savez(handle, **arrays)
    os.replace(path + ".tmp", path)


def load_weight_arrays(model, path):
    """Assigns the weights saved by `save_weight_arrays`; every weight must be there."""
    try:
        with np.load(path) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError) as error:
        raise UserError(f"'{path}' is not a readable weights file ({error})") from None
    for weight in model.weights:
        if weight.path not in arrays:
            raise UserError(f"'{path}' has no weight '{weight.path}'; it was saved from a "
                            "different model")
        if tuple(arrays[weight.path].shape) != tuple(weight.shape):
            raise UserError(f"'{path}': weight '{weight.path}' has shape "
                            f"{arrays[weight.path].shape}, the model needs {tuple(weight.shape)}")
        weight.assign(arrays[weight.path])


# --------------------------------------------------------------------------- import

def import_weights(run_dir, weights_path, history=None):
    """Stores weights trained elsewhere as the run's `model.keras` (TensorFlow backend).

    Args:
        run_dir: the prepared run the weights were trained for.
        weights_path: an `.npz` written by `save_weight_arrays`.
        history: optional list of `{"step", "loss", "validation_loss"}` rows,
            written to `history.jsonl` and as TensorBoard scalars under `logs/`.
    """
    import tensorflow as tf

    from gpt_tf.models import GPTCausalLM
    from gpt_tf.training import HISTORY_FILE, MODEL_KERAS, load_run_config, save_model_atomic

    config = load_run_config(run_dir)
    model = GPTCausalLM.from_model_config(config.model)
    load_weight_arrays(model, weights_path)
    save_model_atomic(model, os.path.join(run_dir, MODEL_KERAS))
    if history:
        with open(os.path.join(run_dir, HISTORY_FILE), "w") as handle:
            for row in history:
                handle.write(json.dumps({"event": "eval", **row}) + "\n")
        writers = {name: tf.summary.create_file_writer(os.path.join(run_dir, "logs", name))
                   for name in ("train", "validation")}
        for row in history:
            with writers["train"].as_default(step=row["step"]):
                tf.summary.scalar("loss", row["loss"])
            with writers["validation"].as_default(step=row["step"]):
                tf.summary.scalar("loss", row["validation_loss"])
        for writer in writers.values():
            writer.flush()
    return model
