"""AdamW with selective weight decay and a warmup + cosine learning rate."""

import math

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="gpt_tf")
class WarmupCosine(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warmup from 0 to `peak`, then cosine decay to `floor` at `total_steps`.

    Args:
        peak: learning rate at the end of warmup.
        floor: learning rate from `total_steps` on.
        warmup_steps: length of the linear warmup.
        total_steps: step where the cosine reaches `floor`.
    """

    def __init__(self, peak, floor, warmup_steps, total_steps):
        self.peak = peak
        self.floor = floor
        self.warmup_steps = warmup_steps
        self.total_steps = total_steps

    def __call__(self, step):
        step = ops.cast(step, "float32")
        warmup = ops.cast(max(self.warmup_steps, 1), "float32")
        decay_steps = ops.cast(max(self.total_steps - self.warmup_steps, 1), "float32")
        progress = ops.clip((step - warmup) / decay_steps, 0.0, 1.0)
        cosine = self.floor + 0.5 * (self.peak - self.floor) * (1.0 + ops.cos(math.pi * progress))
        return ops.where(step < warmup, self.peak * (step + 1.0) / warmup, cosine)

    def get_config(self):
        return dict(peak=self.peak, floor=self.floor, warmup_steps=self.warmup_steps,
                    total_steps=self.total_steps)


def no_decay_variable_names(model, decay_embeddings=False):
    """Names of variables AdamW must not decay: norms, biases, optionally embeddings."""
    names = []
    for variable in model.trainable_variables:
        path = variable.path
        is_norm = "norm" in path and (path.endswith("gamma") or path.endswith("beta"))
        is_bias = path.endswith("bias")
        is_embedding = "embedding" in path
        if is_norm or is_bias or (is_embedding and not decay_embeddings):
            names.append(path)
    return names


def learning_rate_schedule(train_config):
    """The `WarmupCosine` schedule of a `TrainConfig`."""
    return WarmupCosine(train_config.learning_rate, train_config.min_learning_rate,
                        train_config.warmup_steps, train_config.steps)


def make_optimizer(train_config, model):
    """AdamW for `model` following `train_config` (a `TrainConfig`).

    Gradient clipping is done by the training loop on the all-reduced
    gradients (so it does not depend on the number of replicas), not here.
    """
    optimizer = keras.optimizers.AdamW(
        learning_rate=learning_rate_schedule(train_config),
        weight_decay=train_config.weight_decay,
        beta_1=train_config.beta_1,
        beta_2=train_config.beta_2,
        epsilon=1e-8,
    )
    skip = set(no_decay_variable_names(model, train_config.decay_embeddings))
    optimizer.exclude_from_weight_decay(
        var_list=[v for v in model.trainable_variables if v.path in skip])
    if train_config.mixed_precision == "float16":
        # Dynamic loss scaling: a step whose gradients overflow is skipped and
        # the scale halved; it grows again after 2000 finite steps.
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer
