"""gpt_tf.text_stream: whole characters from token ids that arrive one by one."""

from gpt_tf.text_stream import StreamDecoder

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
