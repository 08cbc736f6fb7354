"""Magnitude pruning for Keras 3 models.

Why not `tensorflow-model-optimization`: its pruning API only accepts
`tf_keras` (Keras 2) objects. Checked with tfmot 0.8.1 + tf-keras 2.21 +
Keras 3.15: without tf-keras it fails at import ("Keras cannot be
imported"); with it, `prune_low_magnitude` rejects a Keras 3 model and even
a plain Keras 3 `Dropout` layer ("can only prune an object of the following
types: keras.models.Sequential, keras functional model, keras.layers.Layer").

This module does the same idea with plain Keras 3 variables: the smallest
weights (by absolute value, per matrix) of the decoder blocks' kernels are
set to zero, and `apply_masks` keeps them at zero after optimizer steps when
pruned weights are fine-tuned. Embeddings (tied with the output head),
LayerNorms and biases are left alone.
"""

import numpy as np

from gpt_tf.errors import UserError


def prunable_weights(model):
    """The 2-D kernels of the decoder blocks (attention and MLP matrices)."""
    return [w for w in model.trainable_weights
            if w.path.endswith("kernel") and len(w.shape) == 2 and "embedding" not in w.path]


def magnitude_masks(model, sparsity):
    """`{path: 0/1 mask}` zeroing the `sparsity` fraction of smallest weights of each kernel."""
    if not 0.0 <= sparsity < 1.0:
        raise UserError(f"sparsity must be in [0, 1), got {sparsity}")
    masks = {}
    for weight in prunable_weights(model):
        values = np.abs(np.asarray(weight.numpy()))
        count = int(round(values.size * sparsity))
        mask = np.ones(values.shape, np.float32)
        if count:
            # Ties at the threshold are broken by position so exactly `count` go.
            order = np.argsort(values, axis=None, kind="stable")[:count]
            mask.reshape(-1)[order] = 0.0
        masks[weight.path] = mask
    return masks


def apply_masks(model, masks):
    """Multiplies each masked weight by its mask (call after every optimizer step)."""
    weights = {w.path: w for w in model.trainable_weights}
    for path, mask in masks.items():
        weights[path].assign(np.asarray(weights[path].numpy()) * mask)


def sparsity_of(model):
    """Fraction of exact zeros in the prunable kernels."""
    weights = prunable_weights(model)
    zeros = sum(int(np.sum(np.asarray(w.numpy()) == 0)) for w in weights)
    return zeros / max(1, sum(int(np.prod(w.shape)) for w in weights))
