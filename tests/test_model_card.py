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
