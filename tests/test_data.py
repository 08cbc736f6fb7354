import numpy as np
import pytest
import tensorflow as tf

from gpt_tf.data import Source, bits_per_byte, count_bytes_and_tokens, lm_dataset, split_documents
from gpt_tf.errors import UserError
from gpt_tf.textfiles import resolve_text_files


def _stream(tokenizer, files):
    ids = []
    for path in files:
        with open(path, encoding="utf-8") as handle:
            ids += [tokenizer.end_of_text_id] + tokenizer.encode(handle.read())
    return np.array(ids)


def test_windows_are_exact_and_targets_shifted(tokenizer, corpus_files):
    length = 16
    batches = list(lm_dataset([Source(f) for f in corpus_files], tokenizer, length, 4,
                              shuffle=False, repeat=False))
    inputs = np.concatenate([b[0].numpy() for b in batches])
    targets = np.concatenate([b[1].numpy() for b in batches])
    assert inputs.shape[1] == length and targets.shape == inputs.shape
    np.testing.assert_array_equal(inputs[:, 1:], targets[:, :-1])
    # Windows of length+1 tokens tile the EOT-joined stream exactly, in order.
    stream = _stream(tokenizer, corpus_files)
    windows = np.concatenate([inputs, targets[:, -1:]], axis=1)
    assert len(windows) == len(stream) // (length + 1)
    np.testing.assert_array_equal(windows.reshape(-1), stream[: windows.size])


def test_end_of_text_starts_every_document(tokenizer, corpus_files):
    stream = _stream(tokenizer, corpus_files)
    assert (stream == tokenizer.end_of_text_id).sum() == len(corpus_files)


def test_shuffle_is_seeded(tokenizer, corpus_files):
    sources = [Source(f) for f in corpus_files]

    def first(seed):
        dataset = lm_dataset(sources, tokenizer, 8, 4, shuffle=True, seed=seed)
        return next(iter(dataset))[0].numpy()

    np.testing.assert_array_equal(first(1), first(1))
    assert not np.array_equal(first(1), first(2))


def test_split_by_whole_document(corpus_files):
    train, validation = split_documents(corpus_files, 0.25, seed=3)
    assert len(validation) == 1 and len(train) == len(corpus_files) - 1
    assert {s.path for s in train}.isdisjoint({s.path for s in validation})
    assert all(s.skip_lines == 0 and s.take_lines == -1 for s in train + validation)
    assert split_documents(corpus_files, 0.25, seed=3) == (train, validation)


def test_single_file_holds_out_a_contiguous_tail(tmp_path, tokenizer):
    path = tmp_path / "one.txt"
    path.write_text("".join(f"line {i}\n" for i in range(100)))
    train, validation = split_documents([str(path)], 0.1, seed=0)
    assert train == [Source(str(path), 0, 90)]
    assert validation == [Source(str(path), 90, -1)]
    text = tokenizer.decode(next(iter(lm_dataset(validation, tokenizer, 8, 1, shuffle=False,
                                                 repeat=False)))[0].numpy()[0].tolist())
    assert "line 90" in text and "line 89" not in text


def test_input_context_shards_windows(tokenizer, corpus_files):
    sources = [Source(f) for f in corpus_files]
    full = list(lm_dataset(sources, tokenizer, 8, 1, shuffle=False, repeat=False))
    shards = []
    for worker in range(2):
        context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=worker)
        shards.append(list(lm_dataset(sources, tokenizer, 8, 1, shuffle=False, repeat=False,
                                      input_context=context)))
    np.testing.assert_array_equal(shards[0][0][0], full[0][0])
    np.testing.assert_array_equal(shards[1][0][0], full[1][0])
    np.testing.assert_array_equal(shards[0][1][0], full[2][0])
    assert len(shards[0]) + len(shards[1]) == len(full)


def test_bits_per_byte(tokenizer, corpus_files):
    total_bytes, total_tokens = count_bytes_and_tokens([Source(corpus_files[0])], tokenizer)
    with open(corpus_files[0], "rb") as handle:
        assert total_bytes == len(handle.read())
    assert total_tokens == len(_stream(tokenizer, corpus_files[:1]))
    assert bits_per_byte(np.log(2.0), 100, 100) == pytest.approx(1.0)


def test_resolve_text_files(tmp_path, corpus_files):
    with pytest.raises(UserError, match="does not exist"):
        resolve_text_files([str(tmp_path / "missing")])
    with pytest.raises(UserError, match="matches no files"):
        resolve_text_files([str(tmp_path / "*.txt")])
    (tmp_path / "sub").mkdir()
    with pytest.raises(UserError, match="no text files"):
        resolve_text_files([str(tmp_path / "sub")])
    directory = corpus_files[0].rsplit("/", 1)[0]
    assert resolve_text_files([directory]) == corpus_files


def test_training_batches_mix_documents(tmp_path, tokenizer):
    # Two long single-topic documents: read in order with a small shuffle
    # buffer, the first batches would all come from the first one.
    for name, word in (("a.txt", "alpha"), ("b.txt", "omega")):
        (tmp_path / name).write_text(f"{word} " * 4000 + "\n")
    sources = [Source(str(tmp_path / "a.txt")), Source(str(tmp_path / "b.txt"))]
    first = next(iter(lm_dataset(sources, tokenizer, 16, 8, shuffle=True, shuffle_buffer=2,
                                 seed=0)))[0].numpy()
    texts = [tokenizer.decode(row.tolist()) for row in first]
    assert any("alpha" in t for t in texts) and any("omega" in t for t in texts)
