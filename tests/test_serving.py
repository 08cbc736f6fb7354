"""The TF-Serving-compatible REST/gRPC server: real HTTP on loopback, real requests."""

import base64
import concurrent.futures
import http.client
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import threading
import time

import pytest

from gpt_tf.export.manifest import write_manifest
from gpt_tf.serving.client import GrpcServingClient, ServingClient
from gpt_tf.serving.errors import ServerUnavailable, ServingError
from tests.test_export import PROMPTS, exported_bundle

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def bundle(trained_run, tmp_path_factory):
    return exported_bundle(trained_run, tmp_path_factory)


def _copy_version(source, model_dir, version):
    """Copies a version directory the way an exporter should: temp dir, then rename."""
    tmp = os.path.join(model_dir, f".tmp-copy-{version}")
    shutil.copytree(source, tmp)
    os.rename(tmp, os.path.join(model_dir, str(version)))
    return os.path.join(model_dir, str(version))


def managed_copy(bundle_path, model_dir, poll_seconds=None):
    """Version 1 of `bundle_path` copied into `model_dir`, loaded by a new `ModelManager`
    (polling every `poll_seconds` if given) that has it AVAILABLE."""
    from gpt_tf.serving.models import ModelManager, ModelSpec

    os.makedirs(model_dir, exist_ok=True)
    _copy_version(bundle_path, str(model_dir), 1)
    manager = ModelManager([ModelSpec("tiny", str(model_dir))], warmup=False)
    manager.poll_once()
    assert manager.wait_until_available("tiny")
    if poll_seconds:
        manager.start_polling(poll_seconds)
    return manager


@pytest.fixture(scope="module")
def server(bundle, tmp_path_factory):
    from gpt_tf.export.bundle import write_serving_bundle
    from gpt_tf.serving.models import ModelManager, specs_from_config_file
    from gpt_tf.serving.server import ModelServer, ServerOptions

    base = tmp_path_factory.mktemp("serving")
    os.makedirs(base / "tiny")
    _copy_version(bundle["path"], str(base / "tiny"), 1)
    write_serving_bundle(str(base))
    manager = ModelManager(specs_from_config_file(str(base / "models.config")))
    manager.poll_once()
    options = ServerOptions(max_body_bytes=64 << 10, max_concurrent_requests=8,
                            max_batch_size=8, max_string_bytes=2048)
    srv = ModelServer(manager, port=0, options=options, grpc_port=0).start()
    yield srv
    srv.shutdown()


@pytest.fixture(scope="module")
def client(server):
    return ServingClient(server.url, "tiny")


def _raw(server, method, path, body=None, headers=None):
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    try:
        data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
        connection.request(method, path, body=data, headers=headers or {})
        response = connection.getresponse()
        payload = response.read()
        return response.status, payload, dict(response.getheaders())
    finally:
        connection.close()


# ---- the API ------------------------------------------------------------------------------

def test_status_metadata_versions_labels(server, client):
    status = client.status()["model_version_status"]
    assert status == [{"version": "1", "state": "AVAILABLE",
                       "status": {"error_code": "OK", "error_message": ""}}]
    assert ServingClient(server.url, "tiny", version=1).status() == client.status()
    assert ServingClient(server.url, "tiny", label="stable").status() == client.status()
    metadata = client.metadata()
    assert metadata["model_spec"] == {"name": "tiny", "signature_name": "", "version": "1"}
    signatures = metadata["metadata"]["signature_def"]["signature_def"]
    prompt = signatures["serving_default"]["inputs"]["prompt"]
    assert prompt["dtype"] == "DT_STRING" and prompt["tensor_shape"]["dim"][0]["size"] == "-1"
    assert signatures["classify"]["method_name"] == "tensorflow/serving/classify"
    for url, message in [("/v1/models/nope", "nope"), ("/v1/models/tiny/versions/7", "7"),
                         ("/v1/models/tiny/labels/beta", "beta"), ("/v2/x", "Malformed")]:
        code, body, headers = _raw(server, "GET", url)
        assert code == 404 and message in json.loads(body)["error"]
        assert headers["Content-Type"] == "application/json"


def test_predict_row_columnar_b64_and_classify(server, client, bundle):
    from gpt_tf.export.saved_model import load_saved_model

    loaded = load_saved_model(bundle["path"])
    import tensorflow as tf

    direct = [c.decode() for c in loaded.signatures["serving_default"](
        prompt=tf.constant(PROMPTS[:2]))["completion"].numpy()]
    assert client.complete(PROMPTS[:2]) == direct
    columnar = client.predict(inputs={"prompt": PROMPTS[:2]})["outputs"]
    assert columnar == direct
    b64 = client.predict(instances=[{"b64": base64.b64encode(p.encode()).decode()}
                                    for p in PROMPTS[:2]])["predictions"]
    assert b64 == direct
    generated = client.generate(PROMPTS[:2], max_new_tokens=8)
    assert [g["completion"] for g in generated] == direct
    assert {g["stop_reason"] for g in generated} <= {"max_new_tokens", "stop_token"}
    scores = client.score(["In the beginning"])[0]
    assert scores["num_tokens"] > 0 and scores["perplexity"] > 1
    ids = client.tokenize(["In the beginning"])
    assert client.detokenize(ids) == ["In the beginning"]
    results = client.classify([{"text": "good"}, {"text": "bad"}])
    assert [label for label, _ in results[0]] == ["negative", "positive"]
    assert abs(sum(score for _, score in results[0]) - 1.0) < 1e-5
    labelled = ServingClient(server.url, "tiny", label="canary")
    assert labelled.classify([{"text": "good"}]) == results[:1]
    translated = client.predict(instances=[{"source": "hello"}],
                                signature_name="translate")["predictions"]
    assert isinstance(translated[0], str)


def test_limits_give_4xx(server, client):
    long_prompt = "x" * 5000
    with pytest.raises(ServingError) as error:
        client.complete([long_prompt])
    assert error.value.status == 400 and "limit is 2048" in error.value.message
    with pytest.raises(ServingError) as error:
        client.complete(["a"] * 9)
    assert error.value.status == 400 and "--max_batch_size" in error.value.message
    with pytest.raises(ServingError) as error:
        client.generate(["a"], max_new_tokens=13)
    assert error.value.status == 400 and "max_new_tokens must be <= 12" in error.value.message
    code, body, _ = _raw(server, "POST", "/v1/models/tiny:predict",
                         b'{"instances": ["' + b"a" * (70 << 10) + b'"]}')
    assert code == 413 and "--max_body_bytes" in json.loads(body)["error"]
    # Over the concurrency limit: every slot taken -> 429 with Retry-After.
    limiter = server.httpd.limiter
    taken = 0
    while limiter.acquire(blocking=False):
        taken += 1
    try:
        code, body, headers = _raw(server, "POST", "/v1/models/tiny:predict",
                                   {"instances": ["a"]})
        assert code == 429 and headers.get("Retry-After") == "1"
    finally:
        for _ in range(taken):
            limiter.release()
    assert client.complete(["a"])


def _fuzz_cases(rng):
    valid = {"signature_name": "generate", "instances": [
        {"prompt": "In the", "max_new_tokens": 4, "temperature": 0.0, "top_k": 0, "top_p": 1.0,
         "repetition_penalty": 1.0, "seed": 0}]}
    odd_values = [None, True, -1, 0, 2 ** 31, 2 ** 63, 1e400, -1e-9, 0.5, "", "x" * 3000,
                  "\ud800", [], [1, [2]], {}, {"b64": "!!"}, {"b64": 5}, [[1, 2], [3]], 1e-45]
    paths = ["/v1/models/tiny:predict", "/v1/models/tiny/versions/1:predict",
             "/v1/models/tiny/labels/stable:predict", "/v1/models/tiny:classify",
             "/v1/models/tiny:generateStream", "/v1/models/nope:predict",
             "/v1/models/tiny/versions/99999999999999999999:predict", "/v1/models/tiny:regress",
             "/v1/models/%ff%fe:predict", "/v1/models/tiny/metadata", "/v1//models", "/"]
    cases = [
        ("POST", paths[0], b"", {}), ("POST", paths[0], b"{", {}),
        ("POST", paths[0], b"\xff\xfe", {}), ("POST", paths[0], b"null", {}),
        ("POST", paths[0], b"[" * 5000 + b"]" * 5000, {}),
        ("POST", paths[0], b'{"instances": NaN}', {}),
        ("POST", paths[0], b'{"instances": [1], "inputs": [1]}', {}),
        ("POST", paths[0], b'{"instances": []}', {}),
        ("POST", paths[0], b'{"inputs": {"prompt": [["a"], ["b"]]}}', {}),
        ("POST", paths[0], b'{"signature_name": 5, "instances": ["a"]}', {}),
        ("POST", paths[0], b'{"signature_name": "detokenize", "instances": [[1, 99999]]}', {}),
        ("POST", paths[0], b'{"signature_name": "decode", "instances": [{"token_id": [1], '
                           b'"position": 0, "cache": 1}]}', {}),
        ("POST", paths[0], b'{"signature_name": "logits", "inputs": {"token_ids": '
                           + json.dumps([[1] * 40]).encode() + b"}}", {}),
        ("POST", paths[0], b'{"signature_name": "generate_ids", "inputs": {"token_ids": [[2]],'
                           b' "lengths": [5], "max_new_tokens": [2], "temperature": [0], '
                           b'"top_k": [0], "top_p": [1], "repetition_penalty": [1], '
                           b'"seed": [0]}}', {}),
        ("POST", paths[3], b'{"examples": [{"text": 5}]}', {}),
        ("POST", paths[3], b'{"signature_name": "serving_default", "examples": [{"a": "b"}]}',
         {}),
        ("POST", paths[3], b'{"signature_name": "classify", "examples": [{"text": [1.5, "a"]}]}',
         {}),
        ("POST", paths[4], b'{"prompt": 5}', {}),
        ("POST", paths[4], b'{"prompt": "a", "max_new_tokens": 100}', {}),
        ("POST", paths[4], b'{"prompt": "a", "top_p": 0}', {}),
        ("POST", paths[0], b"{}", {"Content-Length": "-4"}),
        ("POST", paths[0], b"{}", {"Content-Length": "abc"}),
        ("POST", paths[0], b"{}", {"Transfer-Encoding": "chunked"}),
        ("GET", paths[0], None, {}), ("PUT", paths[0], b"{}", {}),
        ("DELETE", paths[9], None, {}), ("FOO", paths[0], None, {}),
    ]
    cases += [("POST", path, json.dumps(valid).encode(), {}) for path in paths]
    for _ in range(60):
        body = json.loads(json.dumps(valid))
        instance = body["instances"][0]
        for key in rng.sample(sorted(instance), rng.randint(1, 3)):
            choice = rng.random()
            if choice < 0.2:
                del instance[key]
            else:
                instance[key] = rng.choice(odd_values)
        if rng.random() < 0.2:
            body["instances"] = body["instances"] * rng.randint(2, 12)
        if rng.random() < 0.1:
            body["extra"] = 1
        data = json.dumps(body).encode()
        if rng.random() < 0.2:
            cut = rng.randint(1, len(data) - 1)
            data = data[:cut]
        cases.append(("POST", rng.choice(paths[:5]), data, {}))
    for _ in range(20):
        cases.append(("POST", rng.choice(paths), bytes(rng.getrandbits(8) for _ in
                                                       range(rng.randint(0, 300))), {}))
    return cases


def test_fuzz_never_5xx_and_server_survives(server, client):
    rng = random.Random(1234)
    seen = set()
    for method, path, body, headers in _fuzz_cases(rng):
        code, payload, _ = _raw(server, method, path, body, headers)
        assert code < 500, (method, path, body[:200] if body else body, code, payload[:300])
        if code >= 400 and method != "HEAD":
            assert "error" in json.loads(payload), payload[:200]
        seen.add(code)
    # Garbage below HTTP: a bad request line, a body shorter than its length.
    for raw in [b"GARBAGE\r\n\r\n", b"GET /v1/models/tiny HTTP/9.9\r\n\r\n",
                b"POST /v1/models/tiny:predict HTTP/1.1\r\nContent-Length: 100\r\n\r\n{\"in"]:
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
            sock.sendall(raw)
            sock.shutdown(socket.SHUT_WR)
            answer = sock.recv(4096)
        assert answer.startswith(b"HTTP/1."), answer[:200]
        assert int(answer.split(b" ")[1]) < 500, answer[:200]
    assert {200, 400, 404, 405, 411} <= seen
    assert client.status()["model_version_status"][0]["state"] == "AVAILABLE"
    assert client.complete(["In the"])
    code, metrics, _ = _raw(server, "GET", "/monitoring/prometheus/metrics")
    assert code == 200 and b'status="500"' not in metrics and b"gpt_tf_request_count" in metrics


def test_concurrent_requests_equal_serial(server, client):
    prompts = [f"{p} {i}" for i in range(4) for p in PROMPTS]
    serial = [client.generate([p], max_new_tokens=8)[0]["completion"] for p in prompts]
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        parallel = list(pool.map(lambda p: client.generate([p], max_new_tokens=8)[0]
                                 ["completion"], prompts))
    assert parallel == serial
    batched = [g["completion"] for g in client.generate(prompts[:8], max_new_tokens=8)]
    assert batched == serial[:8]


def test_stream_extension_matches_generate(client):
    pieces = list(client.stream(PROMPTS[0], max_new_tokens=8))
    summary = pieces.pop()
    assert summary["done"] and "".join(pieces) == summary["completion"][:len("".join(pieces))]
    generated = client.generate([PROMPTS[0]], max_new_tokens=8)[0]
    assert summary["completion"] == generated["completion"]
    assert summary["stop_reason"] == generated["stop_reason"]


def test_sampled_stream_matches_generate(client):
    """Issue 15: sampled text differed (XLA's categorical sampler is not the CPU kernel's)."""
    completions = set()
    for seed, prompt in enumerate(PROMPTS):
        sampling = dict(max_new_tokens=10, temperature=1.0, top_k=40, top_p=0.95,
                        repetition_penalty=1.2, seed=seed)
        summary = list(client.stream(prompt, **sampling))[-1]
        generated = client.generate([prompt], **sampling)[0]
        assert summary["completion"] == generated["completion"], (seed, prompt)
        completions.add(summary["completion"])
    greedy = client.generate([PROMPTS[0]], max_new_tokens=10)[0]["completion"]
    assert len(completions) > 1 or greedy not in completions  # it really sampled


def test_the_in_process_client_streams_what_the_server_streams(client, bundle):
    """Issue 16: one host decode loop (`gpt_tf/export/host_loop.py`) for both, same sampler."""
    from gpt_tf.clients import open_client

    local = open_client(bundle["path"])
    try:
        for sampling in (dict(max_new_tokens=10),
                         dict(max_new_tokens=10, temperature=1.0, top_k=40, top_p=0.95,
                              repetition_penalty=1.2, seed=5)):
            events = list(client.stream(PROMPTS[1], **sampling))
            summary = events.pop()
            pieces = []
            mine = local.generate([PROMPTS[1]], stream=lambda row, text: pieces.append(text),
                                  **sampling)[0]
            assert (mine.text, mine.num_tokens, mine.stop_reason) == (
                summary["completion"], summary["num_tokens"], summary["stop_reason"]), sampling
            assert "".join(pieces) == mine.text and "".join(events) == mine.text[:len(
                "".join(events))]
    finally:
        local.close()


def test_shutdown_stops_only_a_manager_it_owns(tmp_path):
    from gpt_tf.serving.models import ModelManager, ModelSpec
    from gpt_tf.serving.server import ModelServer

    manager = ModelManager([ModelSpec("tiny", str(tmp_path))], warmup=False)
    manager.start_polling(0.05)
    try:
        ModelServer(manager, port=0).start().shutdown()
        assert manager._thread.is_alive()  # the caller's manager keeps polling
        ModelServer(manager, port=0, owns_manager=True).start().shutdown()
        assert not manager._thread.is_alive()
    finally:
        manager.stop()


def test_grpc_client(server, client):
    grpc_client = GrpcServingClient(f"127.0.0.1:{server.grpc_port}", "tiny")
    try:
        assert grpc_client.status() == [(1, "AVAILABLE", "")]
        assert "generate" in grpc_client.metadata().signature_def
        rest = client.generate(PROMPTS[:2], max_new_tokens=6)
        assert grpc_client.generate(PROMPTS[:2], max_new_tokens=6) == rest
        assert grpc_client.classify([{"text": "good"}])[0][0][0] == "negative"
        with pytest.raises(ServingError) as error:
            grpc_client.generate(["a"], max_new_tokens=99)
        assert error.value.status == 400
        with pytest.raises(ServingError) as error:
            GrpcServingClient(f"127.0.0.1:{server.grpc_port}", "nope").status()
        assert error.value.status == 404
    finally:
        grpc_client.close()


def test_client_errors_are_clear():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(ServerUnavailable, match="cannot reach the model server"):
        ServingClient(f"http://127.0.0.1:{port}", "tiny", timeout=5).status()


# ---- hot swap, broken and half-written versions -------------------------------------------

def _wait(predicate, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_hot_swap_keeps_serving_through_bad_versions(bundle, tmp_path):
    from gpt_tf.serving.server import ModelServer

    model_dir = tmp_path / "tiny"
    manager = managed_copy(bundle["path"], model_dir, poll_seconds=0.1)
    srv = ModelServer(manager, port=0).start()
    client = ServingClient(srv.url, "tiny")
    states = lambda: {s["version"]: s for s in client.status()["model_version_status"]}  # noqa
    try:
        expected = client.complete(["In the"])
        # A new good version replaces the old one.
        _copy_version(bundle["path"], str(model_dir), 2)
        assert _wait(lambda: states().get("2", {}).get("state") == "AVAILABLE")
        assert _wait(lambda: "1" not in states() or states()["1"]["state"] == "END")
        assert client.complete(["In the"]) == expected
        # A broken graph with a valid manifest: load fails, version 2 keeps serving.
        broken = _copy_version(bundle["path"], str(model_dir), 3)
        with open(os.path.join(broken, "saved_model.pb"), "r+b") as handle:
            handle.seek(40)
            handle.write(b"\xde\xad\xbe\xef" * 16)
        os.remove(os.path.join(broken, "SHA256SUMS"))
        write_manifest(broken)
        assert _wait(lambda: states().get("3", {}).get("state") == "END")
        assert "failed to load" in states()["3"]["status"]["error_message"]
        assert states()["2"]["state"] == "AVAILABLE"
        assert client.complete(["In the"]) == expected
        assert ServingClient(srv.url, "tiny", version=2).complete(["In the"]) == expected
        # A tampered file: the manifest check refuses it.
        tampered = _copy_version(bundle["path"], str(model_dir), 4)
        data = next(p for p in os.listdir(os.path.join(tampered, "variables"))
                    if p.startswith("variables.data"))
        with open(os.path.join(tampered, "variables", data), "r+b") as handle:
            handle.seek(8)
            handle.write(b"\x7f\x7f\x7f\x7f")
        assert _wait(lambda: states().get("4", {}).get("state") == "END")
        assert "sha256 mismatch" in states()["4"]["status"]["error_message"]
        # Half-written: files still arriving, no manifest yet -> ignored.
        half = model_dir / "5"
        os.makedirs(half / "variables")
        shutil.copy(os.path.join(bundle["path"], "saved_model.pb"), half)
        time.sleep(0.5)
        assert "5" not in states()
        assert client.complete(["In the"]) == expected
        with pytest.raises(ServingError) as error:
            ServingClient(srv.url, "tiny", version=4).complete(["a"])
        assert error.value.status == 404
    finally:
        srv.shutdown()
        manager.stop()


def test_out_of_order_copy_and_removals_fail_no_request(bundle, tmp_path):
    """Issue 15: a copy lands out of order while the old version is removed, then the
    newest is removed; a client sending all along never fails."""
    from gpt_tf.serving.server import ModelServer

    model_dir = tmp_path / "tiny"
    manager = managed_copy(bundle["path"], model_dir, poll_seconds=0.1)
    srv = ModelServer(manager, port=0).start()
    client = ServingClient(srv.url, "tiny")
    states = lambda: {s["version"]: s for s in client.status()["model_version_status"]}  # noqa
    answers, failures, stop = [], [], threading.Event()

    def keep_asking():
        while not stop.is_set():
            try:
                answers.append(client.tokenize(["In the"]))
            except Exception as error:  # any failure is what this test is about
                failures.append(repr(error))
            time.sleep(0.02)

    asker = threading.Thread(target=keep_asking, daemon=True)
    asker.start()
    try:
        new = model_dir / "2"
        os.makedirs(new)
        for name in ("saved_model.pb", "SHA256SUMS"):
            shutil.copy(os.path.join(bundle["path"], name), new)
        assert _wait(lambda: states().get("2", {}).get("state") == "END")
        assert "missing" in states()["2"]["status"]["error_message"]
        shutil.rmtree(model_dir / "1")  # the served version's files go meanwhile
        time.sleep(1.0)
        assert states()["1"]["state"] == "AVAILABLE"
        for entry in sorted(os.listdir(bundle["path"])):  # the rest lands, seconds later
            source = os.path.join(bundle["path"], entry)
            if os.path.isdir(source):
                shutil.copytree(source, new / entry)
            elif entry not in ("saved_model.pb", "SHA256SUMS"):
                shutil.copy(source, new)
        assert _wait(lambda: states().get("2", {}).get("state") == "AVAILABLE")
        assert _wait(lambda: "1" not in states())
        # Removing the newest version falls back to the next one.
        _copy_version(bundle["path"], str(model_dir), 3)
        assert _wait(lambda: states().get("3", {}).get("state") == "AVAILABLE")
        assert _wait(lambda: states()["2"]["state"] == "END")
        shutil.rmtree(model_dir / "3")
        assert _wait(lambda: states().get("2", {}).get("state") == "AVAILABLE"
                     and "3" not in states())
    finally:
        stop.set()
        asker.join(timeout=30)
        srv.shutdown()
        manager.stop()
    assert failures == [] and len(answers) > 20


def test_serve_cli_subprocess(bundle, tmp_path):
    """`gpt-tf serve --model_base_path ...` in its own process answers real requests."""
    base = tmp_path / "tiny"
    os.makedirs(base)
    _copy_version(bundle["path"], str(base), 1)
    command = [sys.executable, "-m", "gpt_tf.cli", "serve", "--model_base_path", str(base),
               "--model_name", "tiny", "--rest_api_port", "0", "--enable_model_warmup",
               "false", "--file_system_poll_wait_seconds", "0"]
    process = subprocess.Popen(command, cwd=ROOT, stderr=subprocess.PIPE, text=True)
    lines = []
    try:
        url = None
        reader = threading.Thread(target=lambda: lines.extend(iter(process.stderr.readline, "")),
                                  daemon=True)
        reader.start()
        assert _wait(lambda: any("serving REST on" in line for line in lines), timeout=120), \
            "".join(lines)[-2000:]
        url = next(line for line in lines if "serving REST on" in line).split()[3]
        client = ServingClient(url, "tiny")
        assert client.status()["model_version_status"][0]["state"] == "AVAILABLE"
        assert len(client.complete(["In the", "Four"])) == 2
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert process.returncode == 0, "".join(lines)[-2000:]


def test_serve_cli_user_errors(tmp_path, capsys):
    from gpt_tf.cli import main

    assert main(["serve", "--model_base_path", str(tmp_path / "missing")]) == 2
    (tmp_path / "bad.config").write_text("model_config_list { config { name: ")
    assert main(["serve", "--model_config_file", str(tmp_path / "bad.config")]) == 2
    # Checked before any model loads: 99999 used to end in an OverflowError traceback.
    assert main(["serve", "--model_base_path", str(tmp_path), "--rest_api_port", "99999"]) == 2
    # A version folder given as the base path: TF Serving would poll it forever.
    version = tmp_path / "model" / "1"
    version.mkdir(parents=True)
    (version / "saved_model.pb").write_bytes(b"")
    assert main(["serve", "--model_base_path", str(version), "--rest_api_port", "0"]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line]
    assert len(lines) == 4 and all(line.startswith("gpt-tf: error:") for line in lines)
    assert "--rest_api_port must be in [0, 65535]" in lines[2]
    assert "is itself a SavedModel" in lines[3] and f"'{tmp_path / 'model'}'" in lines[3]
    # Not in a version folder at all, and through a model config file.
    (tmp_path / "export" / "gpt").mkdir(parents=True)
    (tmp_path / "export" / "gpt" / "saved_model.pb").write_bytes(b"")
    (tmp_path / "models.config").write_text(
        'model_config_list { config { name: "gpt" base_path: "%s" } }'
        % (tmp_path / "export" / "gpt"))
    assert main(["serve", "--model_config_file", str(tmp_path / "models.config"),
                 "--rest_api_port", "0"]) == 2
    error = capsys.readouterr().err
    assert "model gpt: base path" in error and "move it into a version folder" in error
    # Budget flags: 0 turns a budget off, a negative value is a mistake.
    (tmp_path / "empty").mkdir()
    for flag, value in (("--max_request_tokens", "-1"), ("--max_response_bytes", "-5"),
                        ("--rest_api_max_connections", "0"),
                        ("--rest_api_header_timeout_seconds", "0")):
        assert main(["serve", "--model_base_path", str(tmp_path / "empty"), flag, value]) == 2
        assert flag in capsys.readouterr().err
