"""Cost of the exported generation loop per batch size: short vs whole-buffer prefill.

    python bench/bench_generate_graph.py [--run models/multitask] [--rounds 15]

Times `GraphGenerator.generate` (the XLA prefill + decode loop behind the
`generate` signatures and the serving batcher) on the shipped model's weights,
greedy, 16 new tokens, for batches of 1/4/8/16 rows of a short prompt
(`bench_serve.py`'s prompts, 3-5 tokens) and of a 40-token prompt. Both
variants run in one process, interleaved call by call, on the same inputs:
`short` prefills the smallest `PREFILL_BUCKETS` prefix that holds the prompt
(the default), `whole` prefills the whole 32-position buffer (the old
behaviour). "x per row vs 1" is a row's cost alone over its cost in the batch:
the most that request batching can gain on this machine. `--bf16` adds a
third variant, a bfloat16 copy of the weights with the short prefill (this
CPU has AVX512_BF16), and reports how often its greedy tokens equal float32's.
Writes bench/results/generate_graph.json (or `--output`).
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
                       "generate_graph.json")
SHORT_PROMPTS = ["The film was", "In the morning the", "She said that", "A review of the"]
LONG_PROMPT = ("The installer copies the configuration files into the system directory, "
               "checks the permissions of every file and restarts the services that")


def batch_inputs(tokenizer, prompts, rows, max_new):
    import tensorflow as tf

    encoded = [[tokenizer.end_of_text_id] + tokenizer.encode(prompts[i % len(prompts)])
               for i in range(rows)]
    width = max(len(r) for r in encoded)
    ids = np.zeros((rows, width), np.int32)
    for i, row in enumerate(encoded):
        ids[i, :len(row)] = row
    settings = dict(max_new_tokens=tf.fill([rows], max_new), temperature=tf.zeros([rows]),
                    top_k=tf.zeros([rows], tf.int32), top_p=tf.ones([rows]),
                    repetition_penalty=tf.ones([rows]), seeds=tf.zeros([rows], tf.int32))
    lengths = [len(r) for r in encoded]
    return (tf.constant(ids), tf.constant(lengths, tf.int32)), settings, min(lengths)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", default="models/multitask")
    parser.add_argument("--rounds", type=int, default=15, help="timed calls per cell and variant")
    parser.add_argument("--batches", default="1,4,8,16")
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--output", help="results JSON (default: bench/results/generate_graph.json)")
    parser.add_argument("--bf16", action="store_true",
                        help="also time a bfloat16 copy of the weights (short prefill): does "
                             "this CPU's AVX512_BF16 make a batch cheaper under XLA?")
    args = parser.parse_args(argv)

    from gpt_tf.export.generation_graph import GraphGenerator
    from gpt_tf.training import load_model

    model, tokenizer, config = load_model(args.run)
    stop = [tokenizer.end_of_text_id]
    variants = {"short": GraphGenerator(model, stop, short_prefill=True),
                "whole": GraphGenerator(model, stop, short_prefill=False)}
    if args.bf16:
        variants["short bf16"] = GraphGenerator(bfloat16_copy(model, config), stop)
    agreement = {}
    rows_out = []
    for prompt_name, prompts in (("short prompt", SHORT_PROMPTS), ("40-token prompt",
                                                                   [LONG_PROMPT])):
        for rows in [int(b) for b in args.batches.split(",")]:
            (ids, lengths), settings, prompt_tokens = batch_inputs(
                tokenizer, prompts, rows, args.max_new_tokens)
            times = {name: [] for name in variants}
            outputs = {}
            for name, generator in variants.items():  # compile + check the tokens agree
                outputs[name] = generator.generate(ids, lengths, **settings)["token_ids"].numpy()
            if not np.array_equal(outputs["short"], outputs["whole"]):
                raise SystemExit(f"short and whole prefill disagree ({prompt_name}, {rows} rows)")
            if "short bf16" in outputs:  # rounding may change a greedy token: say how often
                agreement[f"{prompt_name}, {rows} rows"] = float(
                    (outputs["short bf16"] == outputs["short"]).mean())
            for _ in range(args.rounds):
                for name, generator in variants.items():
                    start = time.perf_counter()
                    generator.generate(ids, lengths, **settings)["token_ids"].numpy()
                    times[name].append(1000 * (time.perf_counter() - start))
            for name in variants:
                ms = statistics.median(times[name])
                rows_out.append({"prompt": prompt_name, "prompt_tokens": prompt_tokens,
                                 "rows": rows, "variant": name, "ms_per_call": ms,
                                 "ms_per_row": ms / rows})
    alone = {(r["prompt"], r["variant"]): r["ms_per_row"] for r in rows_out if r["rows"] == 1}
    whole = {(r["prompt"], r["rows"]): r["ms_per_call"] for r in rows_out
             if r["variant"] == "whole"}
    print(f"\n{args.max_new_tokens} greedy tokens, median of {args.rounds} calls, "
          f"{os.cpu_count()} CPUs\n")
    print("| prompt | rows | prefill | ms per call | ms per row | x per row vs 1 | whole / this |")
    print("|---|---|---|---|---|---|---|")
    for r in rows_out:
        r["batching_gain"] = alone[(r["prompt"], r["variant"])] / r["ms_per_row"]
        r["whole_over_this"] = whole[(r["prompt"], r["rows"])] / r["ms_per_call"]
        print(f"| {r['prompt']} ({r['prompt_tokens']} tokens) | {r['rows']} | {r['variant']} | "
              f"{r['ms_per_call']:.1f} | {r['ms_per_row']:.2f} | {r['batching_gain']:.2f} | "
              f"{r['whole_over_this']:.2f} |")
    if agreement:
        print("\nbfloat16 tokens equal to float32's: " + ", ".join(
            f"{k} {v:.0%}" for k, v in agreement.items()))
    write_json(args.output or RESULTS, {
        "run": args.run, "max_new_tokens": args.max_new_tokens, "rounds": args.rounds,
        "cpus": os.cpu_count(), "rows": rows_out, "bf16_token_agreement": agreement})


def bfloat16_copy(model, config):
    """The same network with bfloat16 weights and compute (logits stay float32)."""
    import tensorflow as tf

    from gpt_tf.models import GPTCausalLM

    twin = GPTCausalLM.from_model_config(config.model, dtype="bfloat16")
    twin(tf.zeros((1, 8), tf.int32))
    if len(twin.weights) != len(model.weights):
        raise SystemExit(f"the bfloat16 copy has {len(twin.weights)} weights, the model "
                         f"{len(model.weights)}")
    for target, source in zip(twin.weights, model.weights):
        target.assign(tf.cast(source, target.dtype))
    return twin


if __name__ == "__main__":
    main()
