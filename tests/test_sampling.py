import numpy as np
import pytest
import tensorflow as tf

from gpt_tf.errors import UserError
from gpt_tf.sampling import Sampler, filter_top_k, filter_top_p
from tests.helpers import BAD_SAMPLING_SETTINGS
from tflite import sampling as np_sampling

LOGITS = tf.constant(np.random.default_rng(0).normal(size=(4, 50)).astype("float32") * 3)
SEED = tf.constant([1, 2])


def test_top_k_one_equals_greedy():
    greedy = Sampler()(LOGITS, SEED).numpy()
    np.testing.assert_array_equal(greedy, np.argmax(LOGITS.numpy(), axis=-1))
    top1 = Sampler(temperature=1.5, top_k=1)(LOGITS, SEED).numpy()
    np.testing.assert_array_equal(top1, greedy)


def test_seeded_sampling_repeats_and_differs_by_seed():
    sampler = Sampler(temperature=1.0)
    a = [sampler(LOGITS, tf.constant([s, 0])).numpy() for s in range(20)]
    b = [sampler(LOGITS, tf.constant([s, 0])).numpy() for s in range(20)]
    np.testing.assert_array_equal(a, b)
    assert len({tuple(x) for x in a}) > 1


def test_top_k_restricts_support():
    sampler = Sampler(temperature=1.0, top_k=3)
    allowed = np.argsort(-LOGITS.numpy(), axis=-1)[:, :3]
    for step in range(50):
        tokens = sampler(LOGITS, tf.constant([3, step])).numpy()
        assert all(tokens[r] in allowed[r] for r in range(4))
    kept = filter_top_k(LOGITS, 5).numpy() > -1e8
    assert (kept.sum(axis=-1) == 5).all()


def test_top_p_keeps_smallest_set_reaching_p():
    logits = tf.math.log(tf.constant([[0.5, 0.3, 0.15, 0.05]]))
    kept = filter_top_p(logits, 0.7).numpy() > -1e8
    np.testing.assert_array_equal(kept, [[True, True, False, False]])
    kept = filter_top_p(logits, 0.1).numpy() > -1e8  # the top token always stays
    np.testing.assert_array_equal(kept, [[True, False, False, False]])


def test_repetition_penalty_lowers_seen_tokens():
    logits = tf.constant([[2.0, 1.9, -1.0]])
    presence = tf.constant([[True, False, False]])
    assert int(Sampler()(logits, SEED, presence)[0]) == 0
    assert int(Sampler(repetition_penalty=1.2)(logits, SEED, presence)[0]) == 1


@pytest.mark.parametrize("kwargs, message", BAD_SAMPLING_SETTINGS,
                         ids=[repr(kwargs) for kwargs, _ in BAD_SAMPLING_SETTINGS])
def test_both_samplers_reject_the_same_settings(kwargs, message):
    # tflite/sampling.py copies the validation (it must not import gpt_tf): same rules, same words.
    with pytest.raises(UserError) as keras_error:
        Sampler(**kwargs)
    with pytest.raises(ValueError) as numpy_error:
        np_sampling.Sampler(**kwargs)
    assert str(keras_error.value).startswith(message)
    assert str(numpy_error.value) == str(keras_error.value)


@pytest.mark.parametrize("kwargs", [
    dict(), dict(temperature=0.0, top_k=0, top_p=1.0, repetition_penalty=1.0),
    dict(temperature=np.float32(0.7), top_k=np.int64(3), top_p=np.float64(0.9)),
    dict(temperature=2, top_k=2**31 - 1, top_p=1e-6, repetition_penalty=100)])
def test_both_samplers_accept_valid_settings(kwargs):
    Sampler(**kwargs)
    np_sampling.Sampler(**kwargs)
