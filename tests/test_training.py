import json
import math
import os
import shutil

import numpy as np
import pytest

from gpt_tf.config import apply_overrides
from gpt_tf.training import TrainingStopped, load_model, load_run_config, prepare_run, train
from tests.helpers import count_answers_plainly


def _losses(events):
    return [info["loss"] for kind, info in events if kind == "step"]


def test_loss_falls_on_real_text(trained_run):
    losses = _losses(trained_run["events"])
    assert len(losses) == 6
    assert losses[-1] < losses[0] - 1.0, losses
    result = trained_run["result"]
    assert result.status == "completed" and result.step == 60
    assert result.validation["validation_loss"] < math.log(320)
    assert 0 < result.validation["validation_bits_per_byte"] < 8


def test_run_directory_layout(trained_run):
    run_dir = trained_run["run_dir"]
    for name in ("config.json", "data_split.json", "tokenizer.model", "model.keras",
                 "history.jsonl", "checkpoints", "best", "logs"):
        assert os.path.exists(os.path.join(run_dir, name)), name
    model, tokenizer, config = load_model(run_dir)
    assert model.backbone.vocab_size == tokenizer.vocab_size == config.model.vocab_size


def test_tensorboard_event_files(trained_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logs = os.path.join(trained_run["run_dir"], "logs")
    train_events = EventAccumulator(os.path.join(logs, "train")).Reload()
    tags = set(train_events.Tags()["tensors"])
    assert {"loss", "perplexity", "learning_rate", "gradient_norm", "tokens_per_second",
            "step_time"} <= tags
    losses = [float(np.asarray(_tensor(e))) for e in train_events.Tensors("loss")]
    assert [e.step for e in train_events.Tensors("loss")] == [10, 20, 30, 40, 50, 60]
    assert losses == pytest.approx(_losses(trained_run["events"]), rel=1e-6)
    validation = EventAccumulator(os.path.join(logs, "validation")).Reload()
    assert {"loss", "perplexity", "bits_per_byte"} <= set(validation.Tags()["tensors"])
    assert [e.step for e in validation.Tensors("bits_per_byte")] == [30, 60]
    samples = train_events.Tensors("samples")
    assert [e.step for e in samples] == [30, 60]
    text = _tensor(samples[-1]).reshape(-1)[0].decode("utf-8")
    assert text.startswith("And God said") and len(text) > len("And God said")
    # The HParams run table is a plugin summary in the same event files.
    from tensorboard.backend.event_processing import plugin_event_multiplexer as multiplexer

    mux = multiplexer.EventMultiplexer({"train": os.path.join(logs, "train")}).Reload()
    metadata = mux.SummaryMetadata("train", "_hparams_/session_start_info")
    assert metadata.plugin_data.plugin_name == "hparams"


def _tensor(event):
    import tensorflow as tf

    return tf.make_ndarray(event.tensor_proto)


def _weights(run_dir):
    model, _, _ = load_model(run_dir, "latest")
    return [np.asarray(w) for w in model.weights]


def _new_run(tmp_path, name, tiny_config, corpus_files, dropout=0.1, **train):
    # No XLA: on these tiny runs compiling costs 3x the training (the session's
    # `trained_run` covers the XLA path).
    config = apply_overrides(tiny_config, {
        "train.steps": 12, "train.batch_size": 4, "train.warmup_steps": 2, "train.xla": False,
        "train.eval_every": 100, "train.checkpoint_every": 4, "train.log_every": 4,
        "model.dropout": dropout, "data.validation_fraction": 0.25,
        **{f"train.{k}": v for k, v in train.items()}})
    run_dir = str(tmp_path / name)
    prepare_run(run_dir, config, corpus_files)
    return run_dir


def test_resume_in_slices_equals_one_run(tmp_path, tiny_config, corpus_files):
    straight = _new_run(tmp_path, "straight", tiny_config, corpus_files)
    train(straight)
    sliced = _new_run(tmp_path, "sliced", tiny_config, corpus_files)
    first = train(sliced, max_steps_this_run=5)
    assert first.status == "paused" and first.step == 5
    second = train(sliced)
    assert second.resumed_from == 5 and second.step == 12
    for a, b in zip(_weights(straight), _weights(sliced)):
        np.testing.assert_array_equal(a, b)


def test_corrupt_newest_checkpoint_falls_back(tmp_path, tiny_config, corpus_files):
    run_dir = _new_run(tmp_path, "corrupt", tiny_config, corpus_files)
    train(run_dir)
    newest = os.path.join(run_dir, "checkpoints", "ckpt-12.data-00000-of-00001")
    with open(newest, "r+b") as handle:
        handle.truncate(100)
    events = []
    result = train(run_dir, on_event=lambda kind, info: events.append((kind, info)))
    warnings = [info["message"] for kind, info in events if kind == "warning"]
    assert len(warnings) == 1 and "ckpt-12" in warnings[0] and "previous" in warnings[0]
    assert result.resumed_from == 8 and result.step == 12


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path, tiny_config, corpus_files):
    run_dir = _new_run(tmp_path, "nan", tiny_config, corpus_files, steps=200,
                       checkpoint_every=1, learning_rate=1e9, min_learning_rate=1e9,
                       warmup_steps=0, clip_norm=0.0)
    with pytest.raises(TrainingStopped, match="Last good checkpoint: .*ckpt-"):
        train(run_dir)
    for weight in _weights(run_dir):
        assert np.isfinite(weight).all()


def test_early_stopping(tmp_path, tiny_config, corpus_files):
    import tensorflow as tf

    run_dir = _new_run(tmp_path, "early", tiny_config, corpus_files, steps=200,
                       eval_every=2, eval_steps=1, early_stopping_patience=2,
                       learning_rate=0.5, min_learning_rate=0.5, warmup_steps=0,
                       restore_best_weights=True)
    events = []
    result = train(run_dir, on_event=lambda kind, info: events.append((kind, info)))
    assert result.status == "early_stopped" and result.step < 200
    # Stopped after 2 evaluations without a better loss, so the best is an earlier step, and
    # with restore_best_weights it is what model.keras holds; the checkpoints keep the last.
    best_step = int(tf.train.latest_checkpoint(os.path.join(run_dir, "best")).rsplit("-", 1)[1])
    assert best_step == result.step - 4
    assert ("restore_best", {"step": best_step, "metric": "loss"}) in events
    final = [np.asarray(w) for w in load_model(run_dir)[0].weights]
    best = [np.asarray(w) for w in load_model(run_dir, "best")[0].weights]
    for a, b in zip(final, best):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(final, _weights(run_dir)))


def test_overrides_on_existing_run(tmp_path, tiny_config, corpus_files):
    run_dir = _new_run(tmp_path, "extend", tiny_config, corpus_files)
    train(run_dir)
    events = []
    result = train(run_dir, overrides=["train.steps=16"],
                   on_event=lambda kind, info: events.append((kind, info)))
    assert result.resumed_from == 12 and result.step == 16
    # The override is the run's config now (a plain resume keeps it) ...
    assert load_run_config(run_dir).train.steps == 16
    # ... and moving the schedule's end restarts the cosine: said, with both rates.
    warnings = [info["message"] for kind, info in events if kind == "warning"]
    assert len(warnings) == 1, warnings
    assert "train.steps 12 -> 16" in warnings[0] and "warm restart" in warnings[0]
    # config.json keeps only the new value; the change log says what trained steps 1-12.
    with open(os.path.join(run_dir, "config_changes.jsonl")) as handle:
        assert [json.loads(line) for line in handle] == [
            {"step": 12, "train": {"steps": [12, 16]}}]
    events.clear()
    again = train(run_dir, on_event=lambda kind, info: events.append((kind, info)))
    assert again.resumed_from == 16 and again.step == 16
    assert not [info for kind, info in events if kind == "warning"]
    # A plain resume changes nothing and logs nothing.
    with open(os.path.join(run_dir, "config_changes.jsonl")) as handle:
        assert len(handle.readlines()) == 1
    from gpt_tf.errors import UserError

    with pytest.raises(UserError, match="only train"):
        train(run_dir, overrides=["model.num_layers=3"])
    shutil.rmtree(run_dir)


def _step_losses(run_dir, **kwargs):
    events = []
    train(run_dir, on_event=lambda kind, info: events.append((kind, info)), **kwargs)
    return _losses(events)


def test_gradient_accumulation_equals_the_bigger_batch(tmp_path, tiny_config, corpus_files):
    # Dropout off: the masks of two micro-batches differ from one batch's.
    big = _new_run(tmp_path, "big", tiny_config, corpus_files, dropout=0.0, batch_size=8,
                   log_every=1, steps=4)
    accumulated = _new_run(tmp_path, "accumulated", tiny_config, corpus_files, dropout=0.0,
                           batch_size=4, gradient_accumulation=2, log_every=1, steps=4)
    np.testing.assert_allclose(_step_losses(accumulated), _step_losses(big), rtol=1e-5)


@pytest.mark.parametrize("precision", ["bfloat16", "float16"])
def test_mixed_precision_matches_float32_at_the_start(tmp_path, tiny_config, corpus_files,
                                                      precision):
    fp32 = _new_run(tmp_path, "fp32", tiny_config, corpus_files, log_every=1, steps=3)
    mixed = _new_run(tmp_path, precision, tiny_config, corpus_files, log_every=1, steps=3,
                     mixed_precision=precision)
    events = []
    train(mixed, on_event=lambda kind, info: events.append((kind, info)))
    start = dict(events)["start"]
    assert start["compute_dtype"] == precision
    assert start["loss_scaling"] == (precision == "float16")
    mixed_losses = [info["loss"] for kind, info in events if kind == "step"]
    reference = _step_losses(fp32)
    np.testing.assert_allclose(mixed_losses, reference, rtol=2e-2)
    assert mixed_losses != reference


def test_profile_steps_write_a_trace(tmp_path, tiny_config, corpus_files):
    run_dir = _new_run(tmp_path, "profiled", tiny_config, corpus_files, steps=6,
                       profile_steps="2,4")
    train(run_dir)
    traces = [name for _, _, names in os.walk(os.path.join(run_dir, "logs", "profile"))
              for name in names if name.endswith(".xplane.pb")]
    assert traces


def test_lora_finetune_trains_few_weights_and_merges_on_save(tmp_path, tiny_config,
                                                              corpus_files, trained_run):
    from gpt_tf.training import INIT_FILE

    run_dir = _new_run(tmp_path, "lora", tiny_config, corpus_files, dropout=0.0, steps=6,
                       lora_rank=2, learning_rate=1e-2)
    with open(os.path.join(run_dir, INIT_FILE), "w") as handle:
        json.dump({"run_dir": trained_run["run_dir"]}, handle)
    events = []
    train(run_dir, on_event=lambda kind, info: events.append((kind, info)))
    assert any(kind == "init" for kind, _ in events)
    base, _, _ = load_model(trained_run["run_dir"])
    tuned, _, _ = load_model(run_dir)  # model.keras, adapters merged
    base_weights = {w.path: np.asarray(w) for w in base.weights}
    tuned_weights = {w.path: np.asarray(w) for w in tuned.weights}
    assert base_weights.keys() == tuned_weights.keys()  # no adapter weights left
    # Frozen: embeddings and norms unchanged; merged kernels moved.
    np.testing.assert_array_equal(tuned_weights["token_embedding/embeddings"],
                                  base_weights["token_embedding/embeddings"])
    kernel = "decoder_block_0/attention/qkv/kernel"
    assert np.abs(tuned_weights[kernel] - base_weights[kernel]).max() > 0


def test_enable_lora_counts(tiny_config):
    from gpt_tf.models import GPTCausalLM
    from gpt_tf.training import enable_lora

    model = GPTCausalLM.from_model_config(tiny_config.model)
    trainable, total = enable_lora(model, 2)
    names = [v.path for v in model.trainable_variables]
    assert all("lora" in n or n.endswith("bias") for n in names)
    assert trainable < 0.2 * total


def test_count_answers_matches_a_plain_loop():
    from gpt_tf.training import count_answers

    # Two answers in row 0 (one wrong), one per row at the row ends: runs never join rows.
    weights = np.array([[0, 1, 1, 0, 1, 1], [1, 1, 0, 0, 0, 0]], np.float32)
    hits = np.array([[1, 1, 1, 1, 0, 1], [1, 1, 0, 0, 0, 0]], bool)
    assert count_answers(weights, hits) == (3, 2)
    assert count_answers(np.zeros((2, 4)), np.ones((2, 4), bool)) == (0, 0)
    rng = np.random.default_rng(0)
    for _ in range(50):
        weights = rng.random((3, 9)) < 0.5
        hits = rng.random((3, 9)) < 0.8
        assert count_answers(weights, hits) == count_answers_plainly(weights, hits)


def test_validation_batches_sample_every_source_in_a_fixed_order(tmp_path, tokenizer,
                                                                 tiny_config):
    from gpt_tf.data import Source
    from gpt_tf.task_data.examples import task_dataset
    from gpt_tf.training.inputs import validation_dataset

    # a mixture's validation split in file order: ten documents of one source, then another's
    paths = []
    for source, word in (("a", "alpha"), ("b", "bravo")):
        for number in range(10):
            path = tmp_path / f"{source}{number}.txt"
            path.write_text(f"{word} {number} " * 40 + "\n", encoding="utf-8")
            paths.append(str(path))
    split = {"kind": "lm", "validation": [Source(p) for p in paths]}
    dataset = validation_dataset(split, tokenizer, tiny_config)

    def text(ids):
        return tokenizer.decode([int(i) for i in ids.reshape(-1)])

    def first_batches():
        return [batch[0].numpy() for batch in dataset.take(4)]

    first = first_batches()
    assert "bravo" in "".join(map(text, first))  # file order: 4 batches of "alpha" only
    assert all((a == b).all() for a, b in zip(first, first_batches()))  # same every evaluation
    # fine-tuning validation: a task's examples in the same kind of fixed sample order
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("".join(f"{w} {i}\t{w} {i}\n" for w in ("light", "dark") for i in range(40)),
                     encoding="utf-8")
    spec = [{"task": "translate", "path": str(pairs), "select": "all", "weight": 1.0}]
    for seed, has_dark in ((None, False), (0, True)):
        batch = next(iter(task_dataset(spec, tokenizer, 32, 2, shuffle=False, repeat=False,
                                       example_order_seed=seed)))
        assert ("dark" in text(batch[0].numpy())) == has_dark


def test_task_loss_is_the_scored_tasks_mean_loss_and_needs_one_of_them():
    from gpt_tf.config import selection_score
    from gpt_tf.errors import UserError
    from gpt_tf.training.evaluation import check_best_metric

    # round 13's fine-tuning in miniature: the total loss (with the `generate` text) prefers
    # the earlier step while every task's loss fell
    early = {"validation_loss": 3.646, "validation_translate_loss": 3.534,
             "validation_qa_loss": 2.665, "validation_sentiment_loss": 0.150,
             "validation_generate_loss": 4.043}
    late = {"validation_loss": 3.647, "validation_translate_loss": 3.402,
            "validation_qa_loss": 2.164, "validation_sentiment_loss": 0.138,
            "validation_generate_loss": 4.117}
    assert selection_score(early, "loss") < selection_score(late, "loss")
    assert selection_score(late, "task_loss") < selection_score(early, "task_loss")
    assert selection_score(late, "task_loss") == pytest.approx((3.402 + 2.164 + 0.138) / 3)
    tasks = {"kind": "tasks", "validation": [{"task": "qa"}, {"task": "generate"}]}
    check_best_metric("task_loss", tasks)
    only_text = {"kind": "tasks", "validation": [{"task": "generate"}]}
    with pytest.raises(UserError, match="task_loss needs translate, qa or sentiment validation "
                                        "data.*choose one of: loss$"):
        check_best_metric("task_loss", only_text)
    with pytest.raises(UserError, match="choose one of: loss, task_loss, qa_accuracy$"):
        check_best_metric("sentiment_accuracy", tasks)


def test_a_best_metric_without_its_validation_data_is_refused(tmp_path, tiny_config, corpus_files):
    from gpt_tf.errors import UserError

    run_dir = _new_run(tmp_path, "metric", tiny_config, corpus_files,
                       best_metric="sentiment_accuracy")
    with pytest.raises(UserError, match="best_metric=sentiment_accuracy needs sentiment "
                                        "validation data.*choose one of: loss$"):
        train(run_dir)
    assert not os.path.exists(os.path.join(run_dir, "checkpoints"))
