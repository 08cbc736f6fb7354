"""Leak checks on a prepared data set: no text, context, work or book in two splits.

`find_leaks` reads the split files back from disk (so it checks what was
written, not what the builder meant to write) and returns a list of problems;
prepare refuses to finish a set that has any, and the tests call it too.
"""

import collections
import json
from pathlib import Path

from gpt_tf.datasets.splits import dedup_key
from gpt_tf.task_table import LANGUAGE_MODELING, QUESTION_ANSWERING, SENTIMENT_DATA, TRANSLATION


def shared_keys(values_by_split):
    """Returns {key: sorted splits} for every key present in more than one split.

    Args:
        values_by_split: dict split -> iterable of hashable keys.
    """
    where = collections.defaultdict(set)
    for split, values in values_by_split.items():
        for value in values:
            where[value].add(split)
    return {value: sorted(splits) for value, splits in where.items() if len(splits) > 1}


def _jsonl(path):
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _problem(what, shared):
    sample = next(iter(shared))
    return f"{len(shared)} {what} occur in several splits, e.g. {str(sample)[:80]!r} in {shared[sample]}"


def find_leaks(folder, task, files):
    """Checks a prepared folder for overlap between splits.

    Args:
        folder: the prepared data set folder.
        task: the data set's task (see `registry`).
        files: the card's "files" dict, split -> file or folder name.

    Returns:
        List of problems (empty when the splits are clean) and list of the checks run.
    """
    folder = Path(folder)
    checks, problems = [], []

    def check(what, values_by_split):
        checks.append(what)
        shared = shared_keys(values_by_split)
        if shared:
            problems.append(_problem(what, shared))

    if task == LANGUAGE_MODELING:
        texts = {
            s: [
                dedup_key(p.read_text(encoding="utf-8")) for p in sorted((folder / f).glob("*.txt"))
            ]
            for s, f in files.items()
        }
        names = {s: [p.stem for p in (folder / f).glob("*.txt")] for s, f in files.items()}
        check("document texts", texts)
        check("document names", names)
    elif task == TRANSLATION:
        rows = {s: _jsonl(folder / f) for s, f in files.items()}
        check("source texts", {s: [dedup_key(r["source"]) for r in rs] for s, rs in rows.items()})
        check("target texts", {s: [dedup_key(r["target"]) for r in rs] for s, rs in rows.items()})
        check("books", {s: {r["book"] for r in rs} for s, rs in rows.items()})
    elif task == SENTIMENT_DATA:
        rows = {s: _jsonl(folder / f) for s, f in files.items()}
        check("texts", {s: [dedup_key(r["text"]) for r in rs] for s, rs in rows.items()})
    elif task == QUESTION_ANSWERING:
        data = {
            s: json.loads((folder / f).read_text(encoding="utf-8"))["data"]
            for s, f in files.items()
        }
        check(
            "contexts",
            {
                s: [dedup_key(p["context"]) for a in d for p in a["paragraphs"]]
                for s, d in data.items()
            },
        )
        check("works (titles)", {s: {a["title"] for a in d} for s, d in data.items()})
    return problems, checks
