"""Cost of the Keras generator (local backend): short vs whole-buffer prefill.

    python bench/bench_generate_keras.py [--run models/multitask] [--rounds 7]

Times `gpt_tf.generation.Generator.generate` (the XLA loop behind the apps'
local backend and `gpt-tf evaluate`) on the shipped model's weights, greedy,
on the shapes the apps produce: a question over a 200-token context (one and
four at a time, 16 new tokens, like `answer`), a 10-token prompt continued by
64 tokens (`generate`) and eight 20-token sources (`translate`, 48 tokens).
Both variants run in one process, interleaved call by call, on the same
inputs, and must give the same tokens: `short` prefills the smallest
`PREFILL_BUCKETS` prefix that holds the shortest prompt and projects one
position to the vocabulary (the default); `whole` prefills and projects the
whole buffer (the old behaviour). Writes bench/results/generate_keras.json.
"""

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
from common import write_json  # noqa: E402

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                       "generate_keras.json")
# (name, rows, prompt tokens, new tokens)
CASES = (("question over a 200-token context", 1, 200, 16),
         ("question over a 200-token context", 4, 200, 16),
         ("10-token prompt", 1, 10, 64),
         ("20-token sources", 8, 20, 48))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", default="models/multitask")
    parser.add_argument("--rounds", type=int, default=7, help="timed calls per cell and variant")
    args = parser.parse_args(argv)

    from gpt_tf.generation import Generator
    from gpt_tf.training import load_model

    model, tokenizer, _ = load_model(args.run)
    variants = {"short": Generator(model, short_prefill=True),
                "whole": Generator(model, short_prefill=False)}
    rng = np.random.default_rng(0)
    vocab = int(model.backbone.vocab_size)
    rows_out = []
    for name, rows, length, new in CASES:
        prompts = [[tokenizer.end_of_text_id] + list(rng.integers(3, vocab, size=length - 1))
                   for _ in range(rows)]
        outputs = {k: g.generate(prompts, new).token_ids for k, g in variants.items()}  # compile
        if outputs["short"] != outputs["whole"]:
            raise SystemExit(f"short and whole prefill disagree ({name}, {rows} rows)")
        times = {k: [] for k in variants}
        for _ in range(args.rounds):
            for k, generator in variants.items():
                start = time.perf_counter()
                generator.generate(prompts, new)
                times[k].append(1000 * (time.perf_counter() - start))
        ms = {k: statistics.median(v) for k, v in times.items()}
        rows_out.append({"case": name, "rows": rows, "prompt_tokens": length,
                         "new_tokens": new, "ms_short": ms["short"], "ms_whole": ms["whole"],
                         "whole_over_short": ms["whole"] / ms["short"]})
    print(f"\ngreedy, median of {args.rounds} calls, {os.cpu_count()} CPUs\n")
    print("| case | rows | new tokens | short prefill ms | whole prefill ms | whole / short |")
    print("|---|---|---|---|---|---|")
    for r in rows_out:
        print(f"| {r['case']} | {r['rows']} | {r['new_tokens']} | {r['ms_short']:.1f} | "
              f"{r['ms_whole']:.1f} | {r['whole_over_short']:.2f} |")
    write_json(RESULTS, {"run": args.run, "rounds": args.rounds, "cpus": os.cpu_count(),
                         "rows": rows_out})


if __name__ == "__main__":
    main()
