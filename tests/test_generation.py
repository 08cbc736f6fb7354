import numpy as np
import pytest

from gpt_tf.errors import UserError
from gpt_tf.generation import PREFILL_BUCKETS, Generator, prefill_width
from gpt_tf.sampling import Sampler
from tests.helpers import naive_greedy

PROMPTS = [[2, 40, 41, 42], [2, 50], [2, 60, 61, 62, 63, 64, 65]]


@pytest.fixture(scope="module")
def generator(tiny_model):
    # No XLA: each new batch shape or sampler compiles a program, which costs
    # far more than these tiny generations; the XLA loop is tested below.
    return Generator(tiny_model, jit_compile=False)


@pytest.mark.parametrize("jit_compile", [False, True])
def test_cached_greedy_equals_naive_recompute(tiny_model, jit_compile):
    result = Generator(tiny_model, jit_compile=jit_compile).generate(PROMPTS, max_new_tokens=8)
    for prompt, tokens in zip(PROMPTS, result.token_ids):
        assert tokens == naive_greedy(tiny_model, prompt, 8)
    assert result.stop_reasons == ["max_new_tokens"] * 3


def test_short_prefill_feeds_longer_prompts_through_the_decode_loop(generator, tiny_model):
    """The prefill covers only a bucket that holds the shortest prompt: a 3-token
    row prefills 8 positions while its 14-token neighbour's prompt runs past them;
    a 10-token row alone prefills the whole 32-position buffer. Every row still
    equals greedy decoding recomputed from scratch."""
    assert PREFILL_BUCKETS[0] == 8
    assert [prefill_width(n, 32) for n in (1, 8, 9, 32)] == [8, 8, 32, 32]
    assert prefill_width(40, 256) == 128 and prefill_width(200, 224) == 224
    rng = np.random.default_rng(1)
    rows = [[2] + list(rng.integers(3, 300, size=n - 1)) for n in (3, 14)]
    for prompts in (rows, [rows[1][:10]]):
        result = generator.generate(prompts, 6)
        for prompt, tokens in zip(prompts, result.token_ids):
            assert tokens == naive_greedy(tiny_model, prompt, 6)


def test_batch_of_different_lengths_equals_one_by_one(generator):
    sampler = Sampler(temperature=0.9, top_k=20)
    batch = generator.generate(PROMPTS, 6, sampler, seed=5).token_ids
    greedy_batch = generator.generate(PROMPTS, 6).token_ids
    for prompt, expected in zip(PROMPTS, greedy_batch):
        assert generator.generate([prompt], 6).token_ids[0] == expected
    assert all(len(t) == 6 for t in batch)


def test_seeded_sampling_repeats(generator):
    sampler = Sampler(temperature=1.0, top_p=0.9, repetition_penalty=1.3)
    first = generator.generate(PROMPTS, 8, sampler, seed=11).token_ids
    assert generator.generate(PROMPTS, 8, sampler, seed=11).token_ids == first
    others = [generator.generate(PROMPTS, 8, sampler, seed=s).token_ids for s in range(3)]
    assert any(o != first for o in others)


def test_stop_tokens_end_rows(generator):
    full = generator.generate(PROMPTS, 8).token_ids
    stop = full[0][2]
    result = generator.generate(PROMPTS, 8, stop_ids=[stop])
    assert result.stop_reasons[0] == "stop_token"
    assert len(result.token_ids[0]) <= 2
    for tokens, reference in zip(result.token_ids, full):
        expected = reference[:reference.index(stop)] if stop in reference else reference
        assert tokens == expected


def test_streaming_callback_matches_fused_loop(generator):
    sampler = Sampler(temperature=0.7, top_k=10)
    fused = generator.generate(PROMPTS, 5, sampler, seed=3).token_ids
    streamed = [[] for _ in PROMPTS]

    def on_token(step, tokens):
        for row, token in enumerate(tokens):
            if token is not None:
                streamed[row].append(token)

    stepped = generator.generate(PROMPTS, 5, sampler, seed=3, on_token=on_token).token_ids
    assert stepped == fused == streamed


def test_long_prompt_is_truncated_from_the_left(generator, tiny_model):
    prompt = list(np.random.default_rng(0).integers(3, 300, size=40))
    result = generator.generate([prompt], 4)
    assert result.truncated_prompts == [40 - (32 - 4)]
    assert result.token_ids[0] == naive_greedy(tiny_model, prompt[-28:], 4)


def test_bad_requests(generator):
    with pytest.raises(UserError, match="below the context window"):
        generator.generate(PROMPTS, 32)
    with pytest.raises(UserError, match="no tokens"):
        generator.generate([[]], 4)
    with pytest.raises(UserError, match="outside"):
        generator.generate([[2, 9999]], 4)
    with pytest.raises(UserError, match="seed must be in"):  # used to be a TF conversion error
        generator.generate(PROMPTS, 4, seed=2 ** 40)
