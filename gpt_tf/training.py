"""Pretraining: run directories, one training loop for every strategy, resume.

Why a custom loop instead of `model.fit`: stock Keras 3.15 `fit` fails under
`MultiWorkerMirroredStrategy` (keras-team/keras#20585), and a step-exact resume
needs the step, optimizer, dropout seeds and data position in one
`tf.train.Checkpoint`, which `BackupAndRestore` (per epoch only) cannot give.
So `strategy.run` drives one replica step on every strategy.

A run directory holds everything: `config.json`, `data_split.json`, the
tokenizer, `checkpoints/` (latest N), `best/` (best `train.best_metric`),
`logs/` (TensorBoard), `history.jsonl` and, at the end, `model.keras`.
Running `train` again on the same directory resumes at the exact step.
"""

import dataclasses
import json
import math
import os
import shutil
import signal
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf

from gpt_tf import data as data_lib
from gpt_tf.config import ANSWER_TASKS, RunConfig, apply_overrides
from gpt_tf.datasets.cache import atomic_write_text
from gpt_tf.distribute import is_chief, make_strategy
from gpt_tf.errors import UserError
from gpt_tf.models import GPTCausalLM
from gpt_tf.optimizer import learning_rate_schedule, make_optimizer
from gpt_tf.task_card import TASK_CARD, read_task_card  # noqa: F401  (re-exported)
from gpt_tf.textfiles import atomic_directory, resolve_text_files
from gpt_tf.tokenizer import MODEL_FILE, Tokenizer, load_tokenizer, train_tokenizer

CONFIG_FILE = "config.json"
SPLIT_FILE = "data_split.json"
MODEL_KERAS = "model.keras"
HISTORY_FILE = "history.jsonl"
# Fine-tuning runs start from another run's weights: {"run_dir": BASE}.
INIT_FILE = "init_from.json"


class TrainingStopped(Exception):
    """Training ended early for a reason the user must see (e.g. NaN loss)."""


@dataclasses.dataclass
class TrainResult:
    """What `train` did.

    Attributes:
        status: `completed`, `early_stopped` or `preempted`.
        step: optimizer steps done.
        final_loss: last training loss.
        validation: last validation metrics (dict) or None.
        resumed_from: step restored at start (0 for a fresh run).
    """

    status: str
    step: int
    final_loss: float
    validation: dict
    resumed_from: int


def is_run_dir(path):
    return os.path.isfile(os.path.join(path, CONFIG_FILE))


def load_run_config(run_dir):
    if not is_run_dir(run_dir):
        raise UserError(f"'{run_dir}' is not a run directory (no {CONFIG_FILE}); "
                        "create one with `gpt-tf train --data ... --run-dir DIR`")
    path = os.path.join(run_dir, CONFIG_FILE)
    with open(path) as handle:
        return RunConfig.from_json(handle.read(), source=path)


def load_split(run_dir):
    """The run's data: `{"train": [...], "validation": [...]}` (+ `kind`).

    `kind` is `lm` (lists of `Source`) or `tasks` (fine-tuning specs that
    `gpt_tf.tasks.data.task_dataset` understands).
    """
    with open(os.path.join(run_dir, SPLIT_FILE)) as handle:
        split = json.load(handle)
    kind = split.pop("kind", "lm")
    if kind == "lm":
        split = {name: [data_lib.Source(**s) for s in sources] for name, sources in split.items()}
    split["kind"] = kind
    return split


def _datasets(split, tokenizer, config, input_context=None, per_replica=None, skip=0):
    """Training dataset (for one input pipeline) or, without input_context, validation."""
    window = config.model.sequence_length
    if split["kind"] == "tasks":
        from gpt_tf.tasks.data import task_dataset as build
    else:
        build = data_lib.lm_dataset
    if input_context is None:
        return build(split["validation"], tokenizer, window, config.train.batch_size,
                     shuffle=False, repeat=False)
    dataset = build(split["train"], tokenizer, window, per_replica, shuffle=True,
                    shuffle_buffer=config.data.shuffle_buffer, seed=config.data.seed,
                    input_context=input_context)
    return dataset.skip(skip)


def _validation_sets(split, tokenizer, config, warn):
    """`{task: dataset}` of a fine-tuning run's validation data, or `{"": dataset}`.

    One dataset per task, so `train.eval_steps` caps each task: a single
    unshuffled dataset would spend the cap on the first task in file order.
    A task none of whose validation examples fits the window is left out
    (with a warning) unless it is the only one.
    """
    if split["kind"] != "tasks":
        return {"": _datasets(split, tokenizer, config)}
    from gpt_tf.tasks.data import task_dataset

    by_task = {}
    for spec in split["validation"]:
        by_task.setdefault(spec["task"], []).append(spec)
    sets, problems = {}, {}
    for task, specs in by_task.items():
        try:
            sets[task] = task_dataset(specs, tokenizer, config.model.sequence_length,
                                      config.train.batch_size, shuffle=False, repeat=False)
        except UserError as error:
            problems[task] = f"{task} validation data ({', '.join(_spec_names(specs))}): {error}"
    if not sets:
        raise UserError("; ".join(problems.values()))
    for message in problems.values():
        warn(message + "; validating without it")
    return sets


def _spec_names(specs):
    return [s.get("name") or os.path.basename(str(s["path"])) for s in specs]


def _check_best_metric(best_metric, split):
    if best_metric == "loss":
        return
    task = best_metric[:-len("_accuracy")]
    tasks = [s["task"] for s in split["validation"]] if split["kind"] == "tasks" else []
    if task not in tasks:
        choices = ", ".join(["loss"] + [f"{t}_accuracy" for t in ANSWER_TASKS if t in tasks])
        raise UserError(f"train.best_metric={best_metric} needs {task} validation data, which "
                        f"this run does not have; choose one of: {choices}")


def _selection_score(metrics, best_metric):
    """Lower is better: the validation loss, or minus an answer accuracy."""
    if best_metric == "loss":
        return metrics["validation_loss"]
    return -metrics.get(f"validation_{best_metric}", 0.0)


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
    files = resolve_text_files(data_paths)
    if validation_paths:
        validation_files = resolve_text_files(validation_paths)
        overlap = set(files) & set(validation_files)
        if overlap:
            raise UserError(f"files are both training and validation data: {sorted(overlap)[:3]}")
        train_sources = [data_lib.Source(f) for f in files]
        validation_sources = [data_lib.Source(f) for f in validation_files]
    else:
        train_sources, validation_sources = data_lib.split_documents(
            files, config.data.validation_fraction, config.data.seed)
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


def flops_per_token(model_config):
    """Training FLOPs per token: 6 x parameters + attention (PaLM appendix B)."""
    m = model_config
    attention = 12 * m.num_layers * m.hidden_dim * m.sequence_length
    return 6 * m.num_parameters() + attention


def _restore(checkpoint, manager, warn):
    """Restores the newest readable checkpoint; returns its path or None."""
    for path in reversed(manager.checkpoints):
        try:
            checkpoint.restore(path).assert_existing_objects_matched()
            return path
        # A truncated file surfaces as OpError, ValueError or IndexError
        # ("Read less bytes than requested") depending on where it is cut.
        except (tf.errors.OpError, ValueError, AssertionError, IndexError) as error:
            warn(f"checkpoint '{path}' is unreadable ({type(error).__name__}: "
                 f"{str(error).splitlines()[0][:160]}); falling back to the previous one")
    return None


class _SigtermFlag:
    """Turns SIGTERM (preemption) into a flag the loop checks between steps."""

    def __init__(self):
        self.raised = False
        self.previous = None

    def __enter__(self):
        try:
            self.previous = signal.signal(signal.SIGTERM, self._handle)
        except ValueError:  # not the main thread
            self.previous = None
        return self

    def _handle(self, signum, frame):
        self.raised = True

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)


def evaluate(model, dataset, steps=0, jit_compile=True):
    """Mean next-token loss (nats) over `dataset`.

    Args:
        model: a `GPTCausalLM` (or any ids -> logits model).
        dataset: finite dataset of `(inputs, targets)` or
            `(inputs, targets, weights)` batches; weights (0/1) select the
            scored tokens (e.g. only answers when fine-tuning).
        steps: batches to use (0: all).
        jit_compile: compile the forward pass with XLA.

    Returns:
        `(mean_loss, tokens)`.
    """
    totals = evaluate_totals(model, dataset, steps, jit_compile)
    return _mean_loss(totals["loss_sum"], totals["tokens"]), int(totals["tokens"])


def _mean_loss(loss_sum, tokens):
    if tokens == 0:
        raise UserError("the validation data is shorter than one window; add validation text "
                        "or lower model.sequence_length")
    return loss_sum / tokens


def evaluate_totals(model, dataset, steps=0, jit_compile=True):
    """Sums over `dataset` (see `evaluate`): loss, tokens and answers.

    An answer is a run of consecutive weighted tokens (in a fine-tuning window:
    one example's answer and its closing end-of-text). It counts as correct when
    every one of its tokens is the model's top prediction given the true tokens
    before it (teacher forcing): for sentiment, the label is the greedy choice.

    Returns:
        `{"loss_sum", "tokens", "answers", "correct"}`.
    """
    forward = _eval_forward(model, jit_compile)
    totals = {"loss_sum": 0.0, "tokens": 0.0, "answers": 0, "correct": 0}
    for number, batch in enumerate(dataset):
        if steps and number >= steps:
            break
        inputs, targets, weights = _with_weights(batch)
        loss_sum, tokens, hits = forward(inputs, targets, weights)
        totals["loss_sum"] += float(loss_sum)
        totals["tokens"] += float(tokens)
        answers, correct = count_answers(np.asarray(weights), hits.numpy())
        totals["answers"] += answers
        totals["correct"] += correct
    return totals


def count_answers(weights, hits):
    """`(answers, correct)` in a batch: runs of weighted positions per row, and
    how many of them have a hit at every position."""
    weighted = np.asarray(weights) > 0
    edge = np.zeros((weighted.shape[0], 1), bool)  # keeps runs from crossing rows
    weighted = np.concatenate([weighted, edge], axis=1).ravel()
    hits = np.concatenate([np.asarray(hits, bool), edge], axis=1).ravel()
    starts = weighted & ~np.concatenate([[False], weighted[:-1]])
    answers = int(starts.sum())
    if not answers:
        return 0, 0
    run = np.cumsum(starts) * weighted  # 1..answers on weighted positions, 0 elsewhere
    misses = np.bincount(run[weighted & ~hits], minlength=answers + 1)[1:]
    return answers, int((misses == 0).sum())


def _with_weights(batch):
    if len(batch) == 3:
        return batch
    inputs, targets = batch
    return inputs, targets, tf.ones_like(targets, dtype=tf.float32)


def _eval_forward(model, jit_compile):
    cached = getattr(model, "_gpt_tf_eval_forward", None)
    if cached is not None and cached[0] == jit_compile:
        return cached[1]

    @tf.function(jit_compile=jit_compile, reduce_retracing=True)
    def forward(inputs, targets, weights):
        logits = model(inputs, training=False)
        nll = keras.losses.sparse_categorical_crossentropy(targets, logits, from_logits=True)
        hits = tf.equal(tf.argmax(logits, axis=-1, output_type=targets.dtype), targets)
        return tf.reduce_sum(nll * weights), tf.reduce_sum(weights), hits

    model._gpt_tf_eval_forward = (jit_compile, forward)
    return forward


def train(run_dir, strategy=None, on_event=None, sample_prompts=(), max_steps_this_run=None,
          overrides=None):
    """Trains (or resumes) the run in `run_dir`.

    Args:
        run_dir: a directory made by `prepare_run`.
        strategy: a `tf.distribute.Strategy` (default: `make_strategy("auto")`).
        on_event: optional `fn(kind, info)`; kinds: `start`, `resume`,
            `warning`, `step`, `eval`, `sample`, `checkpoint`, `restore_best`,
            `end`.
        sample_prompts: prompts generated every `train.sample_every` steps
            into TensorBoard.
        max_steps_this_run: stop (with a checkpoint) after this many steps in
            this call, e.g. to train in slices.
        overrides: `section.key=value` strings applied to the stored config
            (only `train.*` keys may change on an existing run). They are
            written to the run's `config.json`, so a later resume keeps them
            and the run records what it was trained with.

    Returns:
        A `TrainResult`.
    """
    emit = on_event or (lambda kind, info: None)
    config = stored = load_run_config(run_dir)
    if overrides:
        new = apply_overrides(config, overrides)
        if new.model != config.model or new.data != config.data:
            raise UserError("only train.* settings can change on an existing run; "
                            "start a new --run-dir to change model or data settings")
        config = new
    tc = config.train
    tokenizer = load_tokenizer(run_dir)
    if tokenizer.vocab_size != config.model.vocab_size:
        raise UserError(f"tokenizer vocab ({tokenizer.vocab_size}) != model.vocab_size "
                        f"({config.model.vocab_size}) in '{run_dir}'")
    split = load_split(run_dir)
    _check_best_metric(tc.best_metric, split)
    strategy = strategy or make_strategy("auto")
    chief = is_chief(strategy)
    replicas = strategy.num_replicas_in_sync
    if tc.batch_size % replicas:
        raise UserError(f"train.batch_size ({tc.batch_size}) must be divisible by the "
                        f"number of replicas ({replicas})")
    accumulation = tc.gradient_accumulation
    window = config.model.sequence_length
    tokens_per_step = tc.batch_size * window * accumulation

    policy = {"bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}.get(
        tc.mixed_precision, "float32")
    keras.utils.set_random_seed(tc.seed)
    with strategy.scope():
        model = GPTCausalLM.from_model_config(config.model, dtype=policy)
        if tc.lora_rank:
            enable_lora(model, tc.lora_rank)
        optimizer = make_optimizer(tc, model)
        optimizer.build(model.trainable_variables)
        step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        best_loss = tf.Variable(float("inf"), dtype=tf.float32, trainable=False)
        stale_evals = tf.Variable(0, dtype=tf.int64, trainable=False)
    # Keras' dropout SeedGenerator states are not reachable from the model's
    # checkpoint graph; track them explicitly so dropout masks resume exactly.
    seed_states = [v for v in model.variables if "seed_generator" in v.path]
    checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, step=step,
                                     best_loss=best_loss, stale_evals=stale_evals,
                                     seed_states=seed_states)

    # Multi-worker: every worker saves (saving runs collectives), only the
    # chief into the run directory; the others into a scratch directory.
    scratch = None if chief else tempfile.mkdtemp(prefix="gpt_tf_worker_")
    base = run_dir if chief else scratch
    manager = tf.train.CheckpointManager(
        checkpoint, os.path.join(run_dir, "checkpoints"), max_to_keep=tc.keep_checkpoints)
    if not chief:
        manager = tf.train.CheckpointManager(
            checkpoint, os.path.join(base, "checkpoints"), max_to_keep=1)
        # Read from the chief's directory, write to scratch.
        read_manager = tf.train.CheckpointManager(
            checkpoint, os.path.join(run_dir, "checkpoints"), max_to_keep=tc.keep_checkpoints)
    else:
        read_manager = manager
    best_manager = tf.train.CheckpointManager(
        checkpoint, os.path.join(base, "best"), max_to_keep=1, checkpoint_name="best")

    def warn(message):
        emit("warning", {"message": message})

    restored = _restore(checkpoint, read_manager, warn)
    resumed_from = int(step.numpy())
    if restored:
        emit("resume", {"step": resumed_from, "checkpoint": restored})
    if config != stored:
        if resumed_from:
            message = _schedule_change(stored.train, tc, resumed_from)
            if message:
                warn(message)
            if stored.train.best_metric != tc.best_metric:
                best_loss.assign(float("inf"))
                stale_evals.assign(0)
                # Saved now, so the checkpoint never holds the old metric's best
                # under the new config (e.g. if the run stops before its next save).
                manager.save(checkpoint_number=resumed_from)
                warn(f"train.best_metric {stored.train.best_metric} -> {tc.best_metric}: the "
                     "best checkpoint and early stopping start again from the next evaluation")
        if chief:
            atomic_write_text(os.path.join(run_dir, CONFIG_FILE), config.to_json())

    if not restored and os.path.isfile(os.path.join(run_dir, INIT_FILE)):
        with open(os.path.join(run_dir, INIT_FILE)) as handle:
            base_run = json.load(handle)["run_dir"]
        base_model, _, _ = load_model(base_run)
        copy_weights(base_model, model)
        emit("init", {"from": base_run})

    def dataset_fn(input_context):
        per_replica = input_context.get_per_replica_batch_size(tc.batch_size)
        replicas_per_pipeline = input_context.num_replicas_in_sync // input_context.num_input_pipelines
        # Resume exactly: skip what this pipeline already consumed.
        return _datasets(split, tokenizer, config, input_context, per_replica,
                         skip=resumed_from * accumulation * replicas_per_pipeline)

    iterator = iter(strategy.distribute_datasets_from_function(dataset_fn))

    validation = None
    if split["validation"]:
        validation = _validation_sets(split, tokenizer, config, warn)
        if split["kind"] == "lm":
            val_bytes, val_tokens = data_lib.count_bytes_and_tokens(split["validation"], tokenizer)
        else:  # bits per byte only means something for plain text
            val_bytes, val_tokens = 0, 0

    train_step = build_train_step(strategy, model, optimizer, tc, step)

    writers = {}
    if chief:
        logs = os.path.join(run_dir, "logs")
        writers = {"train": tf.summary.create_file_writer(os.path.join(logs, "train")),
                   "validation": tf.summary.create_file_writer(os.path.join(logs, "validation"))}
        if resumed_from == 0:
            _write_hparams(writers["train"], config)

    def save(kind):
        path = manager.save(checkpoint_number=int(step.numpy()))
        emit("checkpoint", {"step": int(step.numpy()), "path": path, "reason": kind})

    def run_eval():
        totals = {name: evaluate_totals(model, dataset, tc.eval_steps, jit_compile=tc.xla)
                  for name, dataset in validation.items()}
        loss = _mean_loss(sum(t["loss_sum"] for t in totals.values()),
                          sum(t["tokens"] for t in totals.values()))
        metrics = {"step": int(step.numpy()), "validation_loss": loss,
                   "validation_perplexity": math.exp(min(loss, 50.0))}
        if val_bytes:
            metrics["validation_bits_per_byte"] = data_lib.bits_per_byte(loss, val_bytes, val_tokens)
        for task, t in totals.items():
            if task and t["tokens"]:
                metrics[f"validation_{task}_loss"] = t["loss_sum"] / t["tokens"]
            if task in ANSWER_TASKS and t["answers"]:
                metrics[f"validation_{task}_accuracy"] = t["correct"] / t["answers"]
        if chief:
            with writers["validation"].as_default(step=int(step.numpy())):
                tf.summary.scalar("loss", loss)
                tf.summary.scalar("perplexity", metrics["validation_perplexity"])
                if val_bytes:
                    tf.summary.scalar("bits_per_byte", metrics["validation_bits_per_byte"])
                for task in totals:
                    for name in ("loss", "accuracy"):
                        value = metrics.get(f"validation_{task}_{name}")
                        if task and value is not None:
                            tf.summary.scalar(f"{task}/{name}", value)
            with open(os.path.join(run_dir, HISTORY_FILE), "a") as handle:
                handle.write(json.dumps(metrics) + "\n")
        emit("eval", metrics)
        return metrics

    flops = flops_per_token(config.model)
    emit("start", {"step": resumed_from, "steps": tc.steps, "replicas": replicas,
                   "parameters": model.num_parameters(), "tokens_per_step": tokens_per_step,
                   "strategy": type(strategy).__name__,
                   "compute_dtype": model.backbone.compute_dtype,
                   "loss_scaling": isinstance(optimizer, keras.optimizers.LossScaleOptimizer)})
    status, loss_value, last_eval = "completed", float("nan"), None
    steps_this_run = 0
    window_start, window_steps = time.perf_counter(), 0
    profile = tuple(int(p) for p in tc.profile_steps.split(",")) if tc.profile_steps else None
    with _SigtermFlag() as sigterm:
        while int(step.numpy()) < tc.steps:
            if chief and profile and int(step.numpy()) == profile[0]:
                tf.profiler.experimental.start(os.path.join(run_dir, "logs", "profile"))
            loss, norm = train_step(iterator)
            if chief and profile and int(step.numpy()) == profile[1]:
                tf.profiler.experimental.stop()
            loss_value, norm_value = float(loss), float(norm)
            current = int(step.numpy())
            steps_this_run += 1
            window_steps += 1
            if tc.mixed_precision == "float16" and math.isfinite(loss_value) and \
                    not math.isfinite(norm_value):
                warn(f"float16 gradients overflowed at step {current}: step skipped, "
                     "loss scale halved")
            elif not (math.isfinite(loss_value) and math.isfinite(norm_value)):
                kept = manager.latest_checkpoint if chief else None
                raise TrainingStopped(
                    f"loss became {loss_value} (gradient norm {norm_value}) at step {current}; "
                    f"stopped without saving. Last good checkpoint: {kept or 'none'}. "
                    "Lower train.learning_rate or raise train.warmup_steps, then rerun to resume")
            if current % tc.log_every == 0 or current == tc.steps:
                elapsed = time.perf_counter() - window_start
                step_time = elapsed / window_steps
                tokens_per_second = tokens_per_step / step_time
                info = {"step": current, "steps": tc.steps, "loss": loss_value,
                        "grad_norm": norm_value, "step_time": step_time,
                        "tokens_per_second": tokens_per_second,
                        "learning_rate": float(optimizer.learning_rate),
                        "eta_seconds": step_time * (tc.steps - current)}
                if tc.peak_tflops > 0:
                    info["mfu"] = flops * tokens_per_second / (tc.peak_tflops * 1e12)
                if chief:
                    with writers["train"].as_default(step=current):
                        tf.summary.scalar("loss", loss_value)
                        tf.summary.scalar("perplexity", math.exp(min(loss_value, 50.0)))
                        tf.summary.scalar("learning_rate", info["learning_rate"])
                        tf.summary.scalar("gradient_norm", norm_value)
                        tf.summary.scalar("tokens_per_second", tokens_per_second)
                        tf.summary.scalar("step_time", step_time)
                        if "mfu" in info:
                            tf.summary.scalar("mfu", info["mfu"])
                emit("step", info)
                window_start, window_steps = time.perf_counter(), 0
            if validation is not None and (current % tc.eval_every == 0 or current == tc.steps):
                last_eval = run_eval()
                score = _selection_score(last_eval, tc.best_metric)
                if score < float(best_loss.numpy()):
                    best_loss.assign(score)
                    stale_evals.assign(0)
                    best_manager.save(checkpoint_number=current)
                else:
                    stale_evals.assign_add(1)
                window_start = time.perf_counter()
            if chief and tc.sample_every and current % tc.sample_every == 0 and sample_prompts:
                _write_samples(writers["train"], model, tokenizer, sample_prompts, current, emit)
                window_start = time.perf_counter()
            if current % tc.checkpoint_every == 0:
                save("periodic")
            if tc.early_stopping_patience and int(stale_evals.numpy()) >= tc.early_stopping_patience:
                status = "early_stopped"
                break
            if sigterm.raised:
                status = "preempted"
                break
            if max_steps_this_run and steps_this_run >= max_steps_this_run:
                status = "paused"
                break
    current = int(step.numpy())
    if manager.latest_checkpoint is None or not manager.latest_checkpoint.endswith(f"-{current}"):
        save(status)
    if status in ("completed", "early_stopped") and tc.restore_best_weights:
        best = best_manager.latest_checkpoint  # every worker restores its own copy
        if best:
            tf.train.Checkpoint(model=model).restore(best).expect_partial()
            emit("restore_best", {"step": int(best.rsplit("-", 1)[1]), "metric": tc.best_metric})
        else:
            warn("train.restore_best_weights: no evaluation ran, so model.keras keeps the last "
                 "step's weights")
    if status in ("completed", "early_stopped") and chief:
        _save_keras_atomic(model, os.path.join(run_dir, MODEL_KERAS))
    for writer in writers.values():
        writer.flush()
    if scratch:
        shutil.rmtree(scratch, ignore_errors=True)
    result = TrainResult(status=status, step=current, final_loss=loss_value,
                         validation=last_eval, resumed_from=resumed_from)
    emit("end", dataclasses.asdict(result))
    return result


def build_train_step(strategy, model, optimizer, train_config, step):
    """Returns `train_step(distributed_iterator) -> (loss, gradient_norm)`.

    One optimizer step: `gradient_accumulation` micro-batches per replica,
    gradients all-reduced, clipped by their global norm, applied by AdamW.
    Batches are `(inputs, targets)` or `(inputs, targets, weights)`; the
    loss is the weighted mean over every scored token of the global batch.

    Args:
        strategy: the `tf.distribute.Strategy` whose scope built the model.
        model: a `GPTCausalLM`.
        optimizer: a built Keras optimizer.
        train_config: a `TrainConfig`.
        step: int64 `tf.Variable` incremented once per step.
    """
    tc = train_config
    replicas = strategy.num_replicas_in_sync
    accumulation = tc.gradient_accumulation
    loss_scaling = isinstance(optimizer, keras.optimizers.LossScaleOptimizer)

    @tf.function(jit_compile=tc.xla)
    def forward_backward(inputs, targets, weights):
        with tf.GradientTape() as tape:
            logits = model(inputs, training=True)  # (b, T, V) float32
            nll = keras.losses.sparse_categorical_crossentropy(targets, logits, from_logits=True)
            loss_sum = tf.reduce_sum(nll * weights)
            # float16: scale the loss so small gradients survive; the loss
            # scale optimizer unscales them before AdamW.
            target = optimizer.scale_loss(loss_sum) if loss_scaling else loss_sum
        return loss_sum, tf.reduce_sum(weights), tape.gradient(target, model.trainable_variables)

    def replica_step(batches):
        loss_sum, weight_sum, grads = 0.0, 0.0, None
        for batch in batches:
            micro_loss, micro_weight, micro_grads = forward_backward(*_with_weights(batch))
            loss_sum += micro_loss
            weight_sum += micro_weight
            grads = micro_grads if grads is None else [g + m for g, m in zip(grads, micro_grads)]
        # Sum over replicas, then divide by the *global* number of scored
        # tokens: the mean loss gradient whatever the number of replicas.
        context = tf.distribute.get_replica_context()
        grads = context.all_reduce(tf.distribute.ReduceOp.SUM, grads)
        loss_sum, weight_sum = context.all_reduce(tf.distribute.ReduceOp.SUM, [loss_sum, weight_sum])
        weight_sum = tf.maximum(weight_sum, 1.0)
        grads = [g / weight_sum for g in grads]
        loss = loss_sum / weight_sum
        norm = tf.linalg.global_norm(grads)
        scale = tf.cast(optimizer.dynamic_scale, tf.float32) if loss_scaling else 1.0
        if tc.clip_norm > 0:  # on scaled gradients, so the threshold is scaled too
            grads, _ = tf.clip_by_global_norm(grads, tc.clip_norm * scale, use_norm=norm)
        norm = norm / scale
        # Keras' optimizer sums gradients over replicas once more inside
        # apply(); hand it 1/n of the reduced sum so that sum is the global
        # gradient (exact for power-of-two replica counts).
        if replicas > 1:
            grads = [g / replicas for g in grads]
        optimizer.apply(grads, model.trainable_variables)
        step.assign_add(1)
        return loss, norm

    @tf.function
    def train_step(iterator):
        batches = [next(iterator) for _ in range(accumulation)]
        loss, norm = strategy.run(replica_step, args=(batches,))
        return (strategy.experimental_local_results(loss)[0],
                strategy.experimental_local_results(norm)[0])

    return train_step


def enable_lora(model, rank):
    """Freezes `model` except rank-`rank` LoRA adapters on every Dense layer (and biases).

    Returns:
        `(trainable, total)` parameter counts.
    """
    for layer in model._flatten_layers(include_self=False):
        if isinstance(layer, keras.layers.Dense):
            layer.enable_lora(rank)
        elif layer.weights and not layer._layers:
            layer.trainable = False  # embeddings, norms
    trainable = sum(int(np.prod(v.shape)) for v in model.trainable_variables)
    total = sum(int(np.prod(v.shape)) for v in model.weights)
    return trainable, total


def copy_weights(source, target):
    """Copies every weight of `source` into the same-path weight of `target`.

    Extra target weights (LoRA adapters) keep their initial values.
    """
    targets = {w.path: w for w in target.weights}
    missing = [w.path for w in source.weights if w.path not in targets]
    if missing:
        raise UserError(f"the base model does not fit this run (e.g. '{missing[0]}'); "
                        "fine-tune from a run with the same model config")
    for weight in source.weights:
        if tuple(weight.shape) != tuple(targets[weight.path].shape):
            raise UserError(f"base weight '{weight.path}' has shape {tuple(weight.shape)}, "
                            f"this run needs {tuple(targets[weight.path].shape)}")
        targets[weight.path].assign(weight)


_SCHEDULE_KEYS = ("steps", "learning_rate", "min_learning_rate", "warmup_steps")


def _schedule_change(old, new, step):
    """A warning when new `train.*` settings move the learning rate at `step`, else None."""
    changed = [f"train.{k} {getattr(old, k):g} -> {getattr(new, k):g}" for k in _SCHEDULE_KEYS
               if getattr(old, k) != getattr(new, k)]
    if not changed:
        return None
    before, after = (float(learning_rate_schedule(c)(step)) for c in (old, new))
    if math.isclose(before, after, rel_tol=1e-6, abs_tol=1e-12):
        return None
    return (f"{', '.join(changed)}: the learning-rate schedule is recomputed, so at step {step} "
            f"the rate goes from {before:.3g} to {after:.3g}"
            f"{' (a warm restart of the cosine)' if after > before else ''}")


def _save_keras_atomic(model, path):
    directory = os.path.dirname(path)
    handle, tmp = tempfile.mkstemp(suffix=".keras", dir=directory, prefix=".model-")
    os.close(handle)
    try:
        model.save(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _write_hparams(writer, config):
    from tensorboard.plugins.hparams import api as hparams_api

    flat = {}
    for section, values in config.to_dict().items():
        for key, value in values.items():
            flat[f"{section}.{key}"] = value
    with writer.as_default():
        hparams_api.hparams(flat)


def _write_samples(writer, model, tokenizer, prompts, step, emit):
    from gpt_tf.generation import Generator
    from gpt_tf.sampling import Sampler

    generator = Generator(model)
    ids = [[tokenizer.end_of_text_id] + tokenizer.encode(p) for p in prompts]
    new_tokens = min(48, model.backbone.sequence_length // 2)
    result = generator.generate(ids, max_new_tokens=new_tokens, sampler=Sampler(temperature=0.8, top_k=40),
                                seed=step, stop_ids=[tokenizer.end_of_text_id])
    texts = [p + tokenizer.decode(t) for p, t in zip(prompts, result.token_ids)]
    with writer.as_default(step=step):
        tf.summary.text("samples", tf.constant(texts))
    emit("sample", {"step": step, "texts": texts})


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
    directory = os.path.join(run_dir, "best" if checkpoint == "best" else "checkpoints")
    latest = tf.train.latest_checkpoint(directory)
    if latest is None:
        raise UserError(f"run '{run_dir}' has no {checkpoint} model or checkpoint yet; train it first")
    status = tf.train.Checkpoint(model=model).restore(latest)
    status.expect_partial().assert_existing_objects_matched()
    return model, tokenizer, config
