"""QA's answer-support rule, measured: the rule before round 10 against today's, in and out of domain.

    python bench/qa_support.py --model models/multitask [--limit 200] [--out FILE]

Before round 10, a generated answer was located in the context (1) exactly anywhere, even
inside a word ("the" in "Athens" answered "Athens"), else (2) ignoring case, else (3) as the
most similar run of words (difflib ratio >= 0.6 on 3+ matching characters), so an answer the
context does not hold still came back with `no_answer: false` ("Northumberland" -> "number
as"). Today a match must start at a word start and a fuzzy match must be supported by its
span (`gpt_tf.tasks.qa.supported`). One generation per question serves both rules (the
client's answers are cached), so the rows differ only by the rule. Prints a table and writes
JSON: exact match, F1, no-answer rate, and the rate of confidently wrong answers (an answer
given, F1 0) per data set and rule.
"""

import argparse
import difflib
import json
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from gpt_tf.tasks import qa  # noqa: E402

SETS = {"qa-en": "in domain: Shakespeare cloze (test works)",
        "qa-en-broad": "in domain: Shakespeare, news, docs cloze (test)",
        "qa-en-wiki": "out of domain: Wikipedia cloze"}


def legacy_locate(window, answer, prefix=None):
    """The locate rule before round 10 (kept here only to measure the change)."""
    del prefix
    answer = answer.strip()
    if not answer:
        return None
    index = window.find(answer)
    if index >= 0:
        return qa._whole_words(window, index, index + len(answer))
    pattern = r"\s+".join(re.escape(word) for word in answer.split())
    match = re.search(pattern, window, re.IGNORECASE)
    if match:
        return qa._whole_words(window, match.start(), match.end())
    words = [(m.start(), m.end()) for m in qa._WORD.finditer(window)]
    size = len(qa._WORD.findall(answer))
    best, best_ratio = None, qa.FUZZY_MATCH
    for count in range(max(1, size - 1), size + 2):
        for first in range(len(words) - count + 1):
            s, e = words[first][0], words[first + count - 1][1]
            matcher = difflib.SequenceMatcher(None, window[s:e].lower(), answer.lower())
            if matcher.ratio() > best_ratio and sum(
                    b.size for b in matcher.get_matching_blocks()) >= qa.FUZZY_MIN_CHARS:
                best, best_ratio = (s, e), matcher.ratio()
    return best


class CachedClient:
    """Forwards to a client; `generate` and `score` answers are remembered."""

    def __init__(self, client):
        self._client, self._generated, self._scores = client, {}, {}

    def __getattr__(self, name):
        return getattr(self._client, name)

    def generate(self, prompts, max_new_tokens=None, **kwargs):
        missing = [p for p in prompts if (p, max_new_tokens) not in self._generated]
        if missing:
            for prompt, completion in zip(missing, self._client.generate(
                    missing, max_new_tokens=max_new_tokens, **kwargs)):
                self._generated[(prompt, max_new_tokens)] = completion
        return [self._generated[(p, max_new_tokens)] for p in prompts]

    def score(self, prompt, continuations):
        key = (prompt, tuple(continuations))
        if key not in self._scores:
            self._scores[key] = self._client.score(prompt, continuations)
        return self._scores[key]


def measure(client, questions):
    from gpt_tf.evaluation import metrics

    answers = qa.answer_questions(client, [(q.context, q.question) for q in questions])
    truths = [[a.text for a in q.answers] for q in questions]
    per_question = metrics.squad_question_scores([a["answer"] for a in answers], truths)
    n = len(answers)
    answered = [(a, s) for a, s in zip(answers, per_question) if not a["no_answer"]]
    return {"exact_match": 100 * sum(em for em, _ in per_question) / n,
            "f1": 100 * sum(f1 for _, f1 in per_question) / n,
            "no_answer_rate": 1 - len(answered) / n,
            "confidently_wrong_rate": sum(f1 == 0 for _, (_, f1) in answered) / n,
            "exact_when_answered": (sum(em for _, (em, _) in answered) / len(answered)
                                    if answered else None),
            "questions": n}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="models/multitask")
    parser.add_argument("--limit", type=int, default=200, help="questions per set (evenly spaced)")
    parser.add_argument("--sets", default=",".join(SETS))
    parser.add_argument("--out", default=os.path.join("bench", "results", "qa_support.json"))
    args = parser.parse_args(argv)
    from gpt_tf import datasets
    from gpt_tf.clients import open_client
    from gpt_tf.evaluation.report import evenly_spaced

    client = CachedClient(open_client(args.model))
    rows = []
    try:
        for name in args.sets.split(","):
            questions = evenly_spaced(datasets.load_squad(datasets.split_paths(name)["test"]),
                                      args.limit)
            for rule, locate in (("before round 10", legacy_locate), ("supported", None)):
                started = time.perf_counter()
                original = qa.locate
                qa.locate = locate or original
                try:
                    result = measure(client, questions)
                finally:
                    qa.locate = original
                rows.append({"set": name, "domain": SETS.get(name, ""), "rule": rule, **result,
                             "seconds": round(time.perf_counter() - started, 1)})
    finally:
        client.close()
    print(f"model {args.model}, {args.limit} evenly spaced test questions per set")
    print(f"{'set':12s} {'rule':16s} {'EM':>6s} {'F1':>6s} {'no answer':>10s} "
          f"{'conf. wrong':>12s} {'EM|answered':>12s}")
    for r in rows:
        exact = "n/a" if r["exact_when_answered"] is None else f"{r['exact_when_answered']:.3f}"
        print(f"{r['set']:12s} {r['rule']:16s} {r['exact_match']:6.2f} {r['f1']:6.2f} "
              f"{r['no_answer_rate']:10.3f} {r['confidently_wrong_rate']:12.3f} {exact:>12s}")
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out + ".tmp", "w", encoding="utf-8") as handle:
        json.dump({"model": args.model, "limit": args.limit, "rows": rows}, handle, indent=2)
    os.replace(args.out + ".tmp", args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
