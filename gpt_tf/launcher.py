"""Local multi-worker launcher: N `gpt-tf train` processes, restarted on failure.

With `MultiWorkerMirroredStrategy`, a dead worker makes the others fail their
next collective (`UnavailableError`, about a second later); nothing recovers
inside a process. So a supervisor owns the workers: when one exits with an
error it stops the rest and starts all of them again; they resume from the
chief's last checkpoint at the exact step.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time


def free_ports(count):
    """`count` free TCP ports on 127.0.0.1 (bound then released)."""
    sockets, ports = [], []
    for _ in range(count):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        sockets.append(s)
        ports.append(s.getsockname()[1])
    for s in sockets:
        s.close()
    return ports


def tf_config(ports, index):
    """The `TF_CONFIG` of worker `index` in a local cluster on `ports`."""
    return json.dumps({
        "cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
        "task": {"type": "worker", "index": index},
    })


TRAIN_COMMAND = (sys.executable, "-m", "gpt_tf.cli", "train")


def run_workers(worker_args, num_workers, max_restarts=3, on_output=None, on_event=None,
                grace_seconds=10.0, program=TRAIN_COMMAND):
    """Runs `python -m gpt_tf.cli train WORKER_ARGS --strategy multi_worker` N times.

    Args:
        worker_args: CLI arguments for each worker (without --strategy/--workers).
        num_workers: processes to start.
        max_restarts: restarts of the whole group after a failure.
        on_output: `fn(worker_index, line)` for every output line.
        on_event: `fn(kind, info)`; kinds `start` (pids), `failure`, `restart`, `done`.
            Neither callback is ever called while another call is running.
        grace_seconds: wait for survivors to exit on their own before killing them.
        program: the worker command before `worker_args` (`gpt-tf train` by default).

    Returns:
        Exit status: 0 when every worker finished, else the first failure's status.
    """
    # One lock for both callbacks: the workers' output threads and this loop never call
    # them at the same time, so lines they print cannot interleave.
    lock = threading.Lock()
    output = on_output or (lambda index, line: None)
    event = on_event or (lambda kind, info: None)

    def on_output(index, line):
        with lock:
            output(index, line)

    def on_event(kind, info):
        with lock:
            event(kind, info)

    attempt = 0
    while True:
        ports = free_ports(num_workers)
        processes, pumps = [], []
        for index in range(num_workers):
            env = dict(os.environ, TF_CONFIG=tf_config(ports, index))
            command = [*program, *worker_args, "--strategy", "multi_worker"]
            process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                                       stderr=subprocess.STDOUT, text=True, bufsize=1)
            pump = threading.Thread(target=_pump, args=(process, index, on_output), daemon=True)
            pump.start()
            processes.append(process)
            pumps.append(pump)
        on_event("start", {"attempt": attempt, "pids": [p.pid for p in processes]})
        failed = _wait_for_failure(processes)
        if failed is None:
            _drain(pumps)
            on_event("done", {"attempt": attempt})
            return 0
        index, status = failed
        on_event("failure", {"worker": index, "status": status})
        deadline = time.monotonic() + grace_seconds
        for process in processes:
            remaining = max(0.0, deadline - time.monotonic())
            try:
                process.wait(timeout=remaining)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        _drain(pumps)
        if status in (2, 3):  # user error or NaN stop: restarting cannot help
            return status
        if attempt >= max_restarts:
            return status or 1
        attempt += 1
        on_event("restart", {"attempt": attempt})


def _wait_for_failure(processes):
    """Waits until all exit 0 (returns None) or one fails (returns (index, status))."""
    while True:
        running = False
        for index, process in enumerate(processes):
            status = process.poll()
            if status is None:
                running = True
            elif status != 0:
                return index, status
        if not running:
            return None
        time.sleep(0.2)


def _drain(pumps, timeout=10.0):
    """Waits for the output threads to pass on what the exited workers wrote last.

    A worker's last lines (its final step, its summary) may still sit in the pipe
    when the process has already exited; returning without this loses them.
    """
    deadline = time.monotonic() + timeout
    for pump in pumps:
        pump.join(timeout=max(0.0, deadline - time.monotonic()))


def _pump(process, index, on_output):
    for line in process.stdout:
        on_output(index, line.rstrip("\n"))


def forward_sigterm(processes):
    """Installs a SIGTERM handler passing preemption on to the workers."""
    def handle(signum, frame):
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, handle)
