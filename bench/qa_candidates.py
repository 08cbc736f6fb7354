"""QA: generate-then-locate (the app) against scoring the context's name-like words.

    python bench/qa_candidates.py [--run models/multitask] [--split validation] [--limit 200]

The qa-en answers are names or numbers from the context (cloze questions).
Three ways to answer, side by side on the same questions:
- `generate`: `gpt_tf.tasks.qa.answer_questions`, what `apps.qa` does;
- `candidates`: every name- or number-like word of each context window (the
  sliding-window baseline's candidate rule) that is not in the question is
  scored by the model as the answer (`client.score` after the QA prompt); the
  best wins;
- `max`: the better-scored of the two.
Margins over `generate` come with 95% paired-bootstrap intervals. Writes
bench/results/qa_candidates.json.
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from common import write_json  # noqa: E402

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                       "qa_candidates.json")


def candidate_answers(client, items):
    """`(answer, score)` per question: the best-scored name-like word of its windows."""
    from gpt_tf.evaluation.baselines import SlidingWindowQA
    from gpt_tf.task_data import formats
    from gpt_tf.task_data.examples import qa_windows
    from gpt_tf.tasks.qa import _WORD, qa_settings

    max_answer, stride = qa_settings(client)
    answers = []
    for context, question in items:
        asked = {w.lower() for w in _WORD.findall(question)}
        best = ("", float("-inf"))
        for start, end in qa_windows(context, question, client.count_tokens,
                                     client.sequence_length, max_answer, stride):
            window = context[start:end]
            spans = [(m.start(), m.end()) for m in _WORD.finditer(window)]
            flags = SlidingWindowQA._entity_like(window, spans)
            words = sorted({window[s:e] for (s, e), f in zip(spans, flags)
                            if f and window[s:e].lower() not in asked})
            if not words:
                continue
            for word, score in zip(words, client.score(formats.qa_prompt(window, question),
                                                       words)):
                if score > best[1]:
                    best = (word, score)
        answers.append(best)
    return answers


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", default="models/multitask")
    parser.add_argument("--data", default="qa-en")
    parser.add_argument("--split", default="validation", choices=("validation", "test"))
    parser.add_argument("--limit", type=int, default=200, help="questions (0: all)")
    args = parser.parse_args(argv)

    from gpt_tf.clients import open_client
    from gpt_tf.evaluation import metrics, significance
    from gpt_tf.evaluation.report import load_task_data
    from gpt_tf.tasks.qa import answer_questions

    questions = load_task_data("qa", args.data, args.split, args.limit)["examples"]
    items = [(q.context, q.question) for q in questions]
    truths = [[a.text for a in q.answers] for q in questions]
    client = open_client(args.run)
    started = time.perf_counter()
    generated = answer_questions(client, items)
    seconds = {"generate": time.perf_counter() - started}
    started = time.perf_counter()
    candidates = candidate_answers(client, items)
    seconds["candidates"] = time.perf_counter() - started
    client.close()

    answers = {
        "generate": [g["answer"] for g in generated],
        "candidates": [c[0] for c in candidates],
        "max": [c[0] if g["no_answer"] or c[1] > g["score"] else g["answer"]
                for g, c in zip(generated, candidates)],
    }
    reference = significance.squad_statistics(answers["generate"], truths)["exact_match"]
    rows = []
    for method, predicted in answers.items():
        row = {"method": method, **metrics.squad_scores(predicted, truths)}
        if method != "generate":
            row["margin_over_generate"] = significance.paired_bootstrap(
                "exact_match", significance.squad_statistics(predicted, truths)["exact_match"],
                reference, higher_is_better=True)
        rows.append(row)
    print(f"\n{args.run}, {args.data} {args.split}, {len(items)} questions\n")
    print("| method | exact match | F1 | margin over generate [95%] |")
    print("|---|---|---|---|")
    for row in rows:
        margin = row.get("margin_over_generate")
        text = (f"{margin['improvement']:+.2f} [{margin['ci95'][0]:+.2f}, {margin['ci95'][1]:+.2f}]"
                if margin else "")
        print(f"| {row['method']} | {row['exact_match']:.2f} | {row['f1']:.2f} | {text} |")
    print(f"\nseconds: generate {seconds['generate']:.0f}, candidates {seconds['candidates']:.0f}")
    result = {"run": args.run, "data": args.data, "split": args.split, "questions": len(items),
              "rows": rows, "seconds": seconds}
    write_json(RESULTS, result)


if __name__ == "__main__":
    main()
