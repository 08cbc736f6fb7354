"""tools/model_card.py on the shipped model and its reports."""

import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))

import model_card  # noqa: E402


def _report(path):
    with open(os.path.join(ROOT, path)) as handle:
        return {**json.load(handle), "path": path}


def _sections(report):
    yield from report["tasks"].values()
    for entries in (report.get("out_of_domain") or {}).values():
        yield from entries


def test_the_card_lists_every_comparison_of_every_report():
    paths = ["reports/evaluation/report.json"]
    reports = [_report(p) for p in paths]
    text = model_card.card(os.path.join(ROOT, "models", "multitask"), reports)
    backends = (" | keras | ", " | savedmodel | ", " | tflite-int8 | ")
    rows = [line for line in text.splitlines()
            if line.startswith("| ") and any(b in line for b in backends)]
    comparisons = [c for r in reports for s in _sections(r) for c in s["comparisons"]]
    assert len(rows) == len(comparisons)
    # A metric that misses its baseline is marked and named in the summary line.
    missed = [c for c in comparisons if not c["beats_baseline"]]
    assert text.count("| **no**") == len(missed)
    # A margin whose 95% bootstrap interval reaches 0 is marked as noise.
    noisy = [c for c in comparisons if "ci95" in c and c["ci95"][0] <= 0 <= c["ci95"][1]]
    assert text.count(", within noise |") == len(noisy)
    verdict = "no" if missed else "yes"
    assert f"Every metric beats its baseline: {verdict}" in text
    assert "5.32M parameters" in text and "## Training" not in text


def test_a_resume_that_changed_the_schedule_is_in_the_training_row(tmp_path):
    train = {"steps": 2700, "batch_size": 32, "learning_rate": 1e-3, "min_learning_rate": 1e-4,
             "warmup_steps": 150, "mixed_precision": "bfloat16"}
    (tmp_path / "config.json").write_text(json.dumps({"train": train}))
    (tmp_path / "history.jsonl").write_text(
        json.dumps({"step": 2700, "validation_loss": 4.29}) + "\n")
    row = model_card._gpt_tf_stage_line("pretraining", str(tmp_path))
    assert "| pretraining | 2700 | 32 x 256 (22M tokens) |" in row
    assert "resumed" not in row and "best validation loss 4.2900 at step 2700" in row
    (tmp_path / "config_changes.jsonl").write_text(
        json.dumps({"step": 2307, "train": {"steps": [3000, 2700]}}) + "\n"
        + json.dumps({"step": 2500, "train": {"learning_rate": [1e-3, 5e-4],
                                              "mixed_precision": ["bfloat16", "none"]}}) + "\n")
    row = model_card._gpt_tf_stage_line("pretraining", str(tmp_path))
    assert ("bfloat16; resumed at step 2307 with steps 3000 -> 2700; resumed at step 2500 "
            "with learning_rate 0.001 -> 0.0005, mixed_precision bfloat16 -> none |") in row


def test_the_training_row_reports_the_runs_own_best_metric(tmp_path):
    train = {"steps": 2500, "batch_size": 16, "learning_rate": 3e-4, "min_learning_rate": 3e-5,
             "warmup_steps": 50, "mixed_precision": "bfloat16", "best_metric": "task_loss"}
    (tmp_path / "config.json").write_text(json.dumps({"train": train}))
    rows = [{"step": 1000, "validation_loss": 3.646, "validation_translate_loss": 3.534,
             "validation_qa_loss": 2.665, "validation_sentiment_loss": 0.150},
            {"step": 2500, "validation_loss": 3.647, "validation_translate_loss": 3.402,
             "validation_qa_loss": 2.164, "validation_sentiment_loss": 0.138}]
    (tmp_path / "history.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    row = model_card._gpt_tf_stage_line("fine-tuning", str(tmp_path))
    assert "best task_loss 1.9013 at step 2500 (validation loss 3.6470)" in row
    train["best_metric"] = "loss"
    (tmp_path / "config.json").write_text(json.dumps({"train": train}))
    row = model_card._gpt_tf_stage_line("fine-tuning", str(tmp_path))
    assert "best validation loss 3.6460 at step 1000" in row
    # without train.restore_best_weights the weights are the last step's, and the row says so
    assert row.endswith("at step 1000; the weights are the last step's (2500) |")
    train["restore_best_weights"] = True
    (tmp_path / "config.json").write_text(json.dumps({"train": train}))
    row = model_card._gpt_tf_stage_line("fine-tuning", str(tmp_path))
    assert "best validation loss 3.6460 at step 1000 |" in row and "last step" not in row


def test_a_card_with_gpu_training_names_the_cpu_rounds_starting_point():
    """The shipped model: GPU training, then a CPU fine-tuning whose init_from.json says
    what it started from; the card keeps that chain."""
    run = os.path.join(ROOT, "models", "multitask")
    with open(os.path.join(run, "training_history.json"), encoding="utf-8") as handle:
        training = json.load(handle)
    with open(os.path.join(run, "init_from.json"), encoding="utf-8") as handle:
        base_model = json.load(handle)["base_model"]
    text = model_card.card(run, [], training=training)
    assert f"its starting point: {base_model}):" in text
    assert "| adaptation fine-tuning (CPU) |" in text
