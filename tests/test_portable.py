"""Training on packed arrays (any Keras backend) and importing the weights back."""

import dataclasses
import json
import os

import numpy as np
import pytest

from gpt_tf import portable
from gpt_tf.errors import UserError


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_config, tokenizer, corpus_files):
    """A prepared (untrained) LM run, a fine-tuning run on top of it, and their arrays."""
    from gpt_tf.config import apply_overrides
    from gpt_tf.tasks.finetune import prepare_finetune_run
    from gpt_tf.training import prepare_run

    root = tmp_path_factory.mktemp("portable")
    pairs = root / "pairs.tsv"
    pairs.write_text("".join(f"light {i}\tlumière {i}\n" for i in range(40)), encoding="utf-8")
    reviews = root / "reviews.jsonl"
    reviews.write_text("".join(json.dumps({"text": f"{word} film {i}", "label": label}) + "\n"
                               for i in range(20)
                               for word, label in (("good", "pos"), ("bad", "neg"))),
                       encoding="utf-8")
    base, tuned = str(root / "base"), str(root / "tuned")
    # No XLA: compiling three `fit` functions would dominate this test's time.
    config = apply_overrides(tiny_config, {"train.steps": 4, "train.eval_every": 2,
                                           "train.batch_size": 4, "train.xla": False,
                                           "data.validation_fraction": 0.25})
    prepare_run(base, config, corpus_files, tokenizer_path=tokenizer.model_path)
    prepare_finetune_run(tuned, base, {"translate": str(pairs), "sentiment": str(reviews)},
                         ["train.steps=4", "train.eval_every=2", "train.batch_size=4",
                          "train.xla=false"],
                         holdout_fraction=0.2, require_trained_base=False)
    path = str(root / "arrays.npz")
    counts = portable.pack_arrays(base, tuned, path)
    arrays, meta = portable.load_arrays(path)
    return {"base": base, "tuned": tuned, "path": path, "counts": counts, "arrays": arrays,
            "meta": meta, "config": config}


def test_packed_stream_is_the_tensorflow_readers_stream(runs):
    """The arrays hold exactly the tokens `gpt_tf.data.token_stream` reads, document by document."""
    from gpt_tf.data import token_stream
    from gpt_tf.tokenizer import Tokenizer
    from gpt_tf.training import load_split

    tok = Tokenizer.from_dir(runs["base"])
    split = load_split(runs["base"])
    for name, key in (("train", "pre_train"), ("validation", "pre_validation")):
        chunks = list(token_stream(split[name], tok).as_numpy_iterator())
        expected = np.concatenate(chunks)
        np.testing.assert_array_equal(runs["arrays"][key], expected)
    offsets = runs["arrays"]["pre_train_offsets"]
    assert len(offsets) == len(split["train"]) + 1
    # Every document starts with end-of-text.
    assert (runs["arrays"]["pre_train"][offsets[:-1]] == tok.end_of_text_id).all()
    assert runs["meta"]["pretrain_tokens"] == offsets[-1] == runs["arrays"]["pre_train"].size


def test_packed_task_windows_keep_the_prompt_mask(runs):
    from gpt_tf.task_data.examples import task_windows
    from gpt_tf.tokenizer import Tokenizer
    from gpt_tf.training import load_split

    split = load_split(runs["tuned"])
    tokens, mask = task_windows(split["validation"], Tokenizer.from_dir(runs["tuned"]),
                                runs["config"].model.sequence_length, shuffle=False)
    np.testing.assert_array_equal(runs["arrays"]["ft_validation_tokens"], tokens)
    np.testing.assert_array_equal(runs["arrays"]["ft_validation_mask"], mask)
    assert 0 < runs["arrays"]["ft_train_mask"].mean() < 1


def test_epoch_windows_are_slices_of_the_shuffled_documents():
    docs = [np.arange(start, start + size, dtype=np.uint16)
            for start, size in ((0, 7), (100, 11), (200, 5), (300, 9))]
    tokens = np.concatenate(docs)
    offsets = np.cumsum([0] + [len(d) for d in docs])
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(5):
        windows = portable.lm_epoch_windows(tokens, offsets, 3, rng)
        assert windows.shape[1] == 4 and len(windows) >= (len(tokens) - 3) // 4
        for row in windows:
            seen.add(tuple(row))
            # Inside one document ids go up by one; a jump is a document boundary.
            assert sum(np.diff(row.astype(int)) != 1) <= 1
    assert len(seen) > len(tokens) // 4  # new orders and offsets give new windows


def test_task_batches_cover_each_window_once_per_epoch():
    tokens = np.arange(10 * 5, dtype=np.uint16).reshape(10, 5)
    mask = (tokens % 2).astype(np.uint8)
    batches = portable.task_batches(tokens, mask, 5, seed=3)
    rows = []
    for _ in range(2):
        inputs, targets, weights = next(batches)
        np.testing.assert_array_equal(inputs[:, 1:], targets[:, :-1])
        np.testing.assert_array_equal(weights, targets % 2)
        rows.extend(inputs[:, 0] // 5)
    assert sorted(rows) == list(range(10))


def test_train_on_arrays_then_import_gives_the_same_model(runs):
    """Real training with `model.fit` (TensorFlow backend here), a 2-trial sweep, import."""
    from gpt_tf.training import load_model, load_run_config

    config = load_run_config(runs["tuned"])
    trials = [config.train, dataclasses.replace(config.train, learning_rate=3e-3)]
    saved, lines = {}, []

    def save(stage, model):
        path = os.path.join(os.path.dirname(runs["path"]), f"{stage}.npz")
        portable.save_weight_arrays(model, path)
        saved[stage] = (path, [np.array(w) for w in model.get_weights()])

    result = portable.train_on_arrays(runs["arrays"], runs["config"].model, runs["config"].train,
                                      trials, save, log=lines.append)
    assert set(saved) == {portable.PRETRAIN, portable.FINETUNE}
    assert [r["step"] for r in result["pretrain"]["history"]] == [2, 4]
    losses = [t["best_validation_loss"] for t in result["finetune_trials"]]
    assert result["chosen_trial"] == int(np.argmin(losses))
    assert all(np.isfinite(losses)) and len(lines) == 6
    portable.import_weights(runs["tuned"], saved[portable.FINETUNE][0],
                            result["finetune_trials"][result["chosen_trial"]]["history"])
    model, _, _ = load_model(runs["tuned"])
    for loaded, trained in zip(model.get_weights(), saved[portable.FINETUNE][1]):
        np.testing.assert_array_equal(loaded, trained)
    assert os.listdir(os.path.join(runs["tuned"], "logs", "validation"))
    # Fine-tuning only, from the saved pretrained weights; the result is plain JSON.
    again = portable.train_on_arrays(runs["arrays"], runs["config"].model, runs["config"].train,
                                     trials[:1], save, log=lines.append,
                                     pretrained=saved[portable.PRETRAIN][0])
    assert again["pretrain"]["history"] == [] and len(lines) == 8
    assert json.loads(json.dumps(again))["pretrain"]["weights_from"] == saved[portable.PRETRAIN][0]


def test_a_time_budget_stops_a_stage_at_its_first_evaluation(runs):
    from gpt_tf.models import GPTCausalLM

    model = GPTCausalLM.from_model_config(runs["config"].model)
    train = dataclasses.replace(runs["config"].train, steps=10, eval_every=2)
    arrays = runs["arrays"]
    rows, _, step = portable._stage(
        model, portable.task_batches(arrays["ft_train_tokens"], arrays["ft_train_mask"], 4, 0),
        (arrays["ft_validation_tokens"][:, :-1].astype(np.int32),
         arrays["ft_validation_tokens"][:, 1:].astype(np.int32),
         arrays["ft_validation_mask"][:, 1:].astype(np.float32)),
        train, lambda line: None, "budget", max_seconds=1e-6)
    assert [r["step"] for r in rows] == [2] and step == 2


def test_bad_files_are_refused_by_name(runs, tmp_path, tiny_model):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(UserError, match="bad.npz"):
        portable.load_arrays(str(bad))
    no_meta = tmp_path / "no_meta.npz"
    np.savez(no_meta, x=np.zeros(3))
    with pytest.raises(UserError, match="meta"):
        portable.load_arrays(str(no_meta))
    other = tmp_path / "other.npz"
    np.savez(other, x=np.zeros(3))
    with pytest.raises(UserError, match="different model"):
        portable.load_weight_arrays(tiny_model, str(other))
