"""Training-speed benchmark: gpt-tf fp32/bf16 x XLA on/off against PyTorch, MFU, RSS.

Reference config (vocab 8192, context 256, 4 layers, width 256, 4 heads, MLP 1024,
batch 16). Each measurement runs in its own process (peak RSS per measurement);
rounds interleave the contenders. MFU = (training FLOPs per token x tokens/s) /
measured matmul peak of the same precision on this machine.

Usage:
    python bench/bench_train.py [--rounds 2] [--out bench/results/train.json]
"""

import argparse
import json
import os
import time

from bench_foundation import BATCH, REFERENCE, _torch_model, train_gpt_tf
from common import format_or_dash, report, run_interleaved, torch_available

CONTENDERS = ("gpt_tf:float32:xla", "gpt_tf:float32:noxla", "gpt_tf:bfloat16:xla",
              "gpt_tf:bfloat16:noxla", "torch:float32:eager", "torch:bfloat16:eager",
              "torch:float32:compile")
STEPS = 12


def matmul_peak(precision, size=2048, repeats=20):
    """Best-of GFLOP/s of a square matmul in TensorFlow (XLA), the MFU denominator."""
    import tensorflow as tf

    dtype = tf.bfloat16 if precision == "bfloat16" else tf.float32
    a = tf.random.normal((size, size), dtype=tf.float32)
    a = tf.cast(a, dtype)

    @tf.function(jit_compile=True)
    def chain(x):
        for _ in range(4):
            x = tf.matmul(x, a) * tf.cast(0.01, dtype)
        return x

    chain(a).numpy()
    best = 0.0
    for _ in range(repeats // 4):
        started = time.perf_counter()
        chain(a).numpy()
        best = max(best, 4 * 2 * size ** 3 / (time.perf_counter() - started))
    return best


def run_gpt_tf(precision, xla):
    result = train_gpt_tf(STEPS, precision, xla)
    result["matmul_peak_flops"] = matmul_peak(precision)
    return result


def run_torch(precision, mode):
    import torch

    torch.set_num_threads(2)
    torch.manual_seed(0)
    model = _torch_model()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1)
    forward = torch.compile(model) if mode == "compile" else model
    tokens = torch.randint(0, REFERENCE["vocab_size"], (BATCH, REFERENCE["sequence_length"] + 1))

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bfloat16"):
            logits = forward(tokens[:, :-1])
        loss = torch.nn.functional.cross_entropy(logits.float().reshape(-1, logits.shape[-1]),
                                                 tokens[:, 1:].reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()

    for _ in range(3):
        step()
    started = time.perf_counter()
    for _ in range(STEPS):
        step()
    elapsed = time.perf_counter() - started
    return {"tokens_per_second": STEPS * BATCH * REFERENCE["sequence_length"] / elapsed,
            "torch_threads": torch.get_num_threads(), "torch_version": torch.__version__}


def _flops_per_token():
    import gpt_tf  # noqa: F401
    from gpt_tf.config import ModelConfig
    from gpt_tf.training import flops_per_token

    return flops_per_token(ModelConfig(**REFERENCE))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contender", choices=CONTENDERS, help=argparse.SUPPRESS)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", default="bench/results/train.json")
    args = parser.parse_args()
    if args.contender:
        framework, precision, mode = args.contender.split(":")
        if framework == "gpt_tf":
            result = run_gpt_tf(precision, mode == "xla")
        else:
            result = run_torch(precision, mode)
        report(result)
        return
    contenders = [c for c in CONTENDERS if not c.startswith("torch") or torch_available()]
    runs = run_interleaved(__file__, "--contender", contenders, args.rounds)
    flops = _flops_per_token()
    peaks = {}
    for contender, results in runs.items():
        for r in results:
            if "matmul_peak_flops" in r:
                precision = contender.split(":")[1]
                peaks[precision] = max(peaks.get(precision, 0.0), r["matmul_peak_flops"])
    torch_eager = max((r["tokens_per_second"] for r in runs.get("torch:float32:eager", [])),
                      default=None)
    torch_rss = max((r["peak_rss_mb"] for r in runs.get("torch:float32:eager", [])), default=None)
    table = {}
    for contender, results in runs.items():
        if not results:
            continue
        precision = contender.split(":")[1]
        best = max(r["tokens_per_second"] for r in results)
        rss = max(r["peak_rss_mb"] for r in results)
        peak = peaks.get(precision)
        table[contender] = {
            "tokens_per_second": best,
            "mfu": flops * best / peak if peak else None,
            "vs_torch_eager_fp32": best / torch_eager if torch_eager else None,
            "peak_rss_mb": rss,
            "rss_vs_torch": rss / torch_rss if torch_rss else None,
        }
    print(f"\nreference {REFERENCE}, batch {BATCH}, {STEPS} timed steps, best of {args.rounds} "
          f"interleaved rounds; FLOPs/token {flops:,}; matmul peak "
          + ", ".join(f"{p} {v / 1e9:.0f} GFLOP/s" for p, v in peaks.items()))
    print(f"{'contender':<26}{'tok/s':>9}{'MFU':>8}{'x torch':>9}{'RSS MB':>9}{'RSS x':>7}")
    for contender, row in table.items():
        print(f"{contender:<26}{row['tokens_per_second']:>9.0f}{format_or_dash(row['mfu'], '%.3f'):>8}"
              f"{format_or_dash(row['vs_torch_eager_fp32'], '%.2f'):>9}{row['peak_rss_mb']:>9.0f}"
              f"{format_or_dash(row['rss_vs_torch'], '%.2f'):>7}")
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as handle:
        json.dump({"config": REFERENCE, "batch": BATCH, "flops_per_token": flops,
                   "matmul_peak_flops": peaks, "table": table, "runs": runs}, handle, indent=2)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
