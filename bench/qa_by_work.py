"""QA: where does the app beat the sliding-window baseline, play by play?

    python bench/qa_by_work.py [--run models/multitask] [--data qa-en] [--splits validation,test]

The shipped model wins clearly on qa-en's validation plays and ties or loses on
its test plays (README, weak points). This scores every question of each split
with the app (`gpt_tf.tasks.qa.answer_questions`, what `apps.qa` does) and
with the sliding-window baseline, and breaks exact match down by work (a
SQuAD article title: one play or poem), with each split's margin and its 95%
paired-bootstrap interval. Writes bench/results/qa_by_work.json.
"""

import argparse
import os
import sys
import time
from collections import defaultdict

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from common import write_json  # noqa: E402

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "qa_by_work.json")


def by_work(questions, hits):
    """`{title: {"questions", method: exact match %}}` from `hits`, each method's
    per-question `(exact match 0..1, 1)` rows (`significance.squad_statistics`)."""
    groups = defaultdict(list)
    for number, question in enumerate(questions):
        groups[question.title].append(number)
    return {title: {"questions": len(numbers),
                    **{method: 100.0 * sum(h[n][0] for n in numbers) / len(numbers)
                       for method, h in hits.items()}}
            for title, numbers in sorted(groups.items())}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", default="models/multitask")
    parser.add_argument("--data", default="qa-en")
    parser.add_argument("--splits", default="validation,test")
    args = parser.parse_args(argv)

    from gpt_tf.clients import open_client
    from gpt_tf.evaluation import significance
    from gpt_tf.evaluation.baselines import SlidingWindowQA
    from gpt_tf.evaluation.report import load_task_data
    from gpt_tf.tasks.qa import answer_questions

    client = open_client(args.run)
    window = SlidingWindowQA()
    result = {"run": args.run, "data": args.data, "splits": {}}
    started = time.perf_counter()
    try:
        for split in [s for s in args.splits.split(",") if s]:
            questions = load_task_data("qa", args.data, split, limit=0)["examples"]
            truths = [[a.text for a in q.answers] for q in questions]
            predicted = {
                "app": [a["answer"] for a in answer_questions(
                    client, [(q.context, q.question) for q in questions])],
                "sliding window": [window.predict(q.context, q.question) for q in questions]}
            hits = {m: significance.squad_statistics(p, truths)["exact_match"]
                    for m, p in predicted.items()}
            margin = significance.paired_bootstrap("exact_match", hits["app"],
                                                   hits["sliding window"], higher_is_better=True)
            works = by_work(questions, hits)
            result["splits"][split] = {"questions": len(questions), "works": works,
                                       "app_over_window": margin}
            print(f"\n{args.data} {split}: {len(questions)} questions; app over sliding window "
                  f"{margin['improvement']:+.2f} [{margin['ci95'][0]:+.2f}, "
                  f"{margin['ci95'][1]:+.2f}] exact match\n")
            print("| work | questions | app EM | sliding window EM | app - window |")
            print("|---|---|---|---|---|")
            for title, row in works.items():
                print(f"| {title} | {row['questions']} | {row['app']:.1f} | "
                      f"{row['sliding window']:.1f} | {row['app'] - row['sliding window']:+.1f} |")
    finally:
        client.close()
    result["seconds"] = round(time.perf_counter() - started, 1)
    write_json(RESULTS, result)


if __name__ == "__main__":
    main()
