"""What a run checkpoints and restores: model, optimizer, counters, dropout seeds.

`TrainState` holds them and their checkpoint managers (`checkpoints/`, the
latest ones, and `best/`); `enable_lora` and `copy_weights` set up a
fine-tuning run's model; `schedule_change` says when new `train.*` settings
move the learning rate of a resumed run.
"""

import math
import os
import shutil
import tempfile

import keras
import numpy as np
import tensorflow as tf

from gpt_tf.errors import UserError
from gpt_tf.models import GPTCausalLM
from gpt_tf.optimizer import learning_rate_schedule, make_optimizer
from gpt_tf.training.run_dir import BEST_DIR, CHECKPOINTS_DIR

_POLICIES = {"bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}


class TrainState:
    """The variables of a run and their checkpoints.

    Attributes:
        model: the `GPTCausalLM` (LoRA adapters enabled by `train.lora_rank`).
        optimizer: its optimizer (a `LossScaleOptimizer` for float16).
        step: int64 variable, optimizer steps done.
        best_score: float32 variable, the best `selection_score` so far.
        stale_evals: int64 variable, evaluations since the best one.
        checkpoint: the `tf.train.Checkpoint` of all of them (and the dropout seeds).
    """

    def __init__(self, strategy, config, run_dir, chief):
        tc = config.train
        with strategy.scope():
            self.model = GPTCausalLM.from_model_config(
                config.model, dtype=_POLICIES.get(tc.mixed_precision, "float32"))
            if tc.lora_rank:
                enable_lora(self.model, tc.lora_rank)
            self.optimizer = make_optimizer(tc, self.model)
            self.optimizer.build(self.model.trainable_variables)
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
            self.best_score = tf.Variable(float("inf"), dtype=tf.float32, trainable=False)
            self.stale_evals = tf.Variable(0, dtype=tf.int64, trainable=False)
        # Keras' dropout SeedGenerator states are not reachable from the model's
        # checkpoint graph; track them explicitly so dropout masks resume exactly.
        seed_states = [v for v in self.model.variables if "seed_generator" in v.path]
        # `best_loss` is the stored name of best_score (older checkpoints must restore).
        self.checkpoint = tf.train.Checkpoint(
            model=self.model, optimizer=self.optimizer, step=self.step,
            best_loss=self.best_score, stale_evals=self.stale_evals, seed_states=seed_states)
        # Multi-worker: every worker saves (saving runs collectives), only the
        # chief into the run directory; the others into a scratch directory,
        # reading the chief's checkpoints when they resume.
        self.scratch = None if chief else tempfile.mkdtemp(prefix="gpt_tf_worker_")
        base = run_dir if chief else self.scratch
        self._read_manager = tf.train.CheckpointManager(
            self.checkpoint, os.path.join(run_dir, CHECKPOINTS_DIR), max_to_keep=tc.keep_checkpoints)
        self._manager = self._read_manager if chief else tf.train.CheckpointManager(
            self.checkpoint, os.path.join(base, CHECKPOINTS_DIR), max_to_keep=1)
        self._best_manager = tf.train.CheckpointManager(
            self.checkpoint, os.path.join(base, BEST_DIR), max_to_keep=1, checkpoint_name="best")

    @property
    def current_step(self):
        return int(self.step.numpy())

    @property
    def loss_scaling(self):
        return isinstance(self.optimizer, keras.optimizers.LossScaleOptimizer)

    @property
    def latest_checkpoint(self):
        """The newest checkpoint this process wrote or resumed from, or None."""
        return self._manager.latest_checkpoint

    def restore(self, warn):
        """Restores the newest readable checkpoint; returns its path or None."""
        for path in reversed(self._read_manager.checkpoints):
            try:
                self.checkpoint.restore(path).assert_existing_objects_matched()
                return path
            # A truncated file surfaces as OpError, ValueError or IndexError
            # ("Read less bytes than requested") depending on where it is cut.
            except (tf.errors.OpError, ValueError, AssertionError, IndexError) as error:
                warn(f"checkpoint '{path}' is unreadable ({type(error).__name__}: "
                     f"{str(error).splitlines()[0][:160]}); falling back to the previous one")
        return None

    def save(self):
        """Saves a checkpoint numbered by the step; returns its path."""
        return self._manager.save(checkpoint_number=self.current_step)

    def has_checkpoint_at_current_step(self):
        latest = self._manager.latest_checkpoint
        return latest is not None and latest.endswith(f"-{self.current_step}")

    def save_best(self):
        self._best_manager.save(checkpoint_number=self.current_step)

    def reset_best(self):
        """Forgets the best score and the stale evaluations (a new `train.best_metric`)."""
        self.best_score.assign(float("inf"))
        self.stale_evals.assign(0)

    def restore_best_weights(self):
        """Loads the best checkpoint's weights into the model; returns its step, or None."""
        best = self._best_manager.latest_checkpoint  # every worker restores its own copy
        if not best:
            return None
        tf.train.Checkpoint(model=self.model).restore(best).expect_partial()
        return int(best.rsplit("-", 1)[1])

    def close(self):
        if self.scratch:
            shutil.rmtree(self.scratch, ignore_errors=True)


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


def schedule_change(old, new, step):
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
