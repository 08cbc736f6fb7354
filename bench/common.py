"""Shared benchmark plumbing: one process per measurement, interleaved rounds."""

import importlib.util
import json
import os
import resource
import subprocess
import sys

RESULT_PREFIX = "RESULT "


def peak_rss_mb():
    """Peak resident set size of this process, in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def write_json(path, result):
    """Writes a bench's result JSON (numpy numbers as floats), replacing the file atomically."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as handle:
        json.dump(result, handle, indent=2, default=float)
    os.replace(tmp, path)
    print(f"\nwrote {path}")


def format_or_dash(value, spec):
    """`spec % value`, or "-" for a missing measurement (None)."""
    return spec % value if value is not None else "-"


def torch_available():
    return importlib.util.find_spec("torch") is not None


def report(result):
    """Prints a measurement (with this process's peak RSS) for `run_interleaved`."""
    result["peak_rss_mb"] = peak_rss_mb()
    print(RESULT_PREFIX + json.dumps(result))


def run_interleaved(script, flag, names, rounds, timeout=1200):
    """Runs `python SCRIPT FLAG NAME` for every name, `rounds` times, interleaved.

    Interleaving means a noisy neighbour slows every contender alike, so the
    ratios hold. Each run is a fresh process: its peak RSS is its own.

    Returns:
        `{name: [result dict per successful round]}`.
    """
    runs = {name: [] for name in names}
    for round_number in range(rounds):
        for name in names:
            process = subprocess.run([sys.executable, script, flag, name],
                                     capture_output=True, text=True, timeout=timeout)
            lines = [line for line in process.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
            if process.returncode or not lines:
                print(f"{name} failed:\n{process.stderr[-2000:]}", file=sys.stderr)
                continue
            runs[name].append(json.loads(lines[-1][len(RESULT_PREFIX):]))
            print(f"round {round_number + 1} {name}: {runs[name][-1]}", file=sys.stderr)
    return runs
