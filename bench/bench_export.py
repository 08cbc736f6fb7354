"""Export benchmark: REST generate latency/throughput, TFLite prefill/decode, sizes.

At the reference config (vocab 8192, context 256, 4 layers, width 256, 4 heads,
MLP 1024 = the `mini` preset), using a trained run (default
`runs/shakespeare-mini`) or, with `--random-init`, the same shapes with
fresh random weights (speed is the same; sizes too, since every tensor is
distinct):

1. export: SavedModel (`gpt-tf export savedmodel` path) and TFLite none/fp16/int8;
   export times and sizes.
2. rest: `gpt-tf serve` in its own process; greedy `generate` with 64 new
   tokens through real HTTP at batch 1 and batch 8 (one request), and 8
   concurrent batch-1 requests; latency and generated tokens/s.
3. tflite_<q>: the on-device runner (no TensorFlow in the process), 1 and 2
   threads: prefill ms for 32- and 128-token prompts, decode ms/token.

Each measurement runs in its own process; the rounds interleave the sections
so a noisy neighbour slows all of them alike.

Usage:
    python bench/bench_export.py [--run-dir runs/shakespeare-mini] [--random-init]
        [--rounds 2] [--out bench/results/export.json]
"""

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, ROOT)

from common import RESULT_PREFIX, report  # noqa: E402

REFERENCE = dict(vocab_size=8192, sequence_length=256, num_layers=4, hidden_dim=256,
                 num_heads=4, intermediate_dim=1024)
NEW_TOKENS = 64
PROMPTS = ["ROMEO.", "JULIET.", "First Citizen.", "KING HENRY.", "HAMLET.", "MACBETH.",
           "Enter the Duke", "O, what a"]
QUANTIZATIONS = ("none", "fp16", "int8")


def _dir_size(path):
    return sum(os.path.getsize(os.path.join(r, n)) for r, _, names in os.walk(path)
               for n in names)


def section_export(work, run_dir, random_init):
    import numpy as np

    import gpt_tf  # noqa: F401
    from gpt_tf.export.saved_model import export_versioned
    from gpt_tf.export.tflite import export_tflite
    from gpt_tf.training import load_model

    model, tokenizer, config = load_model(run_dir)
    shape = {k: getattr(config.model, k) for k in REFERENCE}
    if shape != REFERENCE:
        print(f"note: {run_dir} is {shape}, not the reference config", file=sys.stderr)
    if random_init:
        rng = np.random.default_rng(0)
        for weight in model.weights:
            weight.assign(rng.normal(0, 0.02, weight.shape).astype("float32"))
    result = {"parameters": int(model.num_parameters()), "config": shape}
    started = time.perf_counter()
    saved = export_versioned(model, tokenizer, os.path.join(work, "saved_models"), "ref")
    result["savedmodel_export_s"] = time.perf_counter() - started
    result["savedmodel_bytes"] = saved.size_bytes
    variables = os.path.join(saved.path, "variables")
    result["savedmodel_variables_bytes"] = _dir_size(variables)
    for quantize in QUANTIZATIONS:
        started = time.perf_counter()
        meta = export_tflite(model, tokenizer, os.path.join(work, "tflite", quantize), quantize)
        result[f"tflite_{quantize}_export_s"] = time.perf_counter() - started
        result[f"tflite_{quantize}_bytes"] = meta["size_bytes"]
    result["int8_vs_fp32_size"] = result["tflite_int8_bytes"] / result["tflite_none_bytes"]
    result["fp16_vs_fp32_size"] = result["tflite_fp16_bytes"] / result["tflite_none_bytes"]
    report(result)


def _start_server(work):
    command = [sys.executable, "-m", "gpt_tf.cli", "serve", "--model_base_path",
               os.path.join(work, "saved_models", "ref"), "--model_name", "ref",
               "--rest_api_port", "0", "--file_system_poll_wait_seconds", "0",
               "--max_concurrent_requests", "16"]
    process = subprocess.Popen(command, cwd=ROOT, stderr=subprocess.PIPE, text=True)
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(iter(process.stderr.readline, "")),
                              daemon=True)
    reader.start()
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        found = [line for line in lines if "serving REST on" in line]
        if found:
            return process, found[0].split()[3]
        if process.poll() is not None:
            break
        time.sleep(0.2)
    process.kill()
    raise RuntimeError("server did not start:\n" + "".join(lines)[-3000:])


def section_rest(work, repeats=5):
    from gpt_tf.serving.client import ServingClient

    process, url = _start_server(work)
    try:
        client = ServingClient(url, "ref", timeout=600)
        result = {}

        def timed(prompts):
            started = time.perf_counter()
            out = client.generate(prompts, max_new_tokens=NEW_TOKENS)
            return time.perf_counter() - started, sum(o["num_tokens"] for o in out)

        for batch in (1, 8):
            prompts = PROMPTS[:batch]
            timed(prompts)  # compile this batch shape (XLA)
            runs = [timed(prompts) for _ in range(repeats)]
            latency = statistics.median(t for t, _ in runs)
            tokens = statistics.median(n for _, n in runs)
            result[f"batch{batch}_latency_ms"] = 1000 * latency
            result[f"batch{batch}_tokens"] = tokens
            result[f"batch{batch}_tokens_per_s"] = tokens / latency
            result[f"batch{batch}_ms_per_step"] = 1000 * latency / NEW_TOKENS
        # Eight clients at once, one prompt each (no server-side batching).
        for _ in range(2):
            threads, outs = [], []
            started = time.perf_counter()
            for prompt in PROMPTS:
                thread = threading.Thread(target=lambda p=prompt: outs.append(timed([p])))
                thread.start()
                threads.append(thread)
            for thread in threads:
                thread.join()
            elapsed = time.perf_counter() - started
        result["concurrent8_wall_ms"] = 1000 * elapsed
        result["concurrent8_tokens_per_s"] = sum(n for _, n in outs) / elapsed
        report(result)
    finally:
        process.terminate()
        process.wait(timeout=60)


def section_tflite(work, quantize, repeats=5, steps=128):
    import numpy as np

    sys.modules["tensorflow"] = None  # the runner must not need it
    from tflite.runtime import TFLiteLM

    result = {"quantization": quantize}
    directory = os.path.join(work, "tflite", quantize)
    for threads in (1, 2):
        lm = TFLiteLM(directory, num_threads=threads)
        for length in (32, 128):
            ids = np.full((1, length), 5, np.int32)
            ids[0, 0] = lm.end_of_text_id
            lm.prefill(ids)
            times = []
            for _ in range(repeats):
                started = time.perf_counter()
                lm.prefill(ids)
                times.append(time.perf_counter() - started)
            result[f"threads{threads}_prefill{length}_ms"] = 1000 * statistics.median(times)
        per_token = []
        for _ in range(3):
            logits = lm._start([lm.end_of_text_id, 5, 6, 7])
            token = int(np.argmax(logits))
            started = time.perf_counter()
            for position in range(4, 4 + steps):
                token = int(np.argmax(lm._step(token, position)))
            per_token.append((time.perf_counter() - started) / steps)
        result[f"threads{threads}_decode_ms_per_token"] = 1000 * statistics.median(per_token)
        result[f"threads{threads}_decode_tokens_per_s"] = 1 / statistics.median(per_token)
    report(result)


def _run(section, work, extra=()):
    command = [sys.executable, __file__, "--section", section, "--work", work, *extra]
    process = subprocess.run(command, capture_output=True, text=True, timeout=3600)
    lines = [line for line in process.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if process.returncode or not lines:
        print(f"{section} failed:\n{process.stderr[-3000:]}", file=sys.stderr)
        return None
    result = json.loads(lines[-1][len(RESULT_PREFIX):])
    print(f"{section}: {result}", file=sys.stderr)
    return result


def _median(runs, key):
    values = [r[key] for r in runs if r and key in r]
    return statistics.median(values) if values else float("nan")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--section")
    parser.add_argument("--work")
    parser.add_argument("--quantize")
    parser.add_argument("--run-dir", default=os.path.join(ROOT, "runs", "shakespeare-mini"))
    parser.add_argument("--random-init", action="store_true")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", default=os.path.join(HERE, "results", "export.json"))
    args = parser.parse_args()
    if args.section == "export":
        return section_export(args.work, args.run_dir, args.random_init)
    if args.section == "rest":
        return section_rest(args.work)
    if args.section == "tflite":
        return section_tflite(args.work, args.quantize)

    if not os.path.isfile(os.path.join(args.run_dir, "config.json")):
        sys.exit(f"no run at {args.run_dir}; train one (`make demo`) or pass --run-dir")
    work = tempfile.mkdtemp(prefix="bench-export-")
    try:
        extra = ["--run-dir", args.run_dir] + (["--random-init"] if args.random_init else [])
        exported = _run("export", work, extra)
        if exported is None:
            sys.exit(1)
        rest, lite = [], {q: [] for q in QUANTIZATIONS}
        for _ in range(args.rounds):  # interleaved
            rest.append(_run("rest", work))
            for quantize in QUANTIZATIONS:
                lite[quantize].append(_run("tflite", work, ["--quantize", quantize]))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    summary = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version(),
                    "loadavg_at_end": os.getloadavg()},
        "model": {"run_dir": args.run_dir, "random_init": args.random_init, **exported},
        "rest": {k: _median(rest, k) for k in (rest[0] or {})} if any(rest) else {},
        "tflite": {q: {k: _median(runs, k) for k in (next(r for r in runs if r) or {})
                       if k != "quantization"} for q, runs in lite.items() if any(runs)},
        "rounds": args.rounds,
        "raw": {"rest": rest, "tflite": lite},
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    tmp = args.out + ".tmp"
    with open(tmp, "w") as handle:
        json.dump(summary, handle, indent=2)
    os.replace(tmp, args.out)
    _print_table(summary)
    print(f"\nwritten to {args.out}")


def _print_table(summary):
    model = summary["model"]
    print(f"\nmodel: {model['parameters']:,} parameters {model['config']}"
          f"{' (random init)' if model['random_init'] else ''}")
    print(f"SavedModel: {model['savedmodel_bytes'] / 1e6:.1f} MB "
          f"(variables {model['savedmodel_variables_bytes'] / 1e6:.1f} MB), "
          f"export {model['savedmodel_export_s']:.1f}s")
    rest = summary["rest"]
    if rest:
        print(f"\nREST generate, greedy, {NEW_TOKENS} new tokens (gpt-tf serve, XLA):")
        print(f"{'':>14} {'latency ms':>11} {'tokens/s':>9} {'ms/step':>8}")
        for batch in (1, 8):
            print(f"{'batch ' + str(batch):>14} {rest[f'batch{batch}_latency_ms']:>11.1f} "
                  f"{rest[f'batch{batch}_tokens_per_s']:>9.1f} "
                  f"{rest[f'batch{batch}_ms_per_step']:>8.2f}")
        print(f"{'8 concurrent':>14} {rest['concurrent8_wall_ms']:>11.1f} "
              f"{rest['concurrent8_tokens_per_s']:>9.1f}")
    print("\nTFLite (LiteRT, runner without TensorFlow):")
    print(f"{'':>6} {'size MB':>8} {'threads':>7} {'prefill32 ms':>12} {'prefill128 ms':>13} "
          f"{'decode ms/tok':>13}")
    for quantize, values in summary["tflite"].items():
        for threads in (1, 2):
            print(f"{quantize:>6} {model[f'tflite_{quantize}_bytes'] / 1e6:>8.2f} {threads:>7} "
                  f"{values[f'threads{threads}_prefill32_ms']:>12.2f} "
                  f"{values[f'threads{threads}_prefill128_ms']:>13.2f} "
                  f"{values[f'threads{threads}_decode_ms_per_token']:>13.3f}")
    print(f"int8/fp32 size {model['int8_vs_fp32_size']:.3f}, fp16/fp32 "
          f"{model['fp16_vs_fp32_size']:.3f}")


if __name__ == "__main__":
    main()
