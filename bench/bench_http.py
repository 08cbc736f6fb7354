"""Keep-alive against new-connection latency of `gpt-tf serve` (issue 15), and the issue's
16 x 256 `logits` request.

Two servers over the same SavedModel run side by side, each in its own process:
`current` (this code: one write per response, TCP_NODELAY) and `legacy` (the
handler switched back to the old two writes with Nagle on: `wbufsize = 0`,
`disable_nagle_algorithm = False`). Rounds interleave the two, so a busy
machine slows both alike. Requests: a status GET and a `:classify` of one
short review, each over one keep-alive connection and over a new connection
per request.

    python bench/bench_http.py [--model saved_models/multitask] [--requests 100]

Prints a table and writes bench/results/http.json.
"""

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import write_json  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULT = os.path.join(ROOT, "bench", "results", "http.json")
CLASSIFY = {"signature_name": "classify", "examples": [{"text": "a wonderful, moving film"}]}


def serve(mode, base_path):
    """Child process: serve `base_path` as model `m`, print the port, run until killed."""
    from gpt_tf.serving.models import ModelManager, ModelSpec
    from gpt_tf.serving.server import ModelServer, ServerOptions, _Handler

    if mode == "legacy":
        _Handler.wbufsize = 0
        _Handler.disable_nagle_algorithm = False
    manager = ModelManager([ModelSpec("m", os.path.abspath(base_path))], warmup=False)
    manager.poll_once()
    server = ModelServer(manager, port=0, options=ServerOptions())
    print(f"PORT {server.port}", flush=True)
    server.serve_forever()


def _start(mode, base_path):
    process = subprocess.Popen([sys.executable, __file__, "--serve", mode, "--model", base_path],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = process.stdout.readline()
    if not line.startswith("PORT "):
        process.kill()
        raise SystemExit(f"the {mode} server did not start")
    return process, int(line.split()[1])


def _request(connection, method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    connection.request(method, path, body=data,
                       headers={"Content-Type": "application/json"} if data else {})
    response = connection.getresponse()
    payload = response.read()
    return response.status, payload


def measure(port, method, path, body, requests, keep_alive):
    """Latencies (ms) of `requests` calls; raises on any non-200."""
    times = []
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        for _ in range(requests):
            if not keep_alive:
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            started = time.perf_counter()
            status, payload = _request(connection, method, path, body)
            times.append((time.perf_counter() - started) * 1000)
            if status != 200:
                raise SystemExit(f"{method} {path}: {status} {payload[:200]!r}")
    finally:
        connection.close()
    return times


def issue_logits_request(port):
    """Issue 15's 16 x 256 `logits` request, with a status request sent while it runs."""
    ids = [[5] * 256] * 16
    result = {}

    def big():
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        started = time.perf_counter()
        status, payload = _request(connection, "POST", "/v1/models/m:predict",
                                   {"signature_name": "logits", "inputs": {"token_ids": ids}})
        result.update(status=status, ms=(time.perf_counter() - started) * 1000,
                      response_bytes=len(payload),
                      error=json.loads(payload).get("error") if status != 200 else None)
        connection.close()

    thread = threading.Thread(target=big)
    thread.start()
    time.sleep(0.005)
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    started = time.perf_counter()
    status, _ = _request(connection, "GET", "/v1/models/m")
    result["status_request_ms"] = (time.perf_counter() - started) * 1000
    connection.close()
    thread.join()
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=os.path.join(ROOT, "saved_models", "multitask"),
                        help="model base path (integer version folders)")
    parser.add_argument("--requests", type=int, default=100, help="requests per cell and round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--serve", choices=("current", "legacy"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        return serve(args.serve, args.model)
    servers = {mode: _start(mode, args.model) for mode in ("legacy", "current")}
    cells = [("status", "GET", "/v1/models/m", None, args.requests),
             ("classify", "POST", "/v1/models/m:classify", CLASSIFY, max(10, args.requests // 4))]
    times = {}
    try:
        for _, port in servers.values():  # compile the classify graph before timing
            measure(port, "POST", "/v1/models/m:classify", CLASSIFY, 2, True)
        for _ in range(args.rounds):
            for name, method, path, body, count in cells:
                for keep_alive in (True, False):
                    for mode, (_, port) in servers.items():
                        key = (mode, name, "keep-alive" if keep_alive else "new connection")
                        times.setdefault(key, []).extend(
                            measure(port, method, path, body, count, keep_alive))
        logits = issue_logits_request(servers["current"][1])
    finally:
        for process, _ in servers.values():
            process.kill()
            process.wait()
    rows = []
    for (mode, name, connection), values in times.items():
        values = sorted(values)
        rows.append({"server": mode, "request": name, "connection": connection,
                     "n": len(values), "p50_ms": statistics.median(values),
                     "p95_ms": values[int(0.95 * (len(values) - 1))]})
    print(f"\n{'server':8} {'request':9} {'connection':15} {'n':>4} {'p50 ms':>8} {'p95 ms':>8}")
    for row in sorted(rows, key=lambda r: (r["request"], r["server"], r["connection"])):
        print(f"{row['server']:8} {row['request']:9} {row['connection']:15} {row['n']:4d} "
              f"{row['p50_ms']:8.2f} {row['p95_ms']:8.2f}")
    ratio = {}
    for mode in servers:
        for name, *_ in cells:
            p50 = {r["connection"]: r["p50_ms"] for r in rows
                   if r["server"] == mode and r["request"] == name}
            ratio[f"{mode} {name}"] = p50["keep-alive"] / p50["new connection"]
    print("\nkeep-alive / new-connection p50:",
          ", ".join(f"{k} {v:.2f}x" for k, v in ratio.items()))
    print(f"issue 15 logits 16 x 256 on the current server: HTTP {logits['status']} in "
          f"{logits['ms']:.0f} ms, {logits['response_bytes']} bytes; a status request sent "
          f"meanwhile took {logits['status_request_ms']:.1f} ms")
    write_json(RESULT, {"model": os.path.relpath(os.path.abspath(args.model), ROOT),
                        "load_average": os.getloadavg(), "rows": rows,
                        "keep_alive_over_new_connection_p50": ratio,
                        "issue_logits_16x256": logits})


if __name__ == "__main__":
    main()
