"""Magnitude pruning on Keras 3 weights."""

import numpy as np
import pytest

from gpt_tf import pruning
from gpt_tf.errors import UserError


@pytest.fixture()
def model(tiny_config):
    import keras

    from gpt_tf.models import GPTCausalLM

    keras.utils.set_random_seed(3)
    return GPTCausalLM.from_model_config(tiny_config.model)


def test_masks_drop_the_smallest_weights_of_each_kernel(model, tiny_config):
    kernels = pruning.prunable_weights(model)
    # qkv, attention output and two MLP matrices per block; not the embeddings.
    assert len(kernels) == 4 * tiny_config.model.num_layers
    masks = pruning.magnitude_masks(model, 0.5)
    for weight in kernels:
        values, mask = np.abs(weight.numpy()), masks[weight.path]
        assert mask.sum() == values.size - round(values.size * 0.5)
        assert values[mask == 1].min() >= values[mask == 0].max()


def test_applied_masks_zero_weights_and_change_the_output(model):
    ids = np.arange(16, dtype=np.int32)[None] % 50
    dense = np.asarray(model(ids))
    embedding_before = [np.array(w.numpy()) for w in model.weights if "embedding" in w.path]
    pruning.apply_masks(model, pruning.magnitude_masks(model, 0.75))
    assert pruning.sparsity_of(model) == pytest.approx(0.75, abs=0.01)
    assert not np.allclose(np.asarray(model(ids)), dense)
    embedding_after = [np.array(w.numpy()) for w in model.weights if "embedding" in w.path]
    for before, after in zip(embedding_before, embedding_after):
        np.testing.assert_array_equal(before, after)


def test_zero_sparsity_changes_nothing_and_bad_values_are_refused(model):
    before = [np.array(w.numpy()) for w in model.weights]
    pruning.apply_masks(model, pruning.magnitude_masks(model, 0.0))
    for b, w in zip(before, model.weights):
        np.testing.assert_array_equal(b, w.numpy())
    for bad in (-0.1, 1.0):
        with pytest.raises(UserError, match="sparsity"):
            pruning.magnitude_masks(model, bad)
