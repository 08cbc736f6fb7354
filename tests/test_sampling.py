import numpy as np
import pytest
import tensorflow as tf

from gpt_tf.errors import UserError
from gpt_tf.sampling import Sampler, filter_top_k, filter_top_p

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


@pytest.mark.parametrize("kwargs", [dict(temperature=-1), dict(top_k=-2), dict(top_p=0.0),
                                    dict(top_p=1.5), dict(repetition_penalty=0),
                                    dict(temperature=float("nan")),
                                    dict(temperature=float("inf")),
                                    dict(repetition_penalty=float("nan"))])
def test_invalid_settings(kwargs):
    with pytest.raises(UserError):
        Sampler(**kwargs)
