"""Fine-tune -> export -> the same answers on every backend (Keras, SavedModel, REST, TFLite).

One tiny run is fine-tuned for a few steps (translate + sentiment), exported
as a SavedModel (served in process and by `gpt-tf serve` over REST) and as
TFLite (float32 and int8). Greedy outputs must agree with Keras token for
token; scores within float tolerance (int8: it only has to run).
"""

import json
import os

import numpy as np
import pytest

pytest.importorskip("gpt_tf.export.saved_model", reason="the export code (issue 5) is not there")
pytest.importorskip("gpt_tf.serving.server", reason="the REST server (issue 5) is not there")

from gpt_tf.clients import open_client  # noqa: E402
from gpt_tf.errors import UserError  # noqa: E402
from gpt_tf.tasks.qa import answer_questions  # noqa: E402
from gpt_tf.tasks.sentiment import classify  # noqa: E402
from gpt_tf.tasks.translate import translate  # noqa: E402
from tests.helpers import count_answers_plainly, write_reviews  # noqa: E402

PROMPTS = ["<|source|>light 3<|target|>", "And God said"]
BACKENDS = ["savedmodel", "rest", "tflite-none"]


@pytest.fixture(scope="module")
def tuned(trained_run, tmp_path_factory):
    from gpt_tf.tasks.finetune import prepare_finetune_run
    from gpt_tf.training import train

    root = tmp_path_factory.mktemp("tuned")
    pairs = root / "pairs.tsv"
    pairs.write_text("".join(f"light {i}\tlumière {i}\n" for i in range(40)), encoding="utf-8")
    reviews = write_reviews(root / "reviews.jsonl", 20)
    run = str(root / "run")
    prepare_finetune_run(run, trained_run["run_dir"],
                         {"translate": str(pairs), "sentiment": str(reviews)},
                         ["train.steps=8", "train.eval_every=4", "train.checkpoint_every=8",
                          "train.warmup_steps=2", "train.xla=false",
                          "train.best_metric=sentiment_accuracy"], holdout_fraction=0.2)
    events = []
    result = train(run, on_event=lambda kind, info: events.append((kind, info)))
    assert result.status == "completed" and result.validation is not None
    assert ("init", {"from": os.path.abspath(trained_run["run_dir"])}) in events
    return {"run": run, "root": root}


def test_fine_tuning_validates_each_task_and_keeps_the_most_accurate(tuned):
    import tensorflow as tf

    from gpt_tf.training import load_model, load_split

    with open(os.path.join(tuned["run"], "history.jsonl")) as handle:
        evals = [json.loads(line) for line in handle]
    assert [e["step"] for e in evals] == [4, 8]
    for e in evals:
        losses = [e[f"validation_{task}_loss"] for task in ("translate", "sentiment")]
        # the run's loss is the token-weighted mean of its tasks' losses
        assert min(losses) - 1e-9 <= e["validation_loss"] <= max(losses) + 1e-9
        for task in ("translate", "sentiment"):
            assert 0.0 <= e[f"validation_{task}_accuracy"] <= 1.0
    # The `best` checkpoint is the first evaluation with the highest sentiment accuracy.
    best = max(evals, key=lambda e: (e["validation_sentiment_accuracy"], -e["step"]))["step"]
    assert tf.train.latest_checkpoint(os.path.join(tuned["run"], "best")).endswith(f"-{best}")
    # The final model's sentiment accuracy, counted here one example at a time.
    model, tokenizer, config = load_model(tuned["run"])
    from gpt_tf.task_data.examples import build_examples, check_spec, task_windows

    spec = [s for s in load_split(tuned["run"])["validation"] if s["task"] == "sentiment"]
    tokens, mask = task_windows(spec, tokenizer, config.model.sequence_length, shuffle=False)
    predicted = np.argmax(model.predict(tokens[:, :-1], verbose=0), axis=-1)
    answers, correct = count_answers_plainly(mask[:, 1:], predicted == tokens[:, 1:])
    examples = build_examples(check_spec(spec)[0], tokenizer, config.model.sequence_length)
    assert answers == len(examples) > 0
    assert evals[-1]["validation_sentiment_accuracy"] == correct / answers
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    validation = EventAccumulator(os.path.join(tuned["run"], "logs", "validation")).Reload()
    assert {"loss", "sentiment/accuracy", "sentiment/loss", "translate/accuracy"} <= \
        set(validation.Tags()["tensors"])


def test_validation_is_per_task_and_skips_a_task_that_cannot_fit(tuned, tmp_path):
    from gpt_tf.tokenizer import Tokenizer
    from gpt_tf.training import load_run_config, load_split, validation_sets

    run = tuned["run"]
    split, config, tokenizer = load_split(run), load_run_config(run), Tokenizer.from_dir(run)
    warnings = []
    assert set(validation_sets(split, tokenizer, config, warnings.append)) == \
        {"translate", "sentiment"} and not warnings
    # `train.eval_steps` caps each task, not the run: with batches of 2 windows, one
    # step counts the answers in each task's first 2 windows; no cap counts them all.
    import dataclasses

    from gpt_tf.task_data.examples import task_windows
    from gpt_tf.training import evaluate_totals, load_model
    from gpt_tf.training.inputs import VALIDATION_ORDER_SEED

    model = load_model(run)[0]
    small = dataclasses.replace(config, train=dataclasses.replace(config.train, batch_size=2))
    for task, dataset in validation_sets(split, tokenizer, small, warnings.append).items():
        spec = [s for s in split["validation"] if s["task"] == task]
        mask = task_windows(spec, tokenizer, config.model.sequence_length, shuffle=True,
                            seed=VALIDATION_ORDER_SEED)[1][:, 1:]
        assert len(mask) > 2  # more than one batch, so the cap matters
        first, every = (count_answers_plainly(m, m > 0)[0] for m in (mask[:2], mask))
        assert evaluate_totals(model, dataset, 1, jit_compile=False)["answers"] == first < every
        assert evaluate_totals(model, dataset, 0, jit_compile=False)["answers"] == every
    too_long = tmp_path / "long.tsv"
    too_long.write_text(" ".join(["light"] * 200) + "\t" + " ".join(["lumière"] * 200) + "\n",
                        encoding="utf-8")
    split["validation"] = [s for s in split["validation"] if s["task"] != "translate"] + [
        {"task": "translate", "path": str(too_long), "select": "all", "weight": 1.0}]
    assert set(validation_sets(split, tokenizer, config, warnings.append)) == {"sentiment"}
    assert len(warnings) == 1 and "translate validation data (long.tsv)" in warnings[0]
    split["validation"] = split["validation"][-1:]
    with pytest.raises(UserError, match="translate validation data"):
        validation_sets(split, tokenizer, config, warnings.append)


def test_task_loss_selects_by_the_tasks_mean_loss(tuned, tmp_path):
    import shutil

    import tensorflow as tf

    from gpt_tf.training import train

    run = str(tmp_path / "task_loss")
    shutil.copytree(tuned["run"], run)
    train(run, overrides=["train.best_metric=task_loss", "train.steps=12",
                          "train.eval_every=2"])
    rows = [json.loads(line) for line in open(os.path.join(run, "history.jsonl"))]
    evals = [r for r in rows if r["step"] > 8 and "validation_loss" in r]
    assert evals, rows
    # the score is the mean of the two tasks' losses, not the total loss
    task_means = {r["step"]: (r["validation_translate_loss"]
                              + r["validation_sentiment_loss"]) / 2 for r in evals}
    best = tf.train.latest_checkpoint(os.path.join(run, "best"))
    step = int(best.rsplit("-", 1)[1])
    assert step == min(task_means, key=task_means.get)
    stored = tf.train.load_checkpoint(best).get_tensor("best_loss/.ATTRIBUTES/VARIABLE_VALUE")
    assert stored == pytest.approx(task_means[step], rel=1e-5)
    assert all(abs(task_means[s] - r["validation_loss"]) > 1e-6 for s, r in zip(task_means, evals))


def test_changing_best_metric_on_resume_restarts_the_choice(tuned, tmp_path):
    import shutil

    import tensorflow as tf

    from gpt_tf.training import load_run_config, train

    run = str(tmp_path / "copy")
    shutil.copytree(tuned["run"], run)
    events = []
    train(run, overrides=["train.best_metric=loss"],
          on_event=lambda kind, info: events.append((kind, info)))
    warnings = [info["message"] for kind, info in events if kind == "warning"]
    assert len(warnings) == 1 and "best_metric sentiment_accuracy -> loss" in warnings[0]
    assert load_run_config(run).train.best_metric == "loss"
    # the saved state restarts the choice too, so a plain resume cannot mix the metrics
    latest = tf.train.load_checkpoint(tf.train.latest_checkpoint(os.path.join(run, "checkpoints")))
    assert latest.get_tensor("best_loss/.ATTRIBUTES/VARIABLE_VALUE") == float("inf")
    events.clear()
    train(run, on_event=lambda kind, info: events.append((kind, info)))
    assert not [info for kind, info in events if kind == "warning"]


def test_eval_at_start_scores_the_starting_weights_and_can_keep_them(trained_run, tmp_path):
    from gpt_tf.tasks.finetune import prepare_finetune_run
    from gpt_tf.training import load_model, train

    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("".join(f"light {i}\tlumière {i}\n" for i in range(40)), encoding="utf-8")
    run = str(tmp_path / "run")
    # a learning rate that wrecks the weights: no later evaluation beats step 0
    prepare_finetune_run(run, trained_run["run_dir"], {"translate": str(pairs)},
                         ["train.steps=4", "train.eval_every=2", "train.checkpoint_every=4",
                          "train.warmup_steps=0", "train.xla=false", "train.learning_rate=5.0",
                          "train.min_learning_rate=5.0", "train.clip_norm=0",
                          "train.eval_at_start=true", "train.restore_best_weights=true"],
                         holdout_fraction=0.2)
    events = []
    train(run, on_event=lambda kind, info: events.append((kind, info)))
    rows = [json.loads(line) for line in open(os.path.join(run, "history.jsonl"))]
    evals = [r for r in rows if "validation_loss" in r]
    assert [r["step"] for r in evals] == [0, 2, 4]
    assert evals[0]["validation_loss"] < min(r["validation_loss"] for r in evals[1:])
    assert ("restore_best", {"step": 0, "metric": "loss"}) in events
    base, _, _ = load_model(trained_run["run_dir"])
    tuned_model, _, _ = load_model(run)
    for before, after in zip(base.get_weights(), tuned_model.get_weights()):
        np.testing.assert_array_equal(before, after)
    assert not [info for kind, info in events if kind == "warning"]
    # with patience 1 the start is the score to beat, so the run stops at its first
    # evaluation that does not beat it; it says so before the first step
    prepare_finetune_run(str(tmp_path / "impatient"), trained_run["run_dir"],
                         {"translate": str(pairs)},
                         ["train.steps=4", "train.eval_every=2", "train.warmup_steps=0",
                          "train.xla=false", "train.learning_rate=5.0",
                          "train.min_learning_rate=5.0", "train.clip_norm=0",
                          "train.eval_at_start=true", "train.early_stopping_patience=1"],
                         holdout_fraction=0.2)
    events = []
    result = train(str(tmp_path / "impatient"),
                   on_event=lambda kind, info: events.append((kind, info)))
    warnings = [info["message"] for kind, info in events if kind == "warning"]
    assert len(warnings) == 1 and "stops at step 2 of 4" in warnings[0]
    assert result.status == "early_stopped" and result.step == 2


@pytest.fixture(scope="module")
def exports(tuned):
    from gpt_tf.export.saved_model import export_run
    from gpt_tf.export.tflite import export_tflite_run

    base = tuned["root"] / "exports"
    saved = export_run(tuned["run"], "tiny", str(base / "saved_models"), max_new_tokens_limit=16,
                       jit_compile=False, warmup=False)
    for quantize in ("none", "int8"):
        export_tflite_run(tuned["run"], f"tiny-{quantize}", str(base / "tflite"),
                          quantize=quantize)
    return {"base": str(base), "savedmodel": saved.path,
            "tflite-none": str(base / "tflite" / "tiny-none"),
            "tflite-int8": str(base / "tflite" / "tiny-int8")}


@pytest.fixture(scope="module")
def server(exports):
    from gpt_tf.serving.models import ModelManager, ModelSpec
    from gpt_tf.serving.server import ModelServer

    manager = ModelManager([ModelSpec("tiny", os.path.join(exports["base"], "saved_models",
                                                           "tiny"))], warmup=False)
    manager.poll_once()
    server = ModelServer(manager, port=0).start()
    yield server
    server.shutdown()


@pytest.fixture(scope="module")
def clients(tuned, exports, server):
    opened = {"keras": open_client(tuned["run"], jit_compile=False),
              "savedmodel": open_client(os.path.dirname(exports["savedmodel"])),
              "rest": open_client(f"{server.url}/v1/models/tiny"),
              "tflite-none": open_client(exports["tflite-none"]),
              "tflite-int8": open_client(exports["tflite-int8"])}
    yield opened
    for client in opened.values():
        client.close()


def test_each_target_opens_its_backend(clients):
    assert {name: c.backend for name, c in clients.items()} == {
        "keras": "keras", "savedmodel": "savedmodel", "rest": "rest",
        "tflite-none": "tflite-none", "tflite-int8": "tflite-int8"}
    for client in clients.values():
        assert client.sequence_length == clients["keras"].sequence_length
        assert client.tokenize(["light 3"]) == clients["keras"].tokenize(["light 3"])


def test_every_backend_knows_what_the_model_was_tuned_for(clients):
    for name, client in clients.items():
        labels = client.task_card["tasks"]["sentiment"]["labels"]
        assert labels == ["negative", "positive"], name


@pytest.mark.parametrize("backend", BACKENDS)
def test_greedy_generation_matches_keras(clients, backend):
    expected = [c.text for c in clients["keras"].generate(PROMPTS, max_new_tokens=8)]
    got = clients[backend].generate(PROMPTS, max_new_tokens=8)
    assert [c.text for c in got] == expected
    pieces = []
    streamed = clients[backend].generate(PROMPTS[1:], max_new_tokens=8,
                                         stream=lambda row, text: pieces.append(text))
    assert "".join(pieces) == streamed[0].text == expected[1]


@pytest.mark.parametrize("backend", BACKENDS)
def test_scores_match_keras(clients, backend):
    prompt = "<|text|>good 3<|label|>"
    expected = clients["keras"].score(prompt, ["positive", "negative"])
    got = clients[backend].score(prompt, ["positive", "negative"])
    assert got == pytest.approx(expected, abs=2e-3)
    chunk = "And God said, Let there be light"
    assert clients[backend].score("", [chunk]) == pytest.approx(
        clients["keras"].score("", [chunk]), abs=2e-3)


@pytest.mark.parametrize("backend", BACKENDS + ["tflite-int8"])
def test_the_tasks_agree_across_backends(clients, backend):
    keras, other = clients["keras"], clients[backend]
    texts = ["light 7", "light 1 " * 12]
    got = translate(other, texts)
    assert all(isinstance(t, str) for t in got)
    sentiment = classify(other, ["good 4", "bad 9"])
    questions = [("The man was Elimelech.", "Who?")]
    answers = answer_questions(other, questions, max_answer_tokens=4)
    assert set(answers[0]) >= {"answer", "start", "end", "score", "no_answer"}
    if backend == "tflite-int8":
        return  # quantised: it runs; the report measures what int8 costs
    assert got == translate(keras, texts)
    for mine, reference in zip(sentiment, classify(keras, ["good 4", "bad 9"])):
        assert mine["label"] == reference["label"]
        for label, p in reference["probabilities"].items():
            assert mine["probabilities"][label] == pytest.approx(p, abs=1e-3)
    reference = answer_questions(keras, questions, max_answer_tokens=4)[0]
    assert (answers[0]["answer"], answers[0]["start"]) == (reference["answer"], reference["start"])


def test_rest_requests_stay_within_the_server_batch_limit(clients):
    words = [f"light {i}" for i in range(150)]  # gpt-tf serve takes 64 rows per request
    assert clients["rest"].tokenize(words) == clients["keras"].tokenize(words)
    long_context = "The man was Elimelech. " + "And the light shone. " * 40
    rest = answer_questions(clients["rest"], [(long_context, "Who?")], max_answer_tokens=4)
    keras = answer_questions(clients["keras"], [(long_context, "Who?")], max_answer_tokens=4)
    assert rest[0]["windows"] == keras[0]["windows"] > 1
    assert rest[0]["answer"] == keras[0]["answer"]


def test_rest_errors_are_clear(server, clients):
    with pytest.raises(UserError, match="404"):
        open_client(f"{server.url}/v1/models/nothing-here")
    with pytest.raises(UserError, match="max_new_tokens"):
        clients["rest"].generate(["x"], max_new_tokens=10_000)


def test_the_report_compares_the_exports_of_a_run(tuned, exports, tmp_path):
    import argparse

    from gpt_tf.evaluation.cli import add_task_arguments, run_task_evaluation

    data = tmp_path / "s.jsonl"
    data.write_text("".join(json.dumps({"text": t, "label": y}) + "\n" for t, y in
                            [("good 30", "positive"), ("bad 31", "negative"),
                             ("good 32", "positive"), ("bad 33", "negative")]), encoding="utf-8")
    args = add_task_arguments(argparse.ArgumentParser()).parse_args([
        "--task", "sentiment", "--model", tuned["run"], "--backend-compare",
        "--exports-dir", exports["base"], "--sentiment-data", str(data),
        "--sentiment-train-data", str(data), "--output", str(tmp_path / "report"), "--no-xla",
        "--no-out-of-domain"])
    assert run_task_evaluation(args) == 0
    report = json.load(open(tmp_path / "report" / "report.json"))
    results = report["tasks"]["sentiment"]["results"]
    assert set(results) == {"keras", "savedmodel", "tflite-none", "tflite-int8"}
    assert results["savedmodel"]["accuracy"] == results["keras"]["accuracy"]
    markdown = open(tmp_path / "report" / "report.md").read()
    assert "| accuracy | majority class |" in markdown and "tflite-int8" in markdown
