"""The inner step: one optimizer step on every replica (`build_train_step`), and its cost.

Everything that happens between steps (logging, evaluation, checkpoints,
stopping) is the outer loop's (`gpt_tf.training.controller`, `.actions`).
"""

import keras
import tensorflow as tf

from gpt_tf.training.inputs import with_weights


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
            micro_loss, micro_weight, micro_grads = forward_backward(*with_weights(batch))
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
        batches = [next(iterator) for _ in range(tc.gradient_accumulation)]
        loss, norm = strategy.run(replica_step, args=(batches,))
        return (strategy.experimental_local_results(loss)[0],
                strategy.experimental_local_results(norm)[0])

    return train_step


def flops_per_token(model_config):
    """Training FLOPs per token: 6 x parameters + attention (PaLM appendix B)."""
    m = model_config
    attention = 12 * m.num_layers * m.hidden_dim * m.sequence_length
    return 6 * m.num_parameters() + attention
