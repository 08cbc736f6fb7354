"""QA: would a floor on the answer's log-probability turn confident wrong answers into "no answer"?

    python bench/qa_floor.py [--model models/multitask] [--limit 200] [--keep 0.9]

By default `gpt_tf.tasks.qa` answers "no answer" only when the generated answer is not
supported by the context; an answer the model gives with a very low probability still comes
back. This measures a floor on the answer's mean log-probability per token (its
`logprob_per_token`, the value `apps.qa --min-answer-logprob` compares), chosen
on validation questions only (`qa-en-broad`'s validation split: the lowest floor that keeps
`--keep` of the validation answers that are exactly right), then applied to test sets in and
out of domain. One generation per question serves every row. Prints a table and writes
bench/results/qa_floor.json: exact match, F1, no-answer rate and the rate of confidently
wrong answers (an answer given, F1 0) without and with the floor.
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

CHOOSE_ON = ("qa-en-broad", "validation")
TEST_SETS = {"qa-en": "in domain: Shakespeare cloze (test works)",
             "qa-en-broad": "in domain: Shakespeare, news, docs cloze (test)",
             "qa-en-wiki": "out of domain: Wikipedia cloze"}


def answers_with_scores(client, questions):
    """Per question: (mean log-probability per token or None for no answer, EM, F1)."""
    from gpt_tf.evaluation import metrics
    from gpt_tf.tasks import qa

    answers = qa.answer_questions(client, [(q.context, q.question) for q in questions])
    truths = [[a.text for a in q.answers] for q in questions]
    scores = metrics.squad_question_scores([a["answer"] for a in answers], truths)
    return [(a["logprob_per_token"], em, f1) for a, (em, f1) in zip(answers, scores)]


def summarise(rows, floor=None):
    n = len(rows)
    kept = [(m, em, f1) for m, em, f1 in rows
            if m is not None and (floor is None or m >= floor)]
    return {"exact_match": 100 * sum(em for m, em, _ in kept) / n,
            "f1": 100 * sum(f1 for _, _, f1 in kept) / n,
            "no_answer_rate": 1 - len(kept) / n,
            "confidently_wrong_rate": sum(f1 == 0 for _, _, f1 in kept) / n,
            "questions": n}


def choose_floor(rows, keep):
    """The highest floor that still keeps `keep` of the exactly right answers."""
    right = sorted(m for m, em, _ in rows if m is not None and em)
    if not right:
        return None
    return right[int((1 - keep) * len(right))]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="models/multitask")
    parser.add_argument("--limit", type=int, default=200, help="questions per set (evenly spaced)")
    parser.add_argument("--keep", type=float, default=0.9,
                        help="share of the right validation answers the floor keeps")
    parser.add_argument("--out", default=os.path.join("bench", "results", "qa_floor.json"))
    args = parser.parse_args(argv)
    if not 0 < args.keep <= 1:
        parser.error("--keep must be in (0, 1]")
    from gpt_tf import datasets
    from gpt_tf.clients import open_client
    from gpt_tf.evaluation.report import evenly_spaced

    def load(name, split):
        return evenly_spaced(datasets.load_squad(datasets.split_paths(name)[split]), args.limit)

    client = open_client(args.model)
    started = time.perf_counter()
    try:
        validation = answers_with_scores(client, load(*CHOOSE_ON))
        floor = choose_floor(validation, args.keep)
        rows = [{"set": f"{CHOOSE_ON[0]} ({CHOOSE_ON[1]})", "domain": "chooses the floor",
                 "rule": rule, **summarise(validation, f)}
                for rule, f in (("supported", None), ("floor", floor))]
        for name, domain in TEST_SETS.items():
            scored = answers_with_scores(client, load(name, "test"))
            rows += [{"set": f"{name} (test)", "domain": domain, "rule": rule,
                      **summarise(scored, f)}
                     for rule, f in (("supported", None), ("floor", floor))]
    finally:
        client.close()
    seconds = time.perf_counter() - started
    floor_text = "none (no right answer)" if floor is None else f"{floor:.3f}"
    print(f"model {args.model}, {args.limit} evenly spaced questions per set; floor "
          f"{floor_text} nats/token (keeps {args.keep:.0%} of the right validation answers)")
    print(f"{'set':24s} {'rule':10s} {'EM':>6s} {'F1':>6s} {'no answer':>10s} "
          f"{'conf. wrong':>12s}")
    for r in rows:
        print(f"{r['set']:24s} {r['rule']:10s} {r['exact_match']:6.2f} {r['f1']:6.2f} "
              f"{r['no_answer_rate']:10.3f} {r['confidently_wrong_rate']:12.3f}")
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out + ".tmp", "w", encoding="utf-8") as handle:
        json.dump({"model": args.model, "limit": args.limit, "keep": args.keep,
                   "floor": floor, "rows": rows, "seconds": round(seconds, 1)}, handle,
                  indent=2)
    os.replace(args.out + ".tmp", args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
