"""gpt_tf.text_stream: whole characters from token ids that arrive one by one."""

from gpt_tf.text_stream import StreamDecoder
from tests.conftest import TINY_VOCAB

# "€" and "🙂" are not in the tiny vocabulary: byte fallback spells them in 3 and 4 byte tokens.
SPLIT_TEXT = "a€ b🙂c"


def test_a_character_split_over_byte_tokens_streams_whole(tokenizer):
    ids = tokenizer.encode(SPLIT_TEXT)
    assert tokenizer.decode(ids) == SPLIT_TEXT
    partial = [tokenizer.decode(ids[:n]) for n in range(1, len(ids))]
    assert sum(text.endswith("\ufffd") for text in partial) >= 5  # the split is real
    decoder = StreamDecoder(tokenizer.decode)
    pieces = [decoder.push(token) for token in ids]
    assert not any("\ufffd" in piece for piece in pieces), pieces
    assert "€" in pieces and "🙂" in pieces  # each printed once, when its last byte arrives
    assert "".join(pieces) == decoder.emitted == SPLIT_TEXT and decoder.finish() == ""


def test_an_unfinished_character_is_flushed_as_the_final_text_has_it(tokenizer):
    ids = tokenizer.encode("ab€")[:-1]
    decoder = StreamDecoder(tokenizer.decode)
    shown = "".join(decoder.push(token) for token in ids)
    assert shown == "ab"
    rest = decoder.finish()
    assert rest.startswith("\ufffd") and shown + rest == tokenizer.decode(ids)


def test_a_decode_that_rewrites_shown_text_waits():
    texts = {1: "x", 2: "Y z", 3: "x z!"}
    decoder = StreamDecoder(lambda ids: texts[len(ids)])
    assert [decoder.push(t) for t in (7, 8, 9)] == ["x", "", " z!"]
    assert decoder.finish("x z!?") == "?"


class _ScriptedServable:
    """A servable whose `prefill`/`decode` signatures make greedy sampling spell `script`."""

    def __init__(self, tokenizer, script):
        import tensorflow as tf

        self.host_tokenizer = tokenizer
        self.metadata = {"tokenizer": {"end_of_text_id": tokenizer.end_of_text_id},
                         "model": {"sequence_length": 64}, "jit_compile": False}
        rows = tf.one_hot(list(script) + [tokenizer.end_of_text_id], TINY_VOCAB)

        def prefill(token_ids):
            return {"logits": rows[:1], "cache": tf.zeros([1], tf.int32)}

        def decode(token_id, position, cache):
            return {"logits": rows[int(cache[0]) + 1:][:1], "cache": cache + 1}

        self.signatures = {"prefill": prefill, "decode": decode}


def test_the_serving_stream_holds_back_a_split_character(tokenizer):
    """Issue 16: `:generateStream` decodes with `StreamDecoder` over the shared host loop."""
    from gpt_tf.sampling import Sampler
    from gpt_tf.serving.streaming import stream_generate

    ids = tokenizer.encode(SPLIT_TEXT)
    events = list(stream_generate(_ScriptedServable(tokenizer, ids), "a", len(ids) + 4,
                                  Sampler(0.0, 0, 1.0, 1.0), seed=0))
    summary = events.pop()
    assert [e["token_id"] for e in events] == ids
    assert not any("\ufffd" in e["text"] for e in events), events
    assert "".join(e["text"] for e in events) == summary["completion"] == SPLIT_TEXT
    assert (summary["num_tokens"], summary["stop_reason"]) == (len(ids), "stop_token")
