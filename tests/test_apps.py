"""The client interface on the Keras backend, the task logic, the app CLIs, bad input."""

import io
import json
import os
import re
import socket

import numpy as np
import pytest

from gpt_tf.clients import open_client, resolve_target
from gpt_tf.clients.base import Client, Completion
from gpt_tf.errors import UserError
from gpt_tf.tasks.qa import NO_ANSWER_SCORE, answer, answer_questions, locate
from gpt_tf.tasks.sentiment import calibrate, classify
from gpt_tf.tasks.translate import (
    collapse_repeats,
    keep_placeholders,
    label_leak,
    placeholders_differ,
    translate,
)

LONG = "And God said, Let there be light: and there was light. " * 12


@pytest.fixture(scope="module")
def client(trained_run):
    from apps._common import get_client

    # No XLA: tests check behaviour, and compiling costs more than it saves here.
    # Opened through the apps' cache, so the CLIs (`--no-xla`) reuse it.
    return get_client(trained_run["run_dir"], jit_compile=False)


# ---- choosing the backend ------------------------------------------------------------------


def test_the_target_decides_the_backend(trained_run, tmp_path):
    assert resolve_target(trained_run["run_dir"]) == ("keras", trained_run["run_dir"])
    assert resolve_target("http://localhost:8501/v1/models/x")[0] == "rest"
    version = tmp_path / "saved" / "m" / "2"
    version.mkdir(parents=True)
    (version / "saved_model.pb").write_bytes(b"")
    assert resolve_target(str(tmp_path / "saved" / "m")) == ("savedmodel", str(version))
    with pytest.raises(UserError, match="serving base directory holding the models m"):
        resolve_target(str(tmp_path / "saved"))
    lite = tmp_path / "lite"
    lite.mkdir()
    (lite / "model.tflite").write_bytes(b"")
    assert resolve_target(str(lite))[0] == "tflite"


@pytest.mark.parametrize("make,message", [
    (lambda p: str(p / "missing"), "does not exist"),
    (lambda p: (p / "empty").mkdir() or str(p / "empty"), "wrong kind"),
    (lambda p: (p / "notes.txt").write_text("x") and str(p / "notes.txt"), "wrong kind"),
    (lambda p: "ftp://host/model", "only http"),
    (lambda p: "http://localhost:8501/models/x", "not a model URL"),
])
def test_a_target_of_the_wrong_kind_is_a_clear_error(tmp_path, make, message):
    with pytest.raises(UserError, match=message):
        open_client(make(tmp_path))


def test_a_corrupt_model_file_is_a_clear_error(trained_run, tmp_path):
    import shutil

    from gpt_tf.training import load_model

    run_dir = tmp_path / "run"
    shutil.copytree(trained_run["run_dir"], run_dir,
                    ignore=shutil.ignore_patterns("checkpoints", "best", "logs"))
    (run_dir / "model.keras").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(UserError, match="model.keras' is unreadable .*checkpoint='latest'"):
        load_model(str(run_dir))


def test_a_server_that_is_not_tf_serving_is_a_clear_error():
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # a web page where the model's status should be
            found = self.path.startswith("/v1/models/page")
            self.send_response(200 if found else 404)
            self.end_headers()
            self.wfile.write(b"<!DOCTYPE html>\n<html><body>\n" + b"<p>a web page</p>\n" * 40)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}/v1/models"
        for name in ("page", "missing"):  # 200 with HTML, 404 with HTML
            with pytest.raises(UserError, match="not a TF Serving REST endpoint") as error:
                open_client(f"{base}/{name}", timeout=5)
            assert "\n" not in str(error.value) and len(str(error.value)) < 400
    finally:
        server.shutdown()
        server.server_close()


def test_an_unreachable_server_is_a_clear_error():
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(UserError, match="cannot reach the model server"):
        open_client(f"http://127.0.0.1:{port}/v1/models/tasks", timeout=5)


# ---- the Keras backend ---------------------------------------------------------------------


def test_greedy_generation_matches_the_generator_and_streams(client, trained_run):
    from gpt_tf.generation import Generator
    from gpt_tf.training import load_model

    model, tokenizer, _ = load_model(trained_run["run_dir"])
    prompts = ["And God said", "Shall I compare thee"]
    expected = Generator(model, jit_compile=False).generate(
        [[tokenizer.end_of_text_id] + tokenizer.encode(p) for p in prompts], 10,
        stop_ids=[tokenizer.end_of_text_id])
    completions = client.generate(prompts, max_new_tokens=10)
    assert [c.text for c in completions] == [tokenizer.decode(t) for t in expected.token_ids]
    assert [c.num_tokens for c in completions] == [len(t) for t in expected.token_ids]
    pieces = []
    streamed = client.generate(prompts[:1], max_new_tokens=10,
                               stream=lambda row, text: pieces.append((row, text)))
    assert "".join(t for _, t in pieces) == streamed[0].text == completions[0].text
    assert {row for row, _ in pieces} == {0}


def test_sampling_is_seeded(client):
    first = client.generate(["The Lord"], max_new_tokens=8, temperature=1.0, top_k=20, seed=3)
    again = client.generate(["The Lord"], max_new_tokens=8, temperature=1.0, top_k=20, seed=3)
    assert first[0].text == again[0].text


def test_score_is_the_log_likelihood_of_the_continuation(client, trained_run):
    import tensorflow as tf

    from gpt_tf.training import load_model

    model, tokenizer, _ = load_model(trained_run["run_dir"])
    prompt, continuation = "<|text|>light<|label|>", "positive"
    ids = [tokenizer.end_of_text_id] + tokenizer.encode(prompt) + tokenizer.encode(continuation)
    log_probs = tf.nn.log_softmax(model(np.array([ids], np.int32))[0]).numpy()
    start = 1 + len(tokenizer.encode(prompt))
    expected = sum(log_probs[p - 1, ids[p]] for p in range(start, len(ids)))
    got = client.score(prompt, [continuation, "negative"])
    assert got[0] == pytest.approx(expected, abs=1e-4)
    assert len(got) == 2 and client.score(prompt, []) == []
    assert client.score("", [""]) == [0.0]


@pytest.mark.parametrize("kwargs,message", [
    ({"max_new_tokens": 0}, "max_new_tokens"),
    ({"max_new_tokens": 10_000}, "max_new_tokens"),
    ({"temperature": -1.0}, "temperature"),
    ({"temperature": float("nan")}, "temperature"),
    ({"top_p": 0.0}, "top_p"),
    ({"seed": 2 ** 40}, "seed"),
    ({"top_k": 2 ** 31}, "top_k"),        # the SavedModel signature takes int32
    ({"top_k": None}, "top_k must be an integer"),
    ({"temperature": "hot"}, "temperature must be a number"),
    ({"repetition_penalty": None}, "repetition_penalty must be a number"),
])
def test_bad_sampling_settings_are_refused(client, kwargs, message):
    with pytest.raises(UserError, match=message):
        client.generate(["x"], **{"max_new_tokens": 4, **kwargs})


def test_a_prompt_longer_than_the_window_keeps_its_end(client):
    completion = client.generate([LONG], max_new_tokens=4)[0]
    assert completion.prompt_tokens_truncated > 0 and completion.num_tokens <= 4


def test_the_tasks_run_on_the_keras_backend(client):
    out = translate(client, ["Let there be light.", LONG])
    assert len(out) == 2 and all(isinstance(t, str) for t in out)
    results = classify(client, ["light", LONG])
    for result in results:
        assert set(result["probabilities"]) == {"negative", "positive"}
        assert sum(result["probabilities"].values()) == pytest.approx(1.0)
    assert results[0]["chunks"] == 1 and results[1]["chunks"] > 1
    found = answer(client, LONG, "Who?", max_answer_tokens=4)
    assert found["windows"] > 1
    if not found["no_answer"]:
        assert LONG[found["start"]:found["end"]] == found["answer"]


@pytest.mark.parametrize("call,message", [
    (lambda c: translate(c, ""), "empty"),
    (lambda c: translate(c, ["ok", "  "]), "empty"),
    (lambda c: translate(c, "hi", "en", "xx"), "unknown language pair"),
    (lambda c: translate(c, "hi", "de", "es"), "translates en->fr"),
    (lambda c: classify(c, [""]), "empty"),
    (lambda c: classify(c, "x", labels=["only"]), "two distinct labels"),
    (lambda c: answer(c, "", "Who?"), "context is empty"),
    (lambda c: answer(c, "text", " "), "question is empty"),
    (lambda c: answer(c, "some text", "why " * 40, max_answer_tokens=4), "too long"),
    (lambda c: c.generate([3]), "not a string"),
    # Undecodable bytes from stdin or argv arrive as lone surrogates.
    (lambda c: classify(c, "ab\udcffcd"), "not valid UTF-8"),
    (lambda c: c.generate(["ab\udcffcd"]), "not valid UTF-8"),
    (lambda c: classify(c, "x", labels=["", "good"]), "empty or blank"),
    (lambda c: answer(c, "some text", "why?", doc_stride=0), "doc_stride"),
    (lambda c: answer(c, "some text", "why?", max_answer_tokens=0), "max_answer_tokens"),
    (lambda c: answer(c, "some text", "why?", max_answer_tokens=10_000), "max_answer_tokens"),
    # Found by probing the apps: each was a traceback or a wrong answer.
    (lambda c: classify(c, "<|text|>"), r"texts\[0\] holds only task separator tokens"),
    (lambda c: translate(c, ["ok", "<|endoftext|> "]), r"texts\[1\] holds only task separator"),
    (lambda c: answer(c, "<|context|>", "Who?"), "the context holds only task separator"),
    (lambda c: answer(c, None, "Who?"), "the context is NoneType, not a string"),
    (lambda c: answer(c, "text", "wh\udcffo?"), "question 0: the question is not valid UTF-8"),
    (lambda c: answer(c, "text", "Who?", max_answer_tokens="x"), "must be an integer"),
    (lambda c: translate(c, "hi", max_new_tokens=2.7), "max_new_tokens must be an integer"),
    (lambda c: classify(c, "x", labels="positive"), "not the string 'positive'"),
    (lambda c: classify(c, "x", labels=[None, "good"]), r"labels\[0\] is NoneType"),
    (lambda c: c.generate(b"hi"), "not bytes"),
])
def test_bad_task_input_is_a_clear_error(client, call, message):
    with pytest.raises(UserError, match=message):
        call(client)


# ---- task logic on a scripted client -------------------------------------------------------


class Scripted(Client):
    """Whitespace tokens; answers and scores from tables."""

    backend = "scripted"

    def __init__(self, answers=None, scores=None, card=None, window=64):
        super().__init__("scripted", window, 32, card)
        self.answers, self.scores, self.prompts = answers or {}, scores or {}, []

    def _tokenize(self, texts):
        return [[1] * len(t.split()) for t in texts]

    def _generate(self, prompts, max_new_tokens, *args):
        self.prompts.extend(prompts)
        out = []
        for prompt in prompts:
            text = next((v for k, v in self.answers.items() if k in prompt), "")
            out.append(Completion(text, len(text.split()), "stop_token"))
        return out

    def _score(self, prompt, continuations):
        return [next((v for k, v in self.scores.items() if k in prompt + "|" + c), -1.0)
                for c in continuations]


def test_qa_answer_not_in_the_context_is_no_answer():
    result = answer(Scripted(answers={"<|answer|>": "Gandalf"}), "Frodo went home.", "Who?")
    assert result["no_answer"] and result["answer"] == "" and result["score"] == NO_ANSWER_SCORE
    assert result["generated"] == "Gandalf"


def test_qa_the_best_scoring_window_wins_and_offsets_point_into_the_context():
    context = " ".join(["filler"] * 80) + " Frodo met Sam. " + " ".join(["filler"] * 80) + \
        " Merry met Pippin."
    client = Scripted(answers={"Frodo met": "frodo", "Merry met": "Merry"},
                      scores={"|Frodo": -0.5, "|Merry": -3.0})
    result = answer(client, context, "Who met?", doc_stride=20, max_answer_tokens=4)
    assert result["windows"] > 2
    assert result["answer"] == "Frodo"  # located ignoring case, returned as in the text
    assert context[result["start"]:result["end"]] == "Frodo"
    assert result["score"] == -0.5
    assert locate("a  Big   Cat", "big cat") == (3, 12)
    assert locate("abc", "") is None


@pytest.mark.parametrize("generated, expected", [
    ("Leon", "Leonatus"),            # inside a word: widened to the whole word
    ("natus", None),                 # the end of a word is not the word ("the" in "Athens")
    ("Britain", "Briton"),           # in no window: the most similar whole words
    ("a banish rascal", "a banished rascal"),
    ("Frodo", None),                 # nothing similar: no span
    ("Lord Leonatus", "Leonatus"),
    ("Leonatusario", "Leonatus"),    # an invented near name (qa-en: "Cassandario" for "Cassio")
])
def test_locate_returns_whole_words(generated, expected):
    window = "Posthumus Leonatus, a banished rascal; the jolly Briton laughs."
    span = locate(window, generated)
    assert (window[span[0]:span[1]] if span else None) == expected


@pytest.mark.parametrize("generated, expected", [
    ("number as", None),    # the fuzzy rule without support matched "Northumberland"
    ("mber", None),         # the middle of a word, found by an exact search before
    ("hens", None),
    ("Caesar", None),
    ("the", "the"),         # a whole word of the context is a span
    ("Northumbria", "Northumberland"),  # a near name keeps its start
])
def test_an_answer_the_context_does_not_support_is_no_answer(generated, expected):
    # Measured on out-of-domain questions: Shakespeare names and short words were
    # fuzzily matched onto unrelated spans ("Athens" -> "the", "Northumberland" ->
    # "number as") and returned with no_answer false.
    window = "The Earl of Northumberland rode to Athens, and the people cheered."
    span = locate(window, generated)
    assert (window[span[0]:span[1]] if span else None) == expected
    if generated == "number as":
        old = locate(window, generated, prefix=0)  # without the support rule
        assert window[old[0]:old[1]] == "Northumberland"


def test_a_floor_on_the_log_probability_per_token_turns_unsure_answers_into_no_answer():
    context = "Frodo met Sam near the Green Dragon."
    client = Scripted(answers={"Who met": "Frodo", "Where": "the Green Dragon"},
                      scores={"|Frodo": -0.5, "|the Green Dragon": -4.5})
    items = [(context, "Who met Sam?"), (context, "Where?")]
    plain = answer_questions(client, items)
    assert [a["answer"] for a in plain] == ["Frodo", "the Green Dragon"]
    # Scripted tokens are words: -4.5 over 3 tokens is -1.5 per token.
    assert [a["logprob_per_token"] for a in plain] == [-0.5, -1.5]
    floored = answer_questions(client, items, min_answer_logprob=-1.0)
    assert floored[0] == plain[0]
    assert floored[1]["no_answer"] and floored[1]["answer"] == ""
    assert floored[1]["score"] == NO_ANSWER_SCORE and floored[1]["start"] == -1
    assert floored[1]["below_floor"] == "the Green Dragon"
    assert floored[1]["logprob_per_token"] == -1.5
    # An answer at the floor stays; no answer at all has no per-token value.
    assert not answer(client, context, "Where?", min_answer_logprob=-1.5)["no_answer"]
    missing = answer(Scripted(answers={"<|answer|>": "Gandalf"}), context, "Who?",
                     min_answer_logprob=-1.0)
    assert missing["no_answer"] and missing["logprob_per_token"] is None
    assert "below_floor" not in missing


@pytest.mark.parametrize("value, message", [
    (0.1, "at most 0"), (float("nan"), "finite number"), ("-1", "finite number"),
    (True, "finite number"),
])
def test_a_bad_answer_floor_is_a_clear_error(value, message):
    client = Scripted(answers={"Who": "Frodo"})
    with pytest.raises(UserError, match=message):
        answer(client, "Frodo went home.", "Who?", min_answer_logprob=value)


def test_a_short_word_inside_the_answer_is_no_match():
    # Found by probing the app: "at" (ratio 0.67 on 2 characters) answered "Kate".
    assert locate("Brutus stood by the river at dawn.", "Kate") is None


class Leaning(Scripted):
    """Scores each label by the words of the scored chunk: `leaning` per "good" word
    for positive, per "bad" word for negative, and `lean` added to negative."""

    def __init__(self, lean=0.0, **kwargs):
        super().__init__(card={"tasks": {"sentiment": {}}}, **kwargs)
        self.lean = lean

    def _score(self, prompt, continuations):
        words = prompt.split("<|text|>")[1].split("<|label|>")[0].split()
        good, bad = words.count("good"), words.count("bad")
        return [good - bad if c == "positive" else bad - good + self.lean
                for c in continuations]


def test_sentiment_averages_chunk_probabilities():
    client = Leaning(window=16)
    result = classify(client, ["good " * 8 + "bad " * 8, "good " * 3 + "bad " * 13])
    assert [r["chunks"] for r in result] == [2, 2]
    # 8 good + 4 bad, then 4 bad: one chunk is surely positive, the other surely negative.
    assert result[0]["probabilities"]["positive"] == pytest.approx(0.5, abs=1e-3)
    assert result[1]["label"] == "negative"


def test_calibration_offsets_undo_a_models_lean_towards_one_label():
    # Like the shipped model on product snippets: it ranks texts well but calls
    # mildly positive ones negative.
    client = Leaning(lean=2.5)
    texts = ["good", "good good", "good bad good", "bad", "bad bad", "bad good bad"] * 3
    gold = ["positive"] * 3 + ["negative"] * 3
    gold = gold * 3
    plain = classify(client, texts)
    assert [r["label"] for r in plain].count("positive") == 3  # only "good good" wins
    fitted = calibrate(client, texts, gold)
    assert fitted["offsets"]["positive"] > 0.9 > -0.9 > fitted["offsets"]["negative"]
    assert sum(fitted["offsets"].values()) == pytest.approx(0.0, abs=1e-9)
    assert fitted["accuracy"] == {"before": pytest.approx(2 / 3), "after": 1.0}
    assert fitted["log_loss"]["after"] < fitted["log_loss"]["before"]
    calibrated = classify(client, ["good bad good", "bad good bad"], offsets=fitted["offsets"])
    assert [r["label"] for r in calibrated] == ["positive", "negative"]
    assert classify(client, "good", offsets={})[0] == plain[0]  # no offsets: unchanged


def test_calibration_fits_multi_chunk_texts_at_their_optimum():
    # A mean of chunk softmaxes: the fitted offsets must leave no better offset nearby.
    client = Leaning(lean=1.0, window=16)
    texts = ["good " * 10 + "bad " * 6, "bad " * 9 + "good " * 7, "good bad " * 7,
             "good " * 5 + "bad " * 11, "good " * 12]
    gold = ["positive", "negative", "positive", "negative", "positive"]
    fitted = calibrate(client, texts, gold, l2=0.0, steps=3000)

    def loss(shift):
        rows = classify(client, texts, offsets={"positive": shift, "negative": 0.0})
        return -sum(np.log(r["probabilities"][g]) for r, g in zip(rows, gold)) / len(gold)

    best = fitted["offsets"]["positive"] - fitted["offsets"]["negative"]
    assert loss(best) == pytest.approx(fitted["log_loss"]["after"], rel=1e-6)
    assert loss(best) <= min(loss(best - 0.05), loss(best + 0.05))


@pytest.mark.parametrize("call,message", [
    (lambda c: calibrate(c, "good", ["positive"]), "a list of labelled texts"),
    (lambda c: calibrate(c, ["good", "bad"], ["positive"]), "2 texts but 1 labels"),
    (lambda c: calibrate(c, ["good", "bad"], ["positive", "neutral"]),
     "'neutral' are not among the model's labels"),
    (lambda c: calibrate(c, ["good", "bad"], ["positive", "positive"]), "at least two"),
    (lambda c: calibrate(c, ["good", ""], ["positive", "negative"]), "empty"),
    (lambda c: classify(c, "good", offsets={"great": 1.0}), "'great'"),
    (lambda c: classify(c, "good", offsets={"positive": float("nan")}), "finite number"),
    (lambda c: classify(c, "good", offsets={"positive": "1"}), "finite number"),
    (lambda c: classify(c, "good", offsets=[1.0, 0.0]), "mapping of label to number"),
])
def test_bad_calibration_input_is_refused(call, message):
    with pytest.raises(UserError, match=message):
        call(Leaning())


def test_translation_chunks_are_joined_and_the_pair_comes_from_the_card():
    card = {"tasks": {"translate": {"source_language": "en", "target_language": "de"}}}
    client = Scripted(answers={"<|target|>": "X"}, card=card, window=16)
    assert translate(client, "one two three four five six seven eight", "en", "de") == ["X X"]
    with pytest.raises(UserError, match="translates en->de"):
        translate(client, "hi")
    no_translation = Scripted(card={"tasks": {"sentiment": {"labels": ["a", "b"]}}})
    with pytest.raises(UserError, match="not fine-tuned for translation"):
        translate(no_translation, "hi")
    assert classify(no_translation, "x")[0]["label"] in ("a", "b")


def test_a_translation_never_carries_separators_or_label_words():
    # Measured on the first shipped model: "negativement" in 7 of 200 translations.
    card = {"tasks": {"translate": {"source_language": "en", "target_language": "fr"},
                      "sentiment": {"labels": ["negative", "positive"]}}}
    client = Scripted(answers={"film": "Le film est negativement mauvais . <|label|> negative",
                               "positive": "Un test positive <|text|> x"}, card=card)
    assert translate(client, "The film is bad.") == ["Le film est mauvais."]
    # a label word the source holds is a word of the translation, not a leak
    assert translate(client, "A positive test") == ["Un test positive"]
    assert label_leak("The film is bad.", "Le film negativement <|label|>", client) == [
        "<|label|>", "negativement"]
    assert label_leak("A positive test", "Un test positive", client) == []


def test_a_translation_keeps_a_greedy_loop_once():
    # Outputs of the round-10c model on software messages (validation split).
    assert collapse_repeats("Modifier le fil de la part de la part de la part de la part de") == (
        "Modifier le fil de la part")
    assert collapse_repeats("Sélectionnez « « « « « « »") == "Sélectionnez « »"
    assert collapse_repeats("a b c a b c a b c d") == "a b c d"
    # two copies, ellipses and line breaks are text, not loops: unchanged
    for text in ("très très bien", "Ajouter un marqueur...", "ligne un\n  ligne deux"):
        assert collapse_repeats(text) == text
    client = Scripted(answers={"loop": "Le fil de la part de la part de la part"},
                      card={"tasks": {"translate": {}}})
    assert translate(client, "a loop") == ["Le fil de la part"]


def test_a_translation_keeps_the_source_placeholders():
    # Outputs of the round-10c model on software messages (validation and test splits).
    assert keep_placeholders("Undefined runner name: ${name}",
                             "Une fichier a été défini : %{name}") == (
        "Une fichier a été défini : ${name}")
    assert keep_placeholders("{kibibytes} KiB", "{kibles} Ki") == "{kibibytes} Ki"
    assert keep_placeholders("${mlist.list_id} sent volume ${mlist.volume}",
                             "%{mlist} a envoyé le volume %{mlist}") == (
        "${mlist.list_id} a envoyé le volume ${mlist.volume}")
    # placeholders already right, text the source has no field for, and a
    # source without placeholders: unchanged
    for source, text in (("Name: %(name)s", "Nom : %(name)s"), ("Name %s", "Nom %s, 50% de {x}"),
                         ("Hello", "Bonjour {monde}"), ("Done: %s", "Fait à 50% de")):
        assert keep_placeholders(source, text) == text
    client = Scripted(answers={"runner": "Nom inconnu : %{name}"},
                      card={"tasks": {"translate": {}}})
    assert translate(client, "Unknown runner: ${name}") == ["Nom inconnu : ${name}"]


# ---- the app CLIs --------------------------------------------------------------------------


def test_the_app_clis_answer_and_print(trained_run, capsys):
    from apps import generate, qa, sentiment
    from apps import translate as translate_app
    from apps._common import run

    model = trained_run["run_dir"]
    assert run("apps.translate", translate_app.main,
               ["--model", model, "--no-xla", "--json", "light"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["source"] == "light"
    assert run("apps.sentiment", sentiment.main,
               ["--model", model, "--no-xla", "light", "dark"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and re.match(r"\s*(positive|negative)\s+\(", lines[0])
    assert run("apps.qa", qa.main, ["--model", model, "--no-xla", "--context", "Frodo went home.",
                                    "--question", "Who?", "--max-answer-tokens", "4",
                                    "--json"]) == 0
    assert set(json.loads(capsys.readouterr().out)[0]) >= {"answer", "start", "end", "score",
                                                           "logprob_per_token"}
    # A floor of 0 turns down every answer (each has a log-probability below 0).
    assert run("apps.qa", qa.main, ["--model", model, "--no-xla", "--context", "Frodo went home.",
                                    "--question", "Who?", "--max-answer-tokens", "4",
                                    "--min-answer-logprob", "0"]) == 0
    assert "no answer" in capsys.readouterr().out
    assert run("apps.generate", generate.main, ["--model", model, "--no-xla", "--temperature", "0",
                                                "--max-new-tokens", "5", "And God"]) == 0
    assert capsys.readouterr().out.startswith("And God")
    from apps._common import get_client

    keras_client = get_client(model, jit_compile=False)
    assert translate_app.translate("light", model=keras_client) == \
        translate(keras_client, ["light"])[0]


def test_the_sentiment_cli_calibrates_saves_and_reuses_offsets(trained_run, capsys, tmp_path):
    from apps import sentiment
    from apps._common import get_client, run

    model = ["--model", trained_run["run_dir"], "--no-xla"]
    labelled = tmp_path / "mine.jsonl"
    rows = [{"text": text, "label": label}
            for text, label in [("light", "positive"), ("dark", "negative"),
                                ("good light", "positive"), ("dark night", "negative")]]
    labelled.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    saved = tmp_path / "offsets.json"
    assert run("apps.sentiment", sentiment.main,
               model + ["--calibrate", str(labelled), "--save-offsets", str(saved)]) == 0
    captured = capsys.readouterr()
    assert captured.out == "" and "calibrated on 4 texts" in captured.err
    written = json.loads(saved.read_text())
    assert set(written["offsets"]) == {"negative", "positive"} and written["examples"] == 4
    assert sum(written["offsets"].values()) == pytest.approx(0.0, abs=1e-9)
    assert run("apps.sentiment", sentiment.main,
               model + ["--offsets", str(saved), "--json", "light", "dark"]) == 0
    with_offsets = json.loads(capsys.readouterr().out)
    expected = classify(get_client(trained_run["run_dir"], jit_compile=False),
                        ["light", "dark"], offsets=written["offsets"])
    assert [r["probabilities"] for r in with_offsets] == \
        [pytest.approx(r["probabilities"]) for r in expected]


@pytest.mark.parametrize("module,argv,message", [
    ("translate", ["  "], "empty"),
    ("translate", ["--source", "en", "--target", "zz", "hi"], "unknown language pair"),
    ("sentiment", ["--model", "MISSING", "good"], "does not exist"),
    ("qa", ["--context", "x", "--question", ""], "--question 1 is empty"),
    ("generate", ["--max-new-tokens", "0", "hi"], "max_new_tokens"),
    ("generate", ["--temperature", "nan", "hi"], "temperature"),
    ("generate", ["--seed", str(2 ** 40), "hi"], "seed"),
    ("sentiment", ["STDIN:  \n\n"], "stdin held no text"),
    ("generate", ["STDIN:"], "stdin held no prompt"),
    ("sentiment", ["STDIN:", "--labels", "good", "bad", "a film"], "put the texts before --labels"),
    ("sentiment", ["<|text|>"], "only task separator tokens"),
    ("qa", ["--context", "ok\udcff", "--question", "Who?"], "--context is not valid UTF-8"),
    ("qa", ["--context", "x", "--question", "Who?", "--question", "<|answer|>"],
     "--question 2 holds only task separator tokens"),
    ("sentiment", ["--model", "http://[::1:8501/v1/models/x", "good"], "malformed"),
    ("sentiment", ["--save-offsets", "o.json", "good"], "add --calibrate"),
    ("sentiment", ["--offsets", "MISSING", "good"], "cannot read offsets file"),
    ("sentiment", ["--offsets", "FILE:{not json", "good"], "is not JSON"),
    ("sentiment", ["--offsets", 'FILE:{"offsets": {}}', "good"], "holds no offsets"),
    ("sentiment", ["--offsets", 'FILE:{"great": 1}', "good"], "'great'"),
    ("sentiment", ["--calibrate", "FILE:", "good"], "empty"),
    ("qa", ["--context", "x", "--question", "Who?", "--min-answer-logprob", "0.5"],
     "--min-answer-logprob is a log-probability per token, at most 0"),
    ("qa", ["--context", "x", "--question", "Who?", "--min-answer-logprob", "nan"],
     "finite number"),
    ("sentiment", ["--calibrate", 'FILE:{"text": "good", "label": "positive"}', "good"],
     "at least two different labels"),
])
def test_app_user_errors_print_one_line_and_exit_2(trained_run, capsys, monkeypatch, tmp_path,
                                                   module, argv, message):
    import importlib

    from apps._common import run

    app = importlib.import_module(f"apps.{module}")
    argv = list(argv)
    if argv and argv[0].startswith("STDIN:"):
        monkeypatch.setattr("sys.stdin", io.StringIO(argv.pop(0)[len("STDIN:"):]))
    argv = [str(tmp_path / "missing") if a == "MISSING" else a for a in argv]
    for index, arg in enumerate(argv):
        if arg.startswith("FILE:"):  # a file holding the rest
            path = tmp_path / f"file{index}.jsonl"
            path.write_text(arg[len("FILE:"):], encoding="utf-8")
            argv[index] = str(path)
    if "--model" not in argv:
        argv = ["--model", trained_run["run_dir"], "--no-xla"] + argv
    assert run(f"apps.{module}", app.main, argv) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"apps.{module}: error:") and message in err[0]
    assert captured.out == ""  # nothing echoed before the error


def test_the_default_model_is_the_shipped_one(monkeypatch, tmp_path):
    from apps import _common

    for wrong in ("", " ", 3):  # not quietly the default
        with pytest.raises(UserError, match="model must be a path, a URL or a Client"):
            _common.get_client(wrong)

    monkeypatch.delenv("GPT_TF_MODEL", raising=False)
    assert _common.default_model().endswith(os.path.join("saved_models", "multitask"))
    monkeypatch.setenv("GPT_TF_MODEL", str(tmp_path))
    assert _common.default_model() == str(tmp_path)


def test_placeholder_mismatches_count_a_lost_added_or_changed_field():
    assert not placeholders_differ("Name: %(name)s in {dir}", "Nom : %(name)s dans {dir}")
    assert not placeholders_differ("{a} and {b}", "{b} et {a}")  # order may change
    assert placeholders_differ("Delete %s?", "Supprimer ?")  # lost
    assert placeholders_differ("Done", "Fait %s")  # added
    assert placeholders_differ("<b>%d</b> files", "<b>%s</b> fichiers")  # changed
    assert not placeholders_differ("Hello", "Bonjour")
