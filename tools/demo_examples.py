"""Writes apps/demo_examples.json: the demo's inputs, chosen mechanically from held-out data.

    python tools/demo_examples.py      # needs the sets prepared (make models prepares them)

Nothing is picked by hand: each example is the first one of its test split (in file order)
that passes the stated filter, so `make demo` shows typical held-out inputs, not flattering
ones. The file is committed so the demo runs on a fresh machine without the data.
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from gpt_tf import datasets  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "apps",
                   "demo_examples.json")


def _jsonl(name):
    with open(datasets.split_paths(name)["test"], encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def _first(rows, keep):
    return next(row for row in rows if keep(row))


def _prose(text):
    return 50 <= len(text) <= 110 and len(text.split()) >= 8 and not any(
        c in text for c in "%{$<")


def _first_question(name):
    data = datasets.load_squad(datasets.split_paths(name)["test"])
    question = data[0]
    return {"from": f"{name} (test), first question", "context": question.context,
            "question": question.question, "reference": question.answers[0].text}


def main():
    bible = _first(_jsonl("mt-en-fr"), lambda r: 20 <= len(r["source"]) <= 70)
    software = _first(_jsonl("mt-en-fr-software"), lambda r: _prose(r["source"]))
    reviews = _jsonl("sentiment-en-reviews")
    products = _jsonl("sentiment-en-products")
    examples = {
        "translate": [
            {"from": "mt-en-fr (test), first pair of 20-70 characters", "text": bible["source"],
             "reference": bible["target"]},
            {"from": f"mt-en-fr-software (test: {software['book']}), first message of 50-110 "
                     "characters and 8+ words without placeholders", "text": software["source"],
             "reference": software["target"]},
        ],
        "qa": [_first_question("qa-en"), _first_question("qa-en-wiki")],
        "sentiment": [
            {"from": "sentiment-en-reviews, first positive whole review",
             "text": _first(reviews, lambda r: r["label"] == "positive")["text"],
             "reference": "positive"},
            {"from": "sentiment-en-reviews, first negative whole review",
             "text": _first(reviews, lambda r: r["label"] == "negative")["text"],
             "reference": "negative"},
            {"from": "sentiment-en-products, first positive snippet",
             "text": _first(products, lambda r: r["label"] == "positive")["text"],
             "reference": "positive"},
            {"from": "sentiment-en-products, first negative snippet",
             "text": _first(products, lambda r: r["label"] == "negative")["text"],
             "reference": "negative"},
        ],
    }
    with open(OUT, "w", encoding="utf-8") as handle:
        json.dump(examples, handle, indent=2, ensure_ascii=False)
        handle.write("\n")
    print(OUT)
    return 0


if __name__ == "__main__":
    sys.exit(main())
