"""`gpt-tf serve` under load and abuse (issue 15): metrics, budgets, HTTP limits, small 4xx.

Every test talks to a real server on loopback. One `ModelManager` (the tiny
export, loaded once) is shared by servers started with different limits.
"""

import http.client
import json
import re
import socket
import threading
import time
import types

import numpy as np
import pytest

from gpt_tf.serving.client import GrpcServingClient, ServingClient
from gpt_tf.serving.errors import ServingError
from tests.test_export import exported_bundle
from tests.test_serving import _raw, managed_copy

INJECTION = "/v1/models/x%22%7D%201%0Ainjected_metric%7Bowner%3D%22attacker"
METRICS = "/monitoring/prometheus/metrics"
# A sample line of the Prometheus text format: name{label="value",...} number,
# where a value holds no raw quote, backslash or newline except as \" \\ \n.
_SAMPLE = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*'
                     r'\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\["\\n])*",?)*\} '
                     r'[0-9.eE+-]+$')


@pytest.fixture(scope="module")
def bundle(trained_run, tmp_path_factory):
    return exported_bundle(trained_run, tmp_path_factory)


@pytest.fixture(scope="module")
def manager(bundle, tmp_path_factory):
    return managed_copy(bundle["path"], tmp_path_factory.mktemp("limits") / "tiny")


def _serve(manager, **overrides):
    """A `ModelServer` over the shared manager with `ServerOptions(**overrides)`."""
    from gpt_tf.serving.server import ModelServer, ServerOptions

    options = ServerOptions(**{"max_body_bytes": 1 << 20, **overrides})
    return ModelServer(manager, port=0, options=options).start()


@pytest.fixture
def serve(manager):
    servers = []

    def start(**overrides):
        servers.append(_serve(manager, **overrides))
        return servers[-1]

    yield start
    for server in servers:
        server.shutdown()


def _counting_runs(manager):
    """Counts `Servable.run` calls (proves a request was refused before any work)."""
    servable = manager.resolve("tiny")
    calls = []
    original = servable.run

    def run(signature, inputs):
        calls.append(signature)
        return original(signature, inputs)

    servable.run = run
    return calls, lambda: vars(servable).pop("run", None)


# ---- metrics ------------------------------------------------------------------------------

def _series(page):
    """The set of sample lines without their values; every line must be valid."""
    series = set()
    for line in page.decode().splitlines():
        if line.startswith("#"):
            continue
        assert _SAMPLE.match(line), f"not a Prometheus sample line: {line!r}"
        series.add(line.rsplit(" ", 1)[0])
    return series


def test_metrics_injection_adds_no_line(serve):
    server = serve()
    code, body, _ = _raw(server, "GET", INJECTION)
    assert code == 404
    code, page, _ = _raw(server, "GET", METRICS)
    assert code == 200
    assert not [line for line in page.decode().splitlines() if "injected_metric" in line]
    assert any('model_name="_unknown_",api="status",status="404"' in s for s in _series(page))


def test_unknown_model_names_do_not_grow_the_page(serve):
    server = serve()
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        def get(path):
            connection.request("GET", path)
            response = connection.getresponse()
            return response.status, response.read()

        for path in ("/v1/models/first", "/v1/models/tiny"):
            get(path)
        connection.request("POST", "/v1/models/first:verb0", body=b"{}")
        connection.getresponse().read()
        get(METRICS)  # a scrape counts itself from the next page on
        before = _series(get(METRICS)[1])
        for i in range(2000):
            assert get(f"/v1/models/name-{i}")[0] == 404
        for i in range(50):  # unknown verbs are not labels either
            connection.request("POST", f"/v1/models/name-{i}:verb{i}", body=b"{}")
            assert connection.getresponse().read()
        code, page = get(METRICS)
    finally:
        connection.close()
    assert code == 200 and _series(page) == before
    assert 'gpt_tf_request_count{model_name="_unknown_",api="status",status="404"} 2001' \
        in page.decode()


def _unescape(value):
    return re.sub(r"\\(.)", lambda m: {"n": "\n"}.get(m.group(1), m.group(1)), value)


def test_metrics_label_values_are_escaped():
    from gpt_tf.serving.server import Metrics

    metrics = Metrics(max_series=3)
    tricky = 'a"b\\c\nd} 1\nevil{x="y'
    metrics.record(tricky, "predict", 200, 0.5)
    metrics.record("tiny", "no-such-api", 404, 0.1)
    for i in range(10):  # past max_series, new names fold into _other_
        metrics.record(f"m{i}", "status", 200, 0.0)
    page = metrics.render().encode()
    series = _series(page)
    names = {_unescape(m) for s in series for m in re.findall(r'model_name="((?:[^"\\]|\\.)*)"', s)}
    assert tricky in names and "_other_" in names and "m9" not in names
    assert {re.search(r'api="([^"]*)"', s).group(1) for s in series} <= \
        {"predict", "other", "status"}


# ---- budgets ------------------------------------------------------------------------------

def test_issue_logits_request_refused_before_it_runs(serve, manager):
    server = serve(max_batch_size=64, max_request_tokens=256, max_response_bytes=40_000)
    calls, restore = _counting_runs(manager)
    try:
        # Issue 15's request: 16 x 256 ids (the tiny model's context is 32).
        code, body, _ = _raw(server, "POST", "/v1/models/tiny:predict", {
            "signature_name": "logits", "inputs": {"token_ids": [[5] * 256] * 16}})
        assert code == 400 and "takes at most 32" in json.loads(body)["error"]
        # Within the context, over the compute budget: 16 rows x 32 tokens > 256.
        code, body, _ = _raw(server, "POST", "/v1/models/tiny:predict", {
            "signature_name": "logits", "inputs": {"token_ids": [[5] * 32] * 16}})
        message = json.loads(body)["error"]
        assert code == 413 and "512 row-tokens" in message and "--max_request_tokens" in message
        # Within compute, over the response budget: 8 x 320 floats as JSON > 40 kB.
        code, body, _ = _raw(server, "POST", "/v1/models/tiny:predict", {
            "signature_name": "logits", "inputs": {"token_ids": [[5] * 32] * 8}})
        assert code == 413 and "--max_response_bytes" in json.loads(body)["error"]
        # Generation counts new tokens: 64 rows x (prompt + 12) > 256.
        code, body, _ = _raw(server, "POST", "/v1/models/tiny:predict", {
            "signature_name": "generate", "instances": [
                {"prompt": "a", "max_new_tokens": 12, "temperature": 0.0, "top_k": 0,
                 "top_p": 1.0, "repetition_penalty": 1.0, "seed": 0}] * 64})
        assert code == 413 and "--max_request_tokens" in json.loads(body)["error"]
        assert calls == []
        assert ServingClient(server.url, "tiny").status()["model_version_status"]
        # A request inside both budgets runs: the last position's logits only.
        code, body, _ = _raw(server, "POST", "/v1/models/tiny:predict", {
            "signature_name": "logits", "inputs": {"token_ids": [[5, 6, 7], [8, 9, 10]]}})
        assert code == 200 and calls == ["logits"]
        logits = np.array(json.loads(body)["outputs"])
        assert logits.shape == (2, 320) and np.all(np.isfinite(logits))
    finally:
        restore()


def test_budget_estimates_guard_full_vocabulary_exports():
    """An older export whose `logits` answer is (B, T, V): refused by its declared shape."""
    from gpt_tf.serving import budgets
    from gpt_tf.serving.server import ServerOptions

    servable = types.SimpleNamespace(
        input_specs={"logits": {"token_ids": ("int32", (None, None))}},
        output_specs={"logits": {"logits": ("float32", (None, None, 8192))}},
        metadata={"model": {"sequence_length": 256}})
    inputs = {"token_ids": np.ones((16, 256), np.int32)}
    cost = budgets.request_cost(servable, "logits", inputs)
    assert (cost.rows, cost.tokens_per_row, cost.row_tokens) == (16, 256, 4096)
    assert budgets.estimate_response_bytes(servable, "logits", cost) > 16 * 256 * 8192 * 8
    with pytest.raises(ServingError) as error:
        budgets.check_request(servable, "logits", inputs, ServerOptions())
    assert error.value.status == 413 and "--max_response_bytes" in error.value.message
    small = {"token_ids": np.ones((1, 4), np.int32)}
    assert budgets.check_request(servable, "logits", small, ServerOptions()).row_tokens == 4


# ---- HTTP ---------------------------------------------------------------------------------

def _recv_response(sock):
    """(first recv, whole response bytes) of one HTTP response with a Content-Length."""
    first = sock.recv(1 << 16)
    data = first
    while b"\r\n\r\n" not in data:
        data += sock.recv(1 << 16)
    head, body = data.split(b"\r\n\r\n", 1)
    length = int(re.search(rb"Content-Length: (\d+)", head).group(1))
    while len(body) < length:
        body += sock.recv(1 << 16)
    return first, data


def test_keep_alive_response_is_one_write(serve):
    """Headers and body arrive together: no second write held back by Nagle."""
    server = serve()
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        for _ in range(5):
            sock.sendall(b"GET /v1/models/tiny HTTP/1.1\r\nHost: x\r\n\r\n")
            first, whole = _recv_response(sock)
            assert first == whole and b"AVAILABLE" in first


def test_conflicting_content_length_is_rejected(serve):
    server = serve()
    body = json.dumps({"signature_name": "tokenize", "instances": ["a"]}).encode()

    def send(lengths):
        headers = "".join(f"Content-Length: {n}\r\n" for n in lengths)
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
            sock.sendall(f"POST /v1/models/tiny:predict HTTP/1.1\r\nHost: x\r\n{headers}\r\n"
                         .encode() + body)
            return _recv_response(sock)[1]

    answer = send([len(body), len(body) + 7])
    assert answer.startswith(b"HTTP/1.1 400") and b"conflicting Content-Length" in answer
    assert b"Connection: close" in answer
    assert send([len(body), len(body)]).startswith(b"HTTP/1.1 200")


def test_slow_headers_hit_the_deadline(serve):
    server = serve(header_timeout=1.0)
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        started = time.monotonic()
        closed = False
        request = b"GET /v1/models/tiny HTTP/1.1\r\n" + b"X-Slow: 1\r\n" * 200
        for byte in request:  # one byte every 50 ms, never finishing the headers
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                closed = True
                break
            time.sleep(0.05)
            if time.monotonic() - started > 8:
                break
        if not closed:
            sock.settimeout(5)
            try:
                closed = sock.recv(100) == b""
            except OSError:
                closed = True
    assert closed, "a client trickling header bytes kept its connection past the deadline"
    assert ServingClient(server.url, "tiny").status()


def test_connection_cap_refuses_extra_connections(serve):
    server = serve(max_connections=4, header_timeout=30.0)
    before = threading.active_count()
    idle = [socket.create_connection(("127.0.0.1", server.port), timeout=30) for _ in range(4)]
    try:
        time.sleep(0.3)
        refused = []
        for _ in range(20):
            try:
                code, body, _ = _raw(server, "GET", "/v1/models/tiny")
                refused.append((code, json.loads(body)["error"]))
            except (ConnectionError, http.client.HTTPException, OSError) as error:
                refused.append((None, str(error)))
        assert all(code in (503, None) for code, _ in refused), refused
        assert any(code == 503 and "--rest_api_max_connections" in text
                   for code, text in refused), refused
        assert threading.active_count() <= before + 4
    finally:
        for sock in idle:
            sock.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if _raw(server, "GET", "/v1/models/tiny")[0] == 200:
            break
        time.sleep(0.1)
    assert _raw(server, "GET", "/v1/models/tiny")[0] == 200


def test_concurrency_slot_is_free_before_the_answer_is_written(serve):
    """With one slot, a client's next request never meets its previous one's slot."""
    from gpt_tf.serving.server import _Handler

    class SlowWriter(_Handler):
        def _send(self, *args, **kwargs):
            super()._send(*args, **kwargs)
            time.sleep(0.2)  # the thread is still "writing" after the client has the answer

    server = serve(max_concurrent_requests=1)
    server.httpd.RequestHandlerClass = SlowWriter
    body = {"signature_name": "tokenize", "instances": ["In the"]}
    codes = [_raw(server, "POST", "/v1/models/tiny:predict", body)[0] for _ in range(6)]
    assert codes == [200] * 6


# ---- clear 400s instead of 500s or "Graph execution error" --------------------------------

def test_small_items_give_clear_400s(serve, manager):
    server = serve()
    code, body, _ = _raw(server, "POST", "/v1/models/tiny:generateStream",
                         b'{"prompt": "a\\ud800b", "max_new_tokens": 2}')
    assert code == 400 and "lone surrogate" in json.loads(body)["error"]
    code, body, _ = _raw(server, "POST", "/v1/models/tiny:predict", {
        "signature_name": "prefill", "inputs": {"token_ids": [[5] * 40]}})
    error = json.loads(body)["error"]
    assert code == 400 and "at most 32" in error and "Graph execution" not in error
    for examples, expected in [([{"text": 5}], "must be a string"),
                               ([{"text": ["a", "b"]}], "must be one string"),
                               ([{"review": "good"}], "has no feature 'text'")]:
        code, body, _ = _raw(server, "POST", "/v1/models/tiny:classify",
                             {"signature_name": "classify", "examples": examples})
        assert code == 400 and expected in json.loads(body)["error"], body
    client = ServingClient(server.url, "tiny")
    assert len(client.classify([{"text": "good"}], context={"unused": "x"})[0]) == 2
    assert client.stream("In the", max_new_tokens=2)


def test_tf_error_messages_lose_the_graph_noise():
    from gpt_tf.serving.models import _clean_tf_message

    raw = ("Graph execution error:\n\nDetected at node add defined at (most recent call last):"
           "\n<stack traces unavailable>\nIncompatible shapes: [300,256] vs. [256,256]\n\t "
           "[[{{node add}}]] [Op:__inference_signature_wrapper_prefill_2042]")
    assert _clean_tf_message(types.SimpleNamespace(message=raw)) == \
        "Incompatible shapes: [300,256] vs. [256,256]"
    raw = ("assertion failed: [top_p must be in (0, 1]; 1 turns it off] [Condition x <= y did "
           "not hold element-wise:] [x (top_p:0) = ] [1.5]\n\t [[{{node Assert}}]]")
    assert _clean_tf_message(types.SimpleNamespace(message=raw)) == \
        "top_p must be in (0, 1]; 1 turns it off"
    raw = "assertion failed: [the batch is empty]\n\t [[{{node assert_positive/Assert}}]]"
    assert _clean_tf_message(types.SimpleNamespace(message=raw)) == "the batch is empty"


def test_grpc_classify_needs_the_text_feature(manager):
    from tensorflow_serving.apis import classification_pb2

    from gpt_tf.serving.server import ModelServer, ServerOptions

    server = ModelServer(manager, port=0, options=ServerOptions(), grpc_port=0).start()
    client = GrpcServingClient(f"127.0.0.1:{server.grpc_port}", "tiny")
    try:
        request = classification_pb2.ClassificationRequest()
        request.model_spec.name = "tiny"
        request.model_spec.signature_name = "classify"
        example = request.input.example_list.examples.add()
        example.features.feature["review"].bytes_list.value.append(b"good")
        with pytest.raises(ServingError) as error:
            client._call(client.prediction.Classify, request)
        assert error.value.status == 400 and "has no feature 'text'" in error.value.message
        assert client.classify([{"text": "good"}])[0][0][0] == "negative"
    finally:
        client.close()
        server.shutdown()


# ---- load and abuse -----------------------------------------------------------------------

def _rss_mb():
    with open("/proc/self/status") as handle:
        line = next(line for line in handle if line.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


@pytest.mark.slow
def test_load_and_abuse_for_seconds(serve):
    """Six clients mix good and hostile requests for 10 s: no 5xx, every good request
    answered, RSS bounded (the server runs in this process)."""
    import random

    server = serve(max_concurrent_requests=8, max_connections=64, header_timeout=2.0,
                   max_batch_size=64, max_request_tokens=1024)
    good = [
        ("POST", "/v1/models/tiny:predict", {"signature_name": "tokenize", "instances": ["a b"]}),
        ("POST", "/v1/models/tiny:predict", {"signature_name": "generate", "instances": [
            {"prompt": "In the", "max_new_tokens": 4, "temperature": 0.0, "top_k": 0,
             "top_p": 1.0, "repetition_penalty": 1.0, "seed": 0}]}),
        ("POST", "/v1/models/tiny:classify", {"signature_name": "classify",
                                              "examples": [{"text": "good"}]}),
        ("GET", "/v1/models/tiny", None),
        ("GET", METRICS, None),
    ]
    hostile = [
        ("POST", "/v1/models/tiny:predict", {"signature_name": "logits",
                                             "inputs": {"token_ids": [[5] * 32] * 64}}),
        ("POST", "/v1/models/tiny:predict", {"signature_name": "logits",
                                             "inputs": {"token_ids": [[5] * 256] * 16}}),
        ("POST", "/v1/models/tiny:predict", b'{"instances": [' + b"[" * 3000),
        ("POST", "/v1/models/tiny:generateStream", b'{"prompt": "\\ud800"}'),
        ("POST", "/v1/models/tiny:classify", {"examples": [{"text": 5}]}),
        ("GET", INJECTION, None),
        ("GET", "/v1/models/random-%d", None),
    ]
    failures, codes, stop = [], [], threading.Event()

    def client(seed):
        rng = random.Random(seed)
        while not stop.is_set():
            is_good = rng.random() < 0.5
            method, path, body = rng.choice(good if is_good else hostile)
            if "%d" in path:
                path = path % rng.randrange(10 ** 9)
            try:
                code, payload, _ = _raw(server, method, path, body)
            except OSError as error:
                failures.append((path, repr(error)))
                continue
            codes.append(code)
            if code >= 500 or (is_good and code != 200):
                failures.append((path, code, payload[:200]))

    def slow_headers():
        while not stop.is_set():
            with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
                try:
                    for _ in range(100):
                        sock.sendall(b"X")
                        time.sleep(0.1)
                except OSError:
                    pass

    rss_before = _rss_mb()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(6)]
    threads += [threading.Thread(target=slow_headers) for _ in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(10)
    stop.set()
    for thread in threads:
        thread.join(timeout=30)
    assert failures == []
    assert len(codes) > 50 and 200 in codes and 413 in codes and 400 in codes
    assert _rss_mb() - rss_before < 500
    assert len(_series(_raw(server, "GET", METRICS)[1])) < 60
