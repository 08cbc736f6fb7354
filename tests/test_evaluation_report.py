"""The evaluation report on a scripted client (no model), and target discovery."""

import argparse
import json
import os
import re

import numpy as np
import pytest

from gpt_tf.clients.base import Client, Completion
from gpt_tf.errors import UserError
from gpt_tf.evaluation import cli as eval_cli
from gpt_tf.evaluation import report as report_module
from gpt_tf.evaluation import significance
from gpt_tf.evaluation.report import Target, evaluate_tasks, render_markdown, write_report

PAIRS = [("the light shines", "la lumière brille"), ("the night falls", "la nuit tombe"),
         ("god saw the light", "dieu vit la lumière"),
         ("delete %s files", "supprimer %s fichiers")]
# The sliding window picks the mid-sentence name, wrong in the first question.
QA = [("Frodo kept the sword in the hall. Later the sword was given to Aragorn.",
       "Who kept the sword?", "Frodo"),
      ("Sam cooked the rabbit. The ring went to the mountain with Frodo.",
       "Who went to the mountain with the ring?", "Frodo")]
SENTIMENT = [("a gripping great film", "positive"), ("a dull awful film", "negative"),
             ("great acting", "positive"), ("awful plot", "negative")]


class ScriptedClient(Client):
    """Answers from the gold data (`good=True`) or copies its input (`good=False`)."""

    backend = "scripted"
    vocab_size = 512

    def __init__(self, good=True, fail=False):
        super().__init__("scripted", 128, 32, None)
        self.good, self.fail = good, fail

    def _tokenize(self, texts):
        return [[hash(w) % 500 + 10 for w in re.findall(r"\S+|\s+", t)] for t in texts]

    def _generate(self, prompts, max_new_tokens, *args):
        if self.fail:
            raise UserError("scripted failure")
        out = []
        for prompt in prompts:
            text = ""
            if prompt.startswith("<|source|>"):
                source = prompt[len("<|source|>"):-len("<|target|>")]
                text = dict(PAIRS)[source] if self.good else source
            elif prompt.startswith("<|context|>"):
                question = prompt.split("<|question|>")[1][:-len("<|answer|>")]
                text = {q: a for _, q, a in QA}[question] if self.good else "nobody"
            out.append(Completion(text, len(text.split()), "stop_token"))
        return out

    def _score(self, prompt, continuations):
        if prompt.startswith("<|text|>"):
            gold = dict(SENTIMENT).get(prompt[len("<|text|>"):-len("<|label|>")], "negative")
            target = gold if self.good else "negative"
            return [0.0 if c == target else -5.0 for c in continuations]
        return [-1.0 * len(self._tokenize([c])[0]) for c in continuations]


@pytest.fixture()
def data_files(tmp_path):
    def jsonl(name, rows):
        path = tmp_path / name
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        return str(path)

    squad = {"version": "1.1", "data": [{"title": "t", "paragraphs": [
        {"context": c, "qas": [{"id": str(i), "question": q,
                                "answers": [{"text": a, "answer_start": c.index(a)}]}]}
        for i, (c, q, a) in enumerate(QA)]}]}
    (tmp_path / "qa.json").write_text(json.dumps(squad), encoding="utf-8")
    (tmp_path / "held.txt").write_text("the light shines on the night\n" * 20, encoding="utf-8")
    (tmp_path / "train.txt").write_text("god saw the light and the night\n" * 40,
                                        encoding="utf-8")
    return {
        "translate": jsonl("pairs.jsonl", [{"source": s, "target": t} for s, t in PAIRS]),
        "qa": str(tmp_path / "qa.json"),
        "sentiment": jsonl("s.jsonl", [{"text": t, "label": y} for t, y in SENTIMENT]),
        # Baselines learn from words the test texts never use: they guess.
        "sentiment_train": jsonl("s_train.jsonl", [{"text": t, "label": y} for t, y in [
            ("lovely day", "positive"), ("lovely song", "positive"), ("lovely", "positive"),
            ("horrid day", "negative"), ("horrid", "negative")] * 2]),
        "lm": str(tmp_path / "held.txt"),
        "lm_train": str(tmp_path / "train.txt"),
    }


def test_a_model_that_knows_the_answers_beats_every_baseline(data_files, tmp_path):
    report = evaluate_tasks([Target("scripted", ScriptedClient())], data=data_files, limits={})
    assert set(report["tasks"]) == {"lm", "translate", "qa", "sentiment"}
    translate = report["tasks"]["translate"]
    assert translate["results"]["scripted"]["bleu"] == pytest.approx(100.0)
    assert translate["results"]["scripted"]["placeholder_sources"] == 1
    assert translate["results"]["scripted"]["placeholder_mismatches"] == 0
    assert "copy source" in translate["baselines"]
    assert "tok:13a" in translate["signatures"]["bleu"]
    assert report["tasks"]["qa"]["results"]["scripted"]["exact_match"] == 100.0
    sentiment = report["tasks"]["sentiment"]
    assert set(sentiment["baselines"]) == {"majority class", "bag-of-words logistic regression"}
    assert sentiment["results"]["scripted"]["confusion_matrix"]["matrix"] == [[2, 0], [0, 2]]
    lm = report["tasks"]["lm"]
    assert lm["results"]["scripted"]["perplexity"] == pytest.approx(2.718, abs=1e-3)
    assert "unigram (add-one)" in lm["baselines"]
    # one row per (metric, baseline, backend); sentiment has two baselines
    assert len(sentiment["comparisons"]) == 2 * 2
    assert report["summary"]["all_beat_baselines"], report["summary"]["not_beaten"]
    for entry in report["tasks"].values():  # every margin has its bootstrap interval
        for row in entry["comparisons"]:
            sign = 1 if row["higher_is_better"] else -1
            assert row["improvement"] == pytest.approx(
                sign * (row["value"] - row["baseline_value"]))
            assert row["ci95"][0] <= row["improvement"] <= row["ci95"][1]
            assert row["verdict"] == significance.verdict(row["ci95"])
    json_path, md_path = write_report(report, str(tmp_path / "out"))
    written = open(json_path).read()
    assert json.loads(written)["summary"]["all_beat_baselines"]
    assert "_statistics" not in written  # per-example statistics are not kept
    markdown = open(md_path).read()
    assert "| BLEU | copy source |" in markdown and "(beats baseline: yes)" in markdown
    assert "Every metric beats its baseline: yes" in markdown
    assert "Confusion matrix, scripted" in markdown
    assert "differ from the source's: scripted 0 of 1." in markdown
    assert "paired bootstrap over the examples (1000 resamples)" in markdown
    assert all(entry["versus_first"] == [] for entry in report["tasks"].values())
    assert "Against the first model" not in markdown  # one model: nothing to compare


def test_the_qa_floor_reaches_every_qa_set_and_the_report_says_so(data_files, tmp_path):
    # The scripted answers score -1 nat per token: a floor above that turns all down.
    def qa_report(floor):
        return evaluate_tasks([Target("scripted", ScriptedClient())], tasks=["qa"],
                              data={**data_files, "qa_min_answer_logprob": floor}, limits={},
                              out_of_domain={"qa": [data_files["qa"]]})
    kept, strict = qa_report(-1.0), qa_report(-0.5)
    for report, exact, no_answer in ((kept, 100.0, 0.0), (strict, 0.0, 1.0)):
        for entry in [report["tasks"]["qa"]] + report["out_of_domain"]["qa"]:
            assert entry["results"]["scripted"]["exact_match"] == exact
            assert entry["results"]["scripted"]["no_answer_rate"] == no_answer
    markdown = render_markdown(strict)
    assert markdown.count("were turned down (no answer; `--qa-min-answer-logprob`)") == 2
    assert "below -0.5 nats" in markdown


def test_a_weak_model_is_reported_as_not_beating_its_baselines(data_files):
    targets = [Target("good", ScriptedClient()), Target("copy", ScriptedClient(good=False)),
               Target("broken", ScriptedClient(fail=True))]
    report = evaluate_tasks(targets, tasks=("translate", "qa"), data=data_files, limits={})
    rows = {(r["backend"], r["metric"]): r["beats_baseline"]
            for r in report["tasks"]["translate"]["comparisons"]}
    assert rows[("good", "bleu")] and not rows[("copy", "bleu")] and not rows[("broken", "bleu")]
    assert report["tasks"]["translate"]["results"]["broken"]["error"] == "scripted failure"
    assert not report["summary"]["all_beat_baselines"]
    assert "translate: copy bleu vs copy source" in report["summary"]["not_beaten"]
    markdown = render_markdown(report)
    assert "(beats baseline: no)" in markdown and "| error |" in markdown
    assert "broken: error: scripted failure" in markdown
    # later models against the first, paired on the same examples (a failed one is left out)
    versus = report["tasks"]["translate"]["versus_first"]
    assert {(r["backend"], r["reference"]) for r in versus} == {("copy", "good")}
    bleu = next(r for r in versus if r["metric"] == "bleu")
    assert bleu["improvement"] == pytest.approx(bleu["value"] - bleu["reference_value"])
    assert bleu["improvement"] < 0
    assert bleu["ci95"][0] <= bleu["improvement"] <= bleu["ci95"][1]
    assert bleu["verdict"] == significance.verdict(bleu["ci95"])
    assert "Against the first model, good" in markdown and "on the same examples" in markdown


def _lm_result(log_likelihoods, tokens, byte_counts):
    stats = significance.lm_statistics(log_likelihoods, tokens, byte_counts)
    total_tokens, total_bytes = sum(tokens), sum(byte_counts)
    return {"perplexity": float(np.exp(-sum(log_likelihoods) / total_tokens)),
            "bits_per_byte": -sum(log_likelihoods) / total_bytes / np.log(2),
            "tokens": total_tokens, "bytes": total_bytes, report_module.STATS: stats}


def test_versus_first_skips_a_failed_first_model_and_perplexity_across_tokenizers():
    chunks = 40
    first = _lm_result([-100.0] * chunks, [50] * chunks, [200] * chunks)
    same_tokens = _lm_result([-90.0] * chunks, [50] * chunks, [200] * chunks)
    other_tokens = _lm_result([-90.0] * chunks, [40] * chunks, [200] * chunks)
    entry = {"results": {"a": first, "b": same_tokens, "c": other_tokens}}
    rows = report_module._versus_first(entry, "lm")
    assert {(r["backend"], r["metric"]) for r in rows} == {
        ("b", "perplexity"), ("b", "bits_per_byte"), ("c", "bits_per_byte")}
    assert all(r["verdict"] == "better" and r["reference"] == "a" for r in rows)
    failed = {"results": {"a": {"error": "scripted failure"}, "b": same_tokens, "c": first}}
    assert report_module._versus_first(failed, "lm") == []  # no silent stand-in for "a"


def test_unknown_task_or_missing_model_is_a_user_error(data_files):
    with pytest.raises(UserError, match="unknown task"):
        evaluate_tasks([Target("x", ScriptedClient())], tasks=("poetry",), data=data_files)
    with pytest.raises(UserError, match="no model"):
        evaluate_tasks({"qa": []}, tasks=("qa",), data=data_files)


def _parser():
    return eval_cli.add_task_arguments(argparse.ArgumentParser())


def test_models_can_be_given_per_task_and_exports_are_discovered(tmp_path):
    run = tmp_path / "runs" / "tasks"
    run.mkdir(parents=True)
    (run / "config.json").write_text("{}")
    version = tmp_path / "saved_models" / "tasks" / "3"
    (version / "assets.extra").mkdir(parents=True)
    (version / "saved_model.pb").write_bytes(b"")
    (version / "assets.extra" / "gpt_tf.json").write_text(
        json.dumps({"source": {"run_dir": str(run)}}))
    other = tmp_path / "saved_models" / "other" / "1"
    (other / "assets.extra").mkdir(parents=True)
    (other / "saved_model.pb").write_bytes(b"")
    (other / "assets.extra" / "gpt_tf.json").write_text(
        json.dumps({"source": {"run_dir": "/elsewhere"}}))
    lite = tmp_path / "tflite" / "tasks-int8"
    lite.mkdir(parents=True)
    (lite / "model.tflite").write_bytes(b"")
    (lite / "meta.json").write_text(json.dumps({"quantization": "int8",
                                                "source": {"run_dir": str(run)}}))
    args = _parser().parse_args(["--task", "all", "--model", str(run), "--backend-compare",
                                 "--exports-dir", str(tmp_path),
                                 "--model", f"qa={lite}"])
    targets = eval_cli.build_targets(args, ["lm", "qa"])
    assert [t.label for t in targets["lm"]] == ["keras", "savedmodel", "tflite-int8"]
    assert targets["lm"][1].target == str(version)
    assert [t.label for t in targets["qa"]] == ["keras", "savedmodel", "tflite-int8"]
    args = _parser().parse_args(["--task", "qa", "--model", f"qa={lite}",
                                 "--model", f"sentiment={run}"])
    assert [t.label for t in eval_cli.build_targets(args, ["qa"])["qa"]] == ["tflite-int8"]
    other_run = tmp_path / "runs" / "candidate"
    other_run.mkdir()
    (other_run / "config.json").write_text("{}")
    args = _parser().parse_args(["--task", "qa", "--model", str(run), "--model", str(other_run)])
    assert [t.label for t in eval_cli.build_targets(args, ["qa"])["qa"]] == [
        f"keras ({run})", f"keras ({other_run})"]  # two of a kind: named by their paths
    with pytest.raises(UserError, match="name the model"):
        eval_cli.build_targets(_parser().parse_args(["--task", "qa"]), ["qa"])


def test_the_standalone_entry_point_reports_user_errors_in_one_line(capsys, tmp_path):
    status = eval_cli.main(["--task", "qa", "--model", str(tmp_path / "missing"),
                            "--output", str(tmp_path / "out")])
    assert status == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not exist" in err[0]
    assert not os.path.exists(tmp_path / "out" / "report.md")
    assert eval_cli.main(["--task", "qa", "--model", str(tmp_path / "missing"),
                          "--qa-min-answer-logprob", "2"]) == 2
    assert "--qa-min-answer-logprob is a log-probability per token, at most 0" in \
        capsys.readouterr().err


@pytest.mark.slow
def test_the_report_on_the_prepared_data_sets(trained_run, tmp_path):
    from gpt_tf import datasets

    names = ["lm-en", "mt-en-fr", "qa-en", "sentiment-en"]
    if not all(datasets.is_prepared(name) for name in names):
        pytest.skip("needs `gpt-tf data prepare lm-en mt-en-fr qa-en sentiment-en`")
    report = evaluate_tasks([Target("keras", trained_run["run_dir"])],
                            limits={"lm": 2000, "translate": 5, "qa": 5, "sentiment": 10},
                            open_options={"jit_compile": False})
    for task, entry in report["tasks"].items():
        result = entry["results"]["keras"]
        if "error" in result:  # the tiny test model's 32-token window is too short for QA
            assert task == "qa" and "too long" in result["error"]
        else:
            assert all(result[m] is not None for m in entry["metrics"])
        assert entry["baselines"]
    _, markdown = write_report(report, str(tmp_path))
    assert "## Sentiment" in open(markdown).read()


def test_a_task_without_baseline_data_is_not_counted_as_beaten(data_files):
    files = {**data_files, "sentiment_train": None}
    report = evaluate_tasks([Target("scripted", ScriptedClient())], tasks=("sentiment",),
                            data=files, limits={"sentiment": 1})
    assert report["tasks"]["sentiment"]["baselines"] == {}
    assert report["tasks"]["sentiment"]["results"]["scripted"]["accuracy"] == 1.0
    assert not report["summary"]["all_beat_baselines"]
    assert "none (no training data)" in render_markdown(report)


def test_out_of_domain_sets_get_their_own_columns_and_verdicts(data_files, tmp_path):
    # An out-of-domain sentiment set the scripted model gets wrong (it knows only SENTIMENT's
    # texts and answers "negative" for the rest) and a translation set it copies.
    ood_sentiment = tmp_path / "ood_sentiment.jsonl"
    ood_sentiment.write_text("".join(json.dumps({"text": f"lovely thing {i}", "label": "positive"})
                                     + "\n" for i in range(3)), encoding="utf-8")
    ood_translate = tmp_path / "ood_pairs.jsonl"
    ood_translate.write_text(json.dumps({"source": "the light shines",
                                         "target": "la lumière brille"}) + "\n", encoding="utf-8")
    report = evaluate_tasks(
        [Target("scripted", ScriptedClient())], tasks=("translate", "sentiment"),
        data=data_files, limits={str(ood_sentiment): 2},
        out_of_domain={"sentiment": [str(ood_sentiment)], "translate": [str(ood_translate)]})
    assert report["summary"]["all_beat_baselines"]  # in domain
    [sentiment] = report["out_of_domain"]["sentiment"]
    assert sentiment["data"] == str(ood_sentiment) and sentiment["domain"].startswith(
        "out-of-domain")
    # the learned baselines learn from the in-domain training data
    assert sentiment["baseline_data"] == data_files["sentiment_train"]
    assert sentiment["results"]["scripted"]["accuracy"] == 0.0
    assert sentiment["examples"] == 2  # its own limit
    with pytest.raises(UserError, match="neither a task nor a data set"):
        evaluate_tasks([Target("scripted", ScriptedClient())], tasks=("qa",), data=data_files,
                       limits={"poetry": 3})
    assert not report["summary"]["out_of_domain_all_beat_baselines"]
    assert any(item.startswith(f"sentiment ({ood_sentiment})")
               for item in report["summary"]["out_of_domain_not_beaten"])
    assert report["out_of_domain"]["translate"][0]["results"]["scripted"]["chrf"] > 99
    markdown = render_markdown(report)
    assert "| task | metric | backend | in domain | out of domain 1 |" in markdown
    assert not report["skipped"]
    # a model tuned on a registry set: its learned baselines learn from that set; when it is
    # not prepared they fall back to the in-domain data, and the report says so
    tuned = ScriptedClient()
    tuned.task_card = {"tasks": {"sentiment": {"data": "sentiment-en-broad"}}}
    report = evaluate_tasks(
        [Target("scripted", tuned)], tasks=("sentiment",), data=data_files,
        limits={str(ood_sentiment): 2}, cache_dir=str(tmp_path / "empty-cache"),
        out_of_domain={"sentiment": [str(ood_sentiment)]})
    assert report["out_of_domain"]["sentiment"][0]["baseline_data"] == \
        data_files["sentiment_train"]
    assert report["skipped"] == [
        f"sentiment: {ood_sentiment}'s learned baselines learn from "
        f"{data_files['sentiment_train']}, not from sentiment-en-broad, the model's own "
        "sentiment data (not prepared: run `gpt-tf data prepare sentiment-en-broad`)"]
    assert "not prepared: run `gpt-tf data prepare sentiment-en-broad`" in render_markdown(report)
    assert "Out of domain, every metric beats its baseline: no." in markdown
    assert "### Sentiment, out of domain:" in markdown
    assert "in domain)" in markdown


def test_the_cli_chooses_out_of_domain_sets(data_files):
    args = argparse.Namespace(no_out_of_domain=False, ood_data=["qa=my.json"])
    chosen = eval_cli.out_of_domain_sets(args)
    assert chosen["qa"] == ["my.json"] and chosen["sentiment"] == ["sentiment-en-reviews",
                                                                   "sentiment-en-products"]
    assert eval_cli.out_of_domain_sets(argparse.Namespace(no_out_of_domain=True,
                                                          ood_data=[])) == {}
    with pytest.raises(UserError, match="TASK=DATA"):
        eval_cli.out_of_domain_sets(argparse.Namespace(no_out_of_domain=False,
                                                       ood_data=["nonsense"]))


def test_limits_are_given_for_every_task_or_one():
    tasks = ["lm", "translate", "qa"]
    assert eval_cli.task_limits([], tasks) == {}
    assert eval_cli.task_limits(["100", "lm=5000"], tasks) == {"lm": 5000, "translate": 100,
                                                               "qa": 100}
    assert eval_cli.task_limits(["sentiment-en-reviews=100"], tasks) == {
        "sentiment-en-reviews": 100}
    for bad in ("x", "-1", "=3", "qa=many"):
        with pytest.raises(UserError, match="--limit"):
            eval_cli.task_limits([bad], tasks)
