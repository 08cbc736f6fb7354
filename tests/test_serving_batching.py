"""Server-side batching (`gpt-tf serve --enable_batching`, issue 15): real servers on loopback.

One `ModelManager` (the tiny export) is shared by an unbatched server, the
reference, and batched servers started with different parameters.
"""

import concurrent.futures
import contextlib
import json
import threading

import numpy as np
import pytest

from gpt_tf.errors import UserError
from gpt_tf.serving.batching import (
    BatchingParameters,
    batch_plan,
    parse_batching_parameters,
    read_batching_parameters,
)
from gpt_tf.serving.client import GrpcServingClient, ServingClient
from tests.test_export import PROMPTS, exported_bundle
from tests.test_serving import _raw, managed_copy

ALLOWED = (1, 2, 4, 8)


@pytest.fixture(scope="module")
def manager(trained_run, tmp_path_factory):
    bundle = exported_bundle(trained_run, tmp_path_factory)
    return managed_copy(bundle["path"], tmp_path_factory.mktemp("batching") / "tiny")


@pytest.fixture
def serve(manager):
    """Starts servers over the shared manager: `serve(batching=..., **ServerOptions)`."""
    from gpt_tf.serving.server import ModelServer, ServerOptions

    servers = []

    def start(grpc=False, **overrides):
        options = ServerOptions(**{"max_batch_size": 16, "max_concurrent_requests": 32,
                                   **overrides})
        servers.append(ModelServer(manager, port=0, options=options,
                                   grpc_port=0 if grpc else None).start())
        return servers[-1]

    yield start
    for server in servers:
        server.shutdown()


def _batching(**overrides):
    return BatchingParameters(**{"max_batch_size": 8, "batch_timeout_micros": 100_000,
                                 "allowed_batch_sizes": ALLOWED, **overrides})


def _recording_runs(manager):
    """Records `(signature, rows)` of every model call; returns `(calls, undo)`."""
    servable = manager.resolve("tiny")
    calls, lock = [], threading.Lock()
    original = servable.run

    def run(signature, inputs):
        with lock:
            calls.append((signature, len(next(iter(inputs.values())))))
        return original(signature, inputs)

    servable.run = run
    return calls, lambda: vars(servable).pop("run", None)


def _together(jobs, workers=None):
    """Runs the callables at once (a barrier before each) and returns their results."""
    barrier = threading.Barrier(len(jobs))

    def call(job):
        barrier.wait(timeout=60)
        return job()

    with concurrent.futures.ThreadPoolExecutor(max_workers=workers or len(jobs)) as pool:
        return list(pool.map(call, jobs))


def _close(a, b):
    """Answers equal, floats up to rounding (merged batches run differently shaped matmuls)."""
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b))
    if isinstance(a, float):
        return abs(a - b) <= 1e-4 * max(1.0, abs(a))
    return a == b


# ---- the parameters file ------------------------------------------------------------------

def test_parameters_file_reads_tf_serving_text(tmp_path):
    from gpt_tf.export.bundle import BATCHING_PARAMETERS

    assert read_batching_parameters() == parse_batching_parameters(BATCHING_PARAMETERS) == \
        BatchingParameters(8, 10000, 64, 2, (1, 2, 4, 8), True)
    text = ("# comment\nmax_batch_size: 4\nbatch_timeout_micros { value: 0 }\n"
            'thread_pool_name { value: "pool" }\nallowed_batch_sizes: 2\n'
            "allowed_batch_sizes: 4\npad_variable_length_inputs: false\n")
    parameters = parse_batching_parameters(text)
    assert parameters.max_batch_size == 4 and parameters.batch_timeout_micros == 0
    assert parameters.allowed_batch_sizes == (2, 4) and not parameters.pad_variable_length_inputs
    assert parameters.ignored == ("thread_pool_name",)
    assert [parameters.padded_size(n) for n in (1, 2, 3, 4, 5, 9)] == [2, 2, 4, 4, 8, 12]
    assert BatchingParameters(allowed_batch_sizes=(), max_batch_size=3).padded_size(3) == 3
    for bad, message in [("max_batch_size { value: 0 }", "max_batch_size must be an integer >= 1"),
                         ("max_batch_size: 8 allowed_batch_sizes: 4", "must equal max_batch_size"),
                         ("allowed_batch_sizes: 8 allowed_batch_sizes: 4 max_batch_size: 4",
                          "increasing"),
                         ("max_batchsize: 8", "unknown field 'max_batchsize'"),
                         ("max_batch_size { value: 8", "ends early"),
                         ("max_batch_size: eight", "must be an integer"),
                         ("max_batch_size = 8", "cannot read '='")]:
        with pytest.raises(UserError, match=message):
            parse_batching_parameters(bad, "f.txt")
    with pytest.raises(UserError, match="cannot be read"):
        read_batching_parameters(str(tmp_path / "missing.txt"))


def test_cli_flags(manager, tmp_path, capsys):
    import argparse

    from gpt_tf.cli import main
    from gpt_tf.serving.cli import build_server, register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    base = manager.specs["tiny"].base_path
    params = tmp_path / "batching.txt"
    params.write_text("max_batch_size { value: 4 }\nallowed_batch_sizes: 4\n")
    args = parser.parse_args(["serve", "--model_base_path", base, "--rest_api_port", "0",
                              "--enable_batching", "--batching_parameters_file", str(params),
                              "--file_system_poll_wait_seconds", "0",
                              "--enable_model_warmup", "false"])
    server = build_server(args)
    try:
        assert server.options.batching.allowed_batch_sizes == (4,)
        assert server.batcher is not None and server.owns_manager
    finally:
        server.shutdown()
    params.write_text("max_batch_size { value: 4 }\nallowed_batch_sizes: 2\n")
    for flags in (["--enable_batching=true", "--batching_parameters_file", str(params)],
                  ["--batching_parameters_file", str(params)]):
        assert main(["serve", "--model_base_path", str(tmp_path), "--rest_api_port", "0",
                     *flags]) == 2
    errors = capsys.readouterr().err
    assert "must equal max_batch_size" in errors and "add --enable_batching" in errors


def test_batch_plans(manager):
    servable = manager.resolve("tiny")
    plans = {name: batch_plan(servable, name) for name in servable.input_specs}
    assert {name for name, plan in plans.items() if plan == "merge"} == {
        "serving_default", "generate", "score", "detokenize", "logits", "translate",
        "classify", "classify_text"}
    assert plans["tokenize"] == plans["generate_ids"] == "pad"
    assert plans["prefill"] is plans["decode"] is None


# ---- batched answers ----------------------------------------------------------------------

def _requests():
    """(kind, body) pairs: every batched signature, greedy and sampled, mixed widths."""
    prompts = [f"{p} {i}" for i, p in enumerate(PROMPTS * 2)]
    requests = []
    for i, prompt in enumerate(prompts):
        sampled = {"temperature": 0.9, "top_k": 20, "top_p": 0.95, "repetition_penalty": 1.1,
                   "seed": i} if i % 2 else {}
        requests.append(("predict", {"signature_name": "generate", "instances": [
            {"prompt": prompt, "max_new_tokens": 3 + i % 6, "temperature": 0.0, "top_k": 0,
             "top_p": 1.0, "repetition_penalty": 1.0, "seed": 0, **sampled}]}))
    requests += [
        ("predict", {"instances": prompts[:3]}),
        ("predict", {"signature_name": "score", "instances": [{"text": p} for p in prompts[:2]]}),
        ("predict", {"signature_name": "tokenize", "inputs": {"text": prompts[2:5]}}),
        ("predict", {"signature_name": "detokenize", "inputs": {"token_ids": [[5, 6, 7]]}}),
        ("predict", {"signature_name": "detokenize", "inputs": {"token_ids": [[8, 9]] * 2}}),
        ("predict", {"signature_name": "logits", "inputs": {"token_ids": [[5, 6, 7]]}}),
        ("predict", {"signature_name": "logits", "inputs": {"token_ids": [[5, 6], [9, 9]]}}),
        ("predict", {"signature_name": "translate", "instances": [{"source": "hello"}]}),
        ("classify", {"signature_name": "classify", "examples": [{"text": "good"}]}),
        ("classify", {"signature_name": "classify",
                      "examples": [{"text": p} for p in prompts[:3]]}),
        ("predict", {"signature_name": "classify_text", "instances": [{"text": "bad"}]}),
        # 12 rows: split into 8 + 4 (max_batch_size 8), joined back.
        ("predict", {"signature_name": "generate", "inputs": {
            "prompt": prompts + prompts[:4], "max_new_tokens": [4] * 12,
            "temperature": [0.7] * 12, "top_k": [0] * 12, "top_p": [1.0] * 12,
            "repetition_penalty": [1.0] * 12, "seed": list(range(12))}}),
    ]
    return requests


def _ask(server, kind, body):
    code, payload, _ = _raw(server, "POST", f"/v1/models/tiny:{kind}", body)
    return code, json.loads(payload)


def test_batched_answers_equal_unbatched(serve, manager):
    plain = serve()
    batched = serve(batching=_batching(batch_timeout_micros=50_000))
    requests = _requests()
    expected = [_ask(plain, kind, body) for kind, body in requests]
    assert all(code == 200 for code, _ in expected), expected
    calls, undo = _recording_runs(manager)
    try:
        got = _together([lambda r=r: _ask(batched, *r) for r in requests])
    finally:
        undo()
    for request, want, answer in zip(requests, expected, got):
        assert _close(want, answer), (request, want, answer)
    assert {rows for _, rows in calls} <= set(ALLOWED)
    # The generate requests (8 single rows at once) shared model calls.
    assert len([1 for name, _ in calls if name == "generate"]) < 8


def test_concurrent_requests_share_one_call_and_metrics_show_it(serve, manager):
    server = serve(batching=_batching(batch_timeout_micros=500_000), grpc=True)
    body = {"signature_name": "classify", "examples": [{"text": "good"}]}
    calls, undo = _recording_runs(manager)
    grpc_client = GrpcServingClient(f"127.0.0.1:{server.grpc_port}", "tiny")
    try:
        answers = _together([lambda: _ask(server, "classify", body)] * 6 +
                            [lambda: grpc_client.classify([{"text": "good"}])] * 2)
    finally:
        undo()
        grpc_client.close()
    assert all(code == 200 for code, _ in answers[:6])
    assert len({json.dumps(a) for a in answers[:6]}) == 1
    assert _close([list(pair) for pair in answers[6][0]], answers[0][1]["results"][0])
    # Eight one-row requests: one call of 8 (two if the timeout cut them).
    assert calls and len(calls) <= 2 and sum(rows for _, rows in calls) <= 8 + 4
    page = _raw(server, "GET", "/monitoring/prometheus/metrics")[1].decode()
    counts = {}
    for line in page.splitlines():
        if 'signature="classify"' in line:
            name = line.split("{")[0]
            counts[name] = counts.get(name, 0) + int(line.split()[-1])
    assert counts == {"gpt_tf_batches": len(calls), "gpt_tf_batched_requests": 8,
                      "gpt_tf_batched_rows": 8}


def test_one_bad_request_fails_alone(serve):
    server = serve(batching=_batching(batch_timeout_micros=300_000))

    def generate(prompt, top_p):
        return _ask(server, "predict", {"signature_name": "generate", "instances": [
            {"prompt": prompt, "max_new_tokens": 4, "temperature": 0.8, "top_k": 0,
             "top_p": top_p, "repetition_penalty": 1.0, "seed": 3}]})

    answers = _together([lambda p=p: generate(p, 0.9) for p in PROMPTS] +
                        [lambda: generate("bad", 1.5)])
    alone = [generate(p, 0.9) for p in PROMPTS]
    assert answers[:4] == alone
    code, body = answers[4]
    assert code == 400 and "top_p must be in (0, 1]" in body["error"]


def test_compiled_shapes_stay_bounded(serve, manager):
    """Any number of rows and any prompt length reach the model as an allowed batch size;
    the generation loop's width is the export's 32-position bucket, here the whole context."""
    server = serve(batching=_batching(batch_timeout_micros=20_000))
    client = ServingClient(server.url, "tiny")
    rng = np.random.default_rng(0)
    calls, undo = _recording_runs(manager)
    try:
        jobs = []
        for rows in range(1, 14):
            prompts = ["x" * int(n) for n in rng.integers(1, 40, size=rows)]
            jobs.append(lambda p=prompts: client.generate(p, max_new_tokens=2))
            jobs.append(lambda p=prompts: client.tokenize(p))
            jobs.append(lambda p=prompts: client.score(p))
        _together(jobs, workers=len(jobs))
    finally:
        undo()
    sizes = {rows for _, rows in calls}
    assert sizes <= set(ALLOWED) | {16}, sizes  # 16: a 13-row tokenize, padded to 2 x 8
    assert {rows for name, rows in calls if name != "tokenize"} <= set(ALLOWED)


@contextlib.contextmanager
def _blocked_model(manager):
    """The served model's calls wait for `release`; yields `(entered, release, calls)`
    (`calls`: the rows of each call). The model is restored on exit."""
    servable = manager.resolve("tiny")
    original, entered, release = servable.run, threading.Event(), threading.Event()
    calls = []

    def blocked(signature, inputs):
        calls.append(len(inputs["text"]))
        entered.set()
        release.wait(timeout=60)
        return original(signature, inputs)

    servable.run = blocked
    try:
        yield entered, release, calls
    finally:
        release.set()
        vars(servable).pop("run", None)


def test_full_queue_answers_503(serve, manager):
    server = serve(batching=_batching(max_batch_size=1, allowed_batch_sizes=(1,),
                                      max_enqueued_batches=1, num_batch_threads=1))
    body = {"signature_name": "score", "instances": [{"text": "In the"}]}
    with _blocked_model(manager) as (entered, release, _):
        with concurrent.futures.ThreadPoolExecutor(max_workers=3) as pool:
            first = pool.submit(_ask, server, "predict", body)
            assert entered.wait(timeout=60)  # the only batch thread is busy with it
            # One more waits as the queue's one batch; the other finds the queue full.
            others = [pool.submit(_ask, server, "predict", body) for _ in range(2)]
            done, _ = concurrent.futures.wait(others, timeout=60,
                                              return_when=concurrent.futures.FIRST_COMPLETED)
            release.set()
            code, answer = done.pop().result()
            assert code == 503 and "max_enqueued_batches" in answer["error"]
            assert sorted(f.result()[0] for f in [first] + others) == [200, 200, 503]
    code, _, headers = _raw(server, "POST", "/v1/models/tiny:predict", body)
    assert code == 200


def test_zero_timeout_still_merges_while_the_threads_are_busy(serve, manager):
    """TF Serving's scheduler: a batch takes requests until a thread is free to run it."""
    server = serve(batching=_batching(batch_timeout_micros=0, num_batch_threads=1))
    body = {"signature_name": "score", "instances": [{"text": "In the"}]}
    with _blocked_model(manager) as (entered, release, calls):
        with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
            first = pool.submit(_ask, server, "predict", body)
            assert entered.wait(timeout=60)
            others = [pool.submit(_ask, server, "predict", body) for _ in range(3)]
            for _ in range(600):  # until the three wait in one open batch
                with server.batcher._cond:
                    waiting = [q.open.rows for q in server.batcher._queues.values() if q.open]
                if waiting == [3]:
                    break
                threading.Event().wait(0.05)
            release.set()
            answers = [f.result() for f in [first] + others]
    assert waiting == [3] and calls == [1, 4]  # 3 rows padded to 4
    assert all(code == 200 for code, _ in answers) and len({json.dumps(a) for a in answers}) == 1
