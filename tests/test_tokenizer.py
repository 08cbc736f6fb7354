import pytest
import tensorflow as tf

from gpt_tf.errors import UserError
from gpt_tf.tokenizer import END_OF_TEXT, SEPARATORS, Tokenizer, train_tokenizer

TEXTS = [
    "Shall I compare thee to a summer's day?",
    "中文也能往返：你好，世界。",
    "emoji 🎉👍🏽 and ünïcödé",
    "whitespace   runs\t\ttabs\n\nand  newlines  ",
    "   leading and trailing   ",
    "<|question|> who? <|answer|> me",
]


def test_round_trip_any_utf8(tokenizer):
    for text in TEXTS:
        assert tokenizer.decode(tokenizer.encode(text)) == text


def test_in_graph_ids_equal_host_ids(tokenizer):
    ragged = tokenizer.tokenize(tf.constant(TEXTS))
    for row, text in zip(ragged.to_list(), TEXTS):
        assert row == tokenizer.encode(text)
    decoded = [t.decode("utf-8") for t in tokenizer.detokenize(ragged).numpy()]
    assert decoded == TEXTS


def test_in_graph_tokenizer_works_inside_tf_data(tokenizer):
    dataset = tf.data.Dataset.from_tensor_slices(TEXTS).map(
        lambda s: tokenizer.tokenize(s))
    assert [x.numpy().tolist() for x in dataset] == [tokenizer.encode(t) for t in TEXTS]


def test_special_tokens(tokenizer):
    assert tokenizer.pad_id == 0
    assert tokenizer.id_to_piece(tokenizer.end_of_text_id) == END_OF_TEXT
    assert set(tokenizer.separator_ids) == set(SEPARATORS)
    # Separators are matched as single tokens inside text; end-of-text is not.
    assert tokenizer.encode("<|answer|>") == [tokenizer.separator_ids["<|answer|>"]]
    assert tokenizer.end_of_text_id not in tokenizer.encode(END_OF_TEXT)
    assert tokenizer.decode([tokenizer.end_of_text_id]) == ""


def test_saved_next_to_model_and_reloads(tokenizer):
    again = Tokenizer(tokenizer.model_path)
    assert again.encode(TEXTS[0]) == tokenizer.encode(TEXTS[0])


def test_bad_inputs(tmp_path, corpus_files):
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n")
    binary = tmp_path / "blob.bin"
    binary.write_bytes(b"\x00\x01\x02" * 100)
    latin = tmp_path / "latin.txt"
    latin.write_bytes("caf\xe9 cr\xe8me".encode("latin-1"))
    out = str(tmp_path / "out")
    with pytest.raises(UserError, match="is empty"):
        train_tokenizer([str(empty)], out)
    with pytest.raises(UserError, match="looks binary"):
        train_tokenizer([str(binary)], out)
    with pytest.raises(UserError, match="not valid UTF-8"):
        train_tokenizer([str(latin)], out)
    with pytest.raises(UserError, match="does not exist"):
        train_tokenizer([str(tmp_path / "missing.txt")], out)
    with pytest.raises(UserError, match="too small for a vocabulary of 50000"):
        train_tokenizer(corpus_files, out, vocab_size=50000)
    with pytest.raises(UserError, match="too small; use at least"):
        train_tokenizer(corpus_files, out, vocab_size=100)


def test_corrupt_model_file(tmp_path):
    bad = tmp_path / "tokenizer.model"
    bad.write_bytes(b"not a sentencepiece model")
    with pytest.raises(UserError, match="corrupt"):
        Tokenizer(str(bad))


def test_in_graph_use_then_eager_use(tokenizer):
    # A tokenizer first used inside a tf.data function must still work eagerly.
    list(tf.data.Dataset.from_tensor_slices(TEXTS).map(tokenizer.tokenize).take(1))
    assert tokenizer.tokenize(tf.constant(TEXTS[:1])).to_list() == [tokenizer.encode(TEXTS[0])]
