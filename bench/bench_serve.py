"""`gpt-tf serve` under concurrent load, batching off against batching on (issue 15).

Three servers over the same SavedModel run side by side, each in its own
process, started with the same command line except for batching:

    gpt-tf serve --model_base_path MODEL --model_name m --rest_api_port 0 \\
        --max_concurrent_requests 32 --file_system_poll_wait_seconds 0 \\
        [--enable_batching --batching_parameters_file saved_models/batching_parameters.txt]

`off` without the last line, `on` with it, and (`--zero-timeout`) `on t=0`
with a copy of the file whose `batch_timeout_micros` is 0, and
(`--alt_batching_parameters_file FILE`) `on alt` with another parameters file.

For each workload (`generate`: one prompt, 16 greedy tokens; `classify`: one
short review), 1, 4 and 16 client threads send requests back to back for a
fixed time, over one keep-alive connection each and over a new connection
per request; the two servers alternate cell by cell, so a busy machine slows
both alike. Reported per cell: requests/s, p50/p95/p99 latency, errors
(anything but HTTP 200), the server's RSS after the cell and, with batching,
the mean number of requests per model call (from the Prometheus page).

    python bench/bench_serve.py [--model saved_models/multitask] [--seconds 2.5] [--quick]
        [--zero-timeout] [--alt_batching_parameters_file FILE]

Prints a table and writes bench/results/serve.json.
"""

import argparse
import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import write_json  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULT = os.path.join(ROOT, "bench", "results", "serve.json")
PROMPTS = ["The film was", "In the morning the", "She said that", "A review of the",
           "The best part of", "He opened the door and", "After the storm", "It was the"]
REVIEWS = ["a wonderful, moving film", "dull and far too long", "the acting was superb",
           "I walked out after an hour"]
CLIENTS = (1, 4, 16)
# Batching off; on with the parameters file as given; on with its timeout set to 0.
MODES = ("off", "on", "on t=0", "on alt")


def _generate(i):
    return "/v1/models/m:predict", {"signature_name": "generate", "instances": [
        {"prompt": PROMPTS[i % len(PROMPTS)], "max_new_tokens": 16, "temperature": 0.0,
         "top_k": 0, "top_p": 1.0, "repetition_penalty": 1.0, "seed": 0}]}


def _classify(i):
    return "/v1/models/m:classify", {"signature_name": "classify",
                                     "examples": [{"text": REVIEWS[i % len(REVIEWS)]}]}


WORKLOADS = {"generate": _generate, "classify": _classify}


def zero_timeout_copy(batching_file, directory):
    """A copy of the parameters file with `batch_timeout_micros` 0."""
    from gpt_tf.serving.batching import parse_batching_parameters

    with open(batching_file, encoding="utf-8") as handle:
        text = handle.read()
    text = re.sub(r"(batch_timeout_micros\s*(?:\{\s*value\s*:|:)\s*)\d+", r"\g<1>0", text)
    assert parse_batching_parameters(text).batch_timeout_micros == 0
    path = os.path.join(directory, "batching_t0.txt")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
    return path


def start_server(mode, model, batching_file):
    """`gpt-tf serve` in its own process; returns `(process, port)` once it serves."""
    command = [sys.executable, "-m", "gpt_tf.cli", "serve", "--model_base_path", model,
               "--model_name", "m", "--rest_api_port", "0", "--max_concurrent_requests", "32",
               "--file_system_poll_wait_seconds", "0"]
    if mode != "off":
        command += ["--enable_batching", "--batching_parameters_file", batching_file]
    process = subprocess.Popen(command, cwd=ROOT, stderr=subprocess.PIPE, text=True)
    for line in process.stderr:
        match = re.search(r"serving REST on http://[^:]+:(\d+)", line)
        if match:
            threading.Thread(target=lambda: process.stderr.read(), daemon=True).start()
            return process, int(match.group(1))
    raise SystemExit(f"the batching-{mode} server did not start (exit {process.wait()})")


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as handle:
        fields = dict(line.split(":", 1) for line in handle)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def _post(connection, path, body):
    connection.request("POST", path, body=json.dumps(body).encode(),
                       headers={"Content-Type": "application/json"})
    response = connection.getresponse()
    response.read()
    return response.status


def batch_counters(port):
    """`(model calls, requests in them)` summed over the batching counters."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request("GET", "/monitoring/prometheus/metrics")
        page = connection.getresponse().read().decode()
    finally:
        connection.close()
    totals = {"gpt_tf_batches": 0, "gpt_tf_batched_requests": 0}
    for line in page.splitlines():
        name = line.split("{")[0]
        if name in totals:
            totals[name] += int(line.split()[-1])
    return totals["gpt_tf_batches"], totals["gpt_tf_batched_requests"]


def run_cell(port, workload, clients, keep_alive, seconds):
    """`clients` threads sending `workload` requests for `seconds`; latencies and errors."""
    make = WORKLOADS[workload]
    latencies, errors, lock = [], [], threading.Lock()
    start_line = threading.Barrier(clients + 1)
    state = {}

    def client(number):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        count = number
        start_line.wait()
        while time.perf_counter() < state["deadline"]:
            path, body = make(count)
            count += clients
            if not keep_alive:
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            started = time.perf_counter()
            try:
                status = _post(connection, path, body)
            except (OSError, http.client.HTTPException) as error:
                status = type(error).__name__
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            elapsed = (time.perf_counter() - started) * 1000
            with lock:
                (latencies if status == 200 else errors).append(
                    elapsed if status == 200 else status)
        connection.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    state["deadline"] = time.perf_counter() + seconds
    began = time.perf_counter()
    start_line.wait()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - began
    values = sorted(latencies)

    def pick(q):
        return values[min(len(values) - 1, int(q * len(values)))] if values else None

    return {"requests": len(values), "requests_per_s": len(values) / wall,
            "p50_ms": pick(0.50), "p95_ms": pick(0.95), "p99_ms": pick(0.99),
            "errors": len(errors), "error_kinds": sorted({str(e) for e in errors})}


def batch_sizes(batching_file):
    """The padded batch sizes a server with this parameters file runs (None: batching off)."""
    from gpt_tf.serving.batching import parse_batching_parameters

    if batching_file is None:
        return (1,)
    with open(batching_file, encoding="utf-8") as handle:
        parameters = parse_batching_parameters(handle.read(), batching_file)
    return tuple(parameters.allowed_batch_sizes) or (parameters.max_batch_size,)


def warm_up(port, batching_file):
    """Compiles what the cells will run: every padded batch size of the server's file."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    try:
        for rows in batch_sizes(batching_file):
            path, body = _generate(0)
            body["instances"] = body["instances"] * rows
            for _ in range(2):
                assert _post(connection, path, body) == 200
            path, body = _classify(0)
            body["examples"] = body["examples"] * rows
            assert _post(connection, path, body) == 200
    finally:
        connection.close()


def _fmt(value, spec):
    return spec % value if value is not None else "-"


def print_table(rows):
    head = (f"{'workload':9} {'clients':>7} {'connection':10} | {'batching':8} {'req/s':>7} "
            f"{'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'errors':>6} {'RSS MB':>7} "
            f"{'req/call':>8}")
    print("\n" + head + "\n" + "-" * len(head))
    for row in rows:
        print(f"{row['workload']:9} {row['clients']:7d} {row['connection']:10} | "
              f"{row['batching']:8} {row['requests_per_s']:7.1f} {_fmt(row['p50_ms'], '%7.1f')} "
              f"{_fmt(row['p95_ms'], '%7.1f')} {_fmt(row['p99_ms'], '%7.1f')} "
              f"{row['errors']:6d} {row['rss_mb']:7.0f} {_fmt(row.get('requests_per_call'), '%8.2f')}")


def targets(rows):
    """Issue 15's targets: 16 clients >= 3x requests/s with batching; p99 <= 2 x p50 at 4."""
    found = {}
    cell = {(r["workload"], r["clients"], r["connection"], r["batching"]): r for r in rows}
    for workload in WORKLOADS:
        for connection in ("keep-alive", "new conn"):
            off = cell.get((workload, 16, connection, "off"))
            for mode in MODES[1:]:
                on = cell.get((workload, 16, connection, mode))
                if off and on and off["requests_per_s"]:
                    ratio = on["requests_per_s"] / off["requests_per_s"]
                    found[f"{workload} {connection} 16 clients, batching {mode} / off req/s"] = {
                        "value": round(ratio, 2), "target": ">= 3", "met": ratio >= 3}
                four = cell.get((workload, 4, connection, mode))
                if four and four["p50_ms"]:
                    ratio = four["p99_ms"] / four["p50_ms"]
                    found[f"{workload} {connection} 4 clients, batching {mode}: p99/p50"] = {
                        "value": round(ratio, 2), "target": "<= 2", "met": ratio <= 2}
    return found


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=os.path.join(ROOT, "saved_models", "multitask"),
                        help="model base path (integer version folders)")
    parser.add_argument("--batching_parameters_file",
                        default=os.path.join(ROOT, "saved_models", "batching_parameters.txt"))
    parser.add_argument("--seconds", type=float, default=2.5, help="seconds per cell")
    parser.add_argument("--quick", action="store_true",
                        help="1 s per cell, keep-alive only (a smoke run)")
    parser.add_argument("--zero-timeout", action="store_true",
                        help="also a server with batching at batch_timeout_micros 0")
    parser.add_argument("--alt_batching_parameters_file",
                        help="also a server with batching from this parameters file")
    args = parser.parse_args()
    modes = [m for m in MODES if m in ("off", "on") or (m == "on t=0" and args.zero_timeout)
             or (m == "on alt" and args.alt_batching_parameters_file)]
    seconds = 1.0 if args.quick else args.seconds
    connections = (True,) if args.quick else (True, False)
    started = time.perf_counter()
    scratch = tempfile.mkdtemp(prefix="bench-serve-")
    files = {"off": None, "on": args.batching_parameters_file,
             "on alt": args.alt_batching_parameters_file}
    if "on t=0" in modes:
        files["on t=0"] = zero_timeout_copy(args.batching_parameters_file, scratch)
    servers = {mode: start_server(mode, args.model, files[mode]) for mode in modes}
    rows = []
    try:
        for mode, (_, port) in servers.items():
            warm_up(port, files[mode])
        for workload in WORKLOADS:
            for clients in CLIENTS:
                for keep_alive in connections:
                    for mode in modes:
                        process, port = servers[mode]
                        before = batch_counters(port) if mode != "off" else None
                        row = run_cell(port, workload, clients, keep_alive, seconds)
                        row.update(workload=workload, clients=clients, batching=mode,
                                   connection="keep-alive" if keep_alive else "new conn")
                        row["rss_mb"], row["peak_rss_mb"] = rss_mb(process.pid)
                        if before is not None:
                            calls, requests = (a - b for a, b in
                                               zip(batch_counters(port), before))
                            row["requests_per_call"] = requests / calls if calls else None
                        rows.append(row)
                        print(f"{workload} {clients} clients {row['connection']} batching "
                              f"{mode}: {row['requests_per_s']:.1f} req/s", file=sys.stderr)
    finally:
        for process, _ in servers.values():
            process.terminate()
            process.wait(timeout=60)
        shutil.rmtree(scratch, ignore_errors=True)
    print_table(rows)
    met = targets(rows)
    print("\ntargets (issue 15):")
    for name, entry in met.items():
        print(f"  {name}: {entry['value']} (target {entry['target']}): "
              f"{'met' if entry['met'] else 'NOT met'}")
    write_json(RESULT, {
        "model": os.path.relpath(os.path.abspath(args.model), ROOT),
        "batching_parameters_file": os.path.relpath(args.batching_parameters_file, ROOT),
        "modes": {"off": "no --enable_batching", "on": "the parameters file",
                  "on t=0": "the parameters file with batch_timeout_micros 0",
                  "on alt": args.alt_batching_parameters_file and os.path.relpath(
                      args.alt_batching_parameters_file, ROOT)},
        "command": " ".join(["python", "bench/bench_serve.py"] + sys.argv[1:]),
        "seconds_per_cell": seconds, "cpus": os.cpu_count(),
        "load_average": os.getloadavg(), "wall_s": time.perf_counter() - started,
        "rows": rows, "targets": met})


if __name__ == "__main__":
    main()
