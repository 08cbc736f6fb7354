"""`train`: sets a run up, runs the outer loop, finishes the run.

    set up     config (+ overrides), tokenizer, data split, strategy, `TrainState`,
               restore (or start from a base run), datasets, summary writers
    loop       `Controller`: the inner step, then the actions and stop conditions
    finish     last checkpoint, best weights restored, `model.keras`, a `TrainResult`
"""

import dataclasses
import os

import keras
import tensorflow as tf

from gpt_tf.config import apply_overrides, selection_score
from gpt_tf.distribute import is_chief, make_strategy
from gpt_tf.errors import UserError
from gpt_tf.tokenizer import load_tokenizer
from gpt_tf.training import actions as act
from gpt_tf.training.controller import Controller
from gpt_tf.training.evaluation import Validator, check_best_metric
from gpt_tf.training.inputs import (
    distributed_train_iterator,
    validation_sets,
    validation_text_size,
)
from gpt_tf.training.run_dir import (
    LOGS_DIR,
    MODEL_KERAS,
    append_config_change,
    load_model,
    load_run_config,
    load_split,
    read_init_from,
    save_model_atomic,
    write_run_config,
)
from gpt_tf.training.state import TrainState, copy_weights, schedule_change
from gpt_tf.training.step import build_train_step, flops_per_token


@dataclasses.dataclass
class TrainResult:
    """What `train` did.

    Attributes:
        status: `completed`, `early_stopped`, `preempted` (SIGTERM) or `paused`
            (`max_steps_this_run` reached); the last two resume on the next call.
        step: optimizer steps done.
        final_loss: last training loss (NaN when no step ran in this call).
        validation: last validation metrics (dict) or None.
        resumed_from: step restored at start (0 for a fresh run).
    """

    status: str
    step: int
    final_loss: float
    validation: dict
    resumed_from: int


@dataclasses.dataclass
class _Run:
    """A run set up to train (what `_set_up` gives the loop)."""

    run_dir: str
    config: object
    tokenizer: object
    strategy: object
    chief: bool
    state: TrainState
    resumed_from: int
    iterator: object
    validator: object
    writers: dict


def train(run_dir, strategy=None, on_event=None, sample_prompts=(), max_steps_this_run=None,
          overrides=None):
    """Trains (or resumes) the run in `run_dir`.

    Args:
        run_dir: a directory made by `prepare_run`.
        strategy: a `tf.distribute.Strategy` (default: `make_strategy("auto")`).
        on_event: optional `fn(kind, info)`; kinds: `start`, `resume`, `init`,
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
    run = _set_up(run_dir, strategy, overrides, emit)
    tc, state = run.config.train, run.state
    step_fn = _step_fn(run)
    timer = act.StepTimer()
    evaluation = None if run.validator is None else act.EvaluateAndKeepBest(
        run.validator, tc.eval_every, tc.steps,
        lambda metrics: selection_score(metrics, tc.best_metric), state, timer)
    checkpoints = act.SaveCheckpoint(state, tc.checkpoint_every, emit)
    actions = [_stop_on_non_finite_loss(run, emit), _log_progress(run, timer, emit), evaluation,
               _write_samples(run, sample_prompts, timer, emit), checkpoints]
    _emit_start(run, emit)
    if evaluation is not None and tc.eval_at_start and state.current_step == 0:
        evaluation.evaluate(0)
    timer.restart()
    with act.StopOnSigterm() as sigterm:
        controller = Controller(
            step_fn, state.step, tc.steps, [a for a in actions if a is not None],
            stops=[act.EarlyStopping(state.stale_evals, tc.early_stopping_patience), sigterm,
                   act.PauseAfter(max_steps_this_run)])
        status = controller.run()
    last = controller.last_output
    return _finish(run, status, float("nan") if last is None else last.loss,
                   evaluation.last_metrics if evaluation is not None else None, checkpoints, emit)


def _stop_on_non_finite_loss(run, emit):
    state = run.state
    return act.StopOnNonFiniteLoss(
        run.config.train.mixed_precision == "float16",
        last_checkpoint=lambda: state.latest_checkpoint if run.chief else None,
        warn=lambda message: emit("warning", {"message": message}))


def _log_progress(run, timer, emit):
    tc, optimizer = run.config.train, run.state.optimizer
    return act.LogProgress(timer, tc.log_every, tc.steps, _tokens_per_step(run.config),
                           lambda: float(optimizer.learning_rate),
                           flops_per_token(run.config.model), tc.peak_tflops,
                           run.writers.get("train"), emit)


def _write_samples(run, prompts, timer, emit):
    """The sampling action, or None (no prompts, `train.sample_every` 0, or not the chief)."""
    every = run.config.train.sample_every
    if not (run.chief and every and prompts):
        return None
    return act.WriteSamples(every, run.writers["train"], run.state.model, run.tokenizer,
                            prompts, timer, emit)


def _set_up(run_dir, strategy, overrides, emit):
    """Everything the loop needs, restored at the last step of an existing run."""
    config, stored = _config_with_overrides(run_dir, overrides)
    tc = config.train
    tokenizer = load_tokenizer(run_dir)
    if tokenizer.vocab_size != config.model.vocab_size:
        raise UserError(f"tokenizer vocab ({tokenizer.vocab_size}) != model.vocab_size "
                        f"({config.model.vocab_size}) in '{run_dir}'")
    split = load_split(run_dir)
    check_best_metric(tc.best_metric, split)
    strategy = strategy or make_strategy("auto")
    chief = is_chief(strategy)
    replicas = strategy.num_replicas_in_sync
    if tc.batch_size % replicas:
        raise UserError(f"train.batch_size ({tc.batch_size}) must be divisible by the "
                        f"number of replicas ({replicas})")
    keras.utils.set_random_seed(tc.seed)
    state = TrainState(strategy, config, run_dir, chief)

    def warn(message):
        emit("warning", {"message": message})

    resumed_from = _restore(run_dir, state, stored, config, chief, emit, warn)
    stop_at = tc.early_stopping_patience * tc.eval_every
    if split["validation"] and tc.eval_at_start and resumed_from == 0 and 0 < stop_at < tc.steps:
        # The start is an evaluation like the others: a fine-tuning run whose peak learning
        # rate first sets its tasks back never beats it in time and stops half-way.
        warn(f"train.eval_at_start with train.early_stopping_patience="
             f"{tc.early_stopping_patience}: the run stops at step {stop_at} of {tc.steps} "
             "unless an evaluation by then beats the starting weights (a peak learning rate "
             "often sets fine-tuned tasks back first); train.early_stopping_patience=0 runs "
             "every step")
    iterator = distributed_train_iterator(strategy, split, tokenizer, config, resumed_from)
    sets = validation_sets(split, tokenizer, config, warn) if split["validation"] else None
    text_size = validation_text_size(split, tokenizer) if sets else (0, 0)
    writers = _summary_writers(run_dir, config, resumed_from) if chief else {}
    validator = None if sets is None else Validator(state.model, sets, tc.eval_steps, tc.xla, text_size,
                                   run_dir if chief else None, writers.get("validation"), emit)
    return _Run(run_dir, config, tokenizer, strategy, chief, state, resumed_from, iterator,
                validator, writers)


def _config_with_overrides(run_dir, overrides):
    """`(config, stored)`: the run's config with `overrides` applied, and as stored."""
    config = stored = load_run_config(run_dir)
    if overrides:
        config = apply_overrides(stored, overrides)
        if config.model != stored.model or config.data != stored.data:
            raise UserError("only train.* settings can change on an existing run; "
                            "start a new --run-dir to change model or data settings")
    return config, stored


def _restore(run_dir, state, stored, config, chief, emit, warn):
    """Restores the last checkpoint (or a base run's weights); returns the step resumed at."""
    restored = state.restore(warn)
    resumed_from = state.current_step
    if restored:
        emit("resume", {"step": resumed_from, "checkpoint": restored})
    if config != stored:
        if resumed_from:
            _apply_train_changes(state, stored.train, config.train, resumed_from, warn)
        if chief:
            append_config_change(run_dir, resumed_from, stored, config)
            write_run_config(run_dir, config)
    base_run = None if restored else read_init_from(run_dir)
    if base_run:
        copy_weights(load_model(base_run)[0], state.model)
        emit("init", {"from": base_run})
    return resumed_from


def _apply_train_changes(state, old, new, step, warn):
    """Warns about a moved learning rate; a new `best_metric` starts the best over."""
    message = schedule_change(old, new, step)
    if message:
        warn(message)
    if old.best_metric != new.best_metric:
        state.reset_best()
        # Saved now, so the checkpoint never holds the old metric's best
        # under the new config (e.g. if the run stops before its next save).
        state.save()
        warn(f"train.best_metric {old.best_metric} -> {new.best_metric}: the "
             "best checkpoint and early stopping start again from the next evaluation")


def _summary_writers(run_dir, config, resumed_from):
    logs = os.path.join(run_dir, LOGS_DIR)
    writers = {"train": tf.summary.create_file_writer(os.path.join(logs, "train")),
               "validation": tf.summary.create_file_writer(os.path.join(logs, "validation"))}
    if resumed_from == 0:
        _write_hparams(writers["train"], config)
    return writers


def _write_hparams(writer, config):
    from tensorboard.plugins.hparams import api as hparams_api

    flat = {}
    for section, values in config.to_dict().items():
        for key, value in values.items():
            flat[f"{section}.{key}"] = value
    with writer.as_default():
        hparams_api.hparams(flat)


def _tokens_per_step(config):
    return config.train.batch_size * config.model.sequence_length * config.train.gradient_accumulation


def _step_fn(run):
    """The inner step on the run's iterator, profiled over `train.profile_steps` (chief)."""
    state, tc = run.state, run.config.train
    train_step = build_train_step(run.strategy, state.model, state.optimizer, tc, state.step)

    def step_fn():
        return train_step(run.iterator)

    if not (run.chief and tc.profile_steps):
        return step_fn
    first, last = (int(p) for p in tc.profile_steps.split(","))
    return act.ProfileSteps(step_fn, state.step, first, last,
                            os.path.join(run.run_dir, LOGS_DIR, "profile"))


def _emit_start(run, emit):
    state, tc = run.state, run.config.train
    emit("start", {"step": run.resumed_from, "steps": tc.steps,
                   "replicas": run.strategy.num_replicas_in_sync,
                   "parameters": state.model.num_parameters(),
                   "tokens_per_step": _tokens_per_step(run.config),
                   "strategy": type(run.strategy).__name__,
                   "compute_dtype": state.model.backbone.compute_dtype,
                   "loss_scaling": state.loss_scaling})


def _finish(run, status, final_loss, validation, checkpoints, emit):
    """The last checkpoint, best weights and `model.keras`; returns the `TrainResult`."""
    state, tc = run.state, run.config.train
    if not state.has_checkpoint_at_current_step():
        checkpoints.save(status)
    if status in ("completed", "early_stopped"):
        if tc.restore_best_weights:
            best_step = state.restore_best_weights()
            if best_step is not None:
                emit("restore_best", {"step": best_step, "metric": tc.best_metric})
            else:
                emit("warning", {"message": "train.restore_best_weights: no evaluation ran, so "
                                            "model.keras keeps the last step's weights"})
        if run.chief:
            save_model_atomic(state.model, os.path.join(run.run_dir, MODEL_KERAS))
    for writer in run.writers.values():
        writer.flush()
    state.close()
    result = TrainResult(status=status, step=state.current_step, final_loss=final_loss,
                         validation=validation, resumed_from=run.resumed_from)
    emit("end", dataclasses.asdict(result))
    return result
