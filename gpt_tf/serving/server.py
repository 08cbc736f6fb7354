"""A TF-Serving-compatible REST server over gpt-tf SavedModels.

Implements the subset of TF Serving's REST API the suite uses, with TF
Serving's URLs, bodies and error format (`{"error": "..."}`):

    GET  /v1/models/NAME[/versions/N | /labels/L]             model status
    GET  /v1/models/NAME[/versions/N | /labels/L]/metadata    signature defs
    POST /v1/models/NAME[/versions/N | /labels/L]:predict     row or columnar
    POST /v1/models/NAME[/versions/N | /labels/L]:classify    tf.Example classify
    GET  /monitoring/prometheus/metrics                        request counters

and one clearly marked extension (not in TF Serving):

    POST /v1/models/NAME[...]:generateStream   server-sent events, one per token

Status codes: 400 malformed or invalid input (and conflicting
Content-Length headers), 404 unknown model, version, label, signature or
URL, 405 other methods, 411 body without length, 413 body over
`--max_body_bytes` or a request over its budgets (`--max_request_tokens`,
`--max_response_bytes`, see `budgets.py`), 429 over
`--max_concurrent_requests`, 503 over `--rest_api_max_connections` or a full
batch queue (`--enable_batching`, see `batching.py`). A 500 means a bug in
this server (the fuzz test asserts there are none).

With batching on, requests for a signature that merges (`generate`,
`classify`, ...) wait in its batch queue, bounded by `max_enqueued_batches`,
instead of taking one of the `--max_concurrent_requests` slots.

Connections: every response goes out in one write with TCP_NODELAY set (a
header write followed by a body write under Nagle cost keep-alive clients
about 40 ms per response); a connection must deliver its request line and
headers within `--rest_api_header_timeout_seconds` (idle keep-alive
connections close after it too), and at most `--rest_api_max_connections`
are served at once, one thread each.
"""

import dataclasses
import json
import logging
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

from gpt_tf.errors import UserError
from gpt_tf.export.signatures import CLASSIFY_METHOD
from gpt_tf.serving import budgets, rest
from gpt_tf.serving.errors import ServingError, bad_request, not_found

log = logging.getLogger("gpt_tf.serving")

_MODEL_URL = re.compile(
    r"^/v1/models/(?P<name>[^/:]+)"
    r"(?:/versions/(?P<version>[0-9]{1,18})|/labels/(?P<label>[^/:]+))?"
    r"(?:(?P<metadata>/metadata)|:(?P<verb>[A-Za-z]+))?$")
METRICS_PATH = "/monitoring/prometheus/metrics"
_APIS = ("predict", "classify", "generateStream", "status", "metadata", "metrics", "other")
# The metrics label for a model name that is not served (404s): a name from
# the URL never becomes a label, so clients cannot grow the page.
UNKNOWN_MODEL = "_unknown_"


@dataclasses.dataclass
class ServerOptions:
    """Limits and behaviour of the REST server.

    Attributes:
        max_body_bytes: larger request bodies get 413.
        max_concurrent_requests: predict/classify/stream requests running at
            once; more get 429.
        max_batch_size: instances (rows) per request.
        max_string_bytes: bytes per string input (prompt length bound).
        max_new_tokens: server cap on `max_new_tokens` (0: the export's limit).
        max_request_tokens: compute budget per request, rows x tokens
            (`budgets.RequestCost`); 0: none.
        max_response_bytes: largest encoded response; 0: none.
        socket_timeout: seconds a connection may stall while sending a body
            or reading the answer.
        header_timeout: seconds a connection has to send its request line and
            headers (also how long an idle keep-alive connection stays open).
        max_connections: connections served at once (one thread each); more
            get 503.
        metrics_path: Prometheus endpoint path.
        batching: `batching.BatchingParameters` (`--enable_batching`), or None.
    """

    max_body_bytes: int = 4 << 20
    max_concurrent_requests: int = 8
    max_batch_size: int = 64
    max_string_bytes: int = 16384
    max_new_tokens: int = 0
    max_request_tokens: int = 8192
    max_response_bytes: int = 32 << 20
    socket_timeout: float = 30.0
    header_timeout: float = 10.0
    max_connections: int = 256
    metrics_path: str = METRICS_PATH
    batching: object = None

    def limits(self):
        return rest.Limits(self.max_batch_size, self.max_string_bytes)


def escape_label_value(value):
    """A Prometheus label value per the text exposition format: \\, \" and \n escaped."""
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Metrics:
    """Request counters and latency sums, Prometheus text format.

    Label values are escaped, and the series are bounded: callers pass only
    served model names (others as `UNKNOWN_MODEL`) and known APIs, and past
    `max_series` counters new model names fold into `_other_`.

    Args:
        max_series: most distinct (model, api, status) counters.
    """

    def __init__(self, max_series=2000):
        self._lock = threading.Lock()
        self.max_series = max_series
        self.counts = {}
        self.latency = {}

    def record(self, model, api, status, seconds):
        api = api if api in _APIS else "other"
        key = (model or "", api, str(int(status)))
        with self._lock:
            if key not in self.counts and len(self.counts) >= self.max_series:
                key = ("_other_",) + key[1:]
            self.counts[key] = self.counts.get(key, 0) + 1
            total, count = self.latency.get(key[:2], (0.0, 0))
            self.latency[key[:2]] = (total + seconds, count + 1)

    def render(self):
        lines = ["# TYPE gpt_tf_request_count counter"]
        esc = escape_label_value
        with self._lock:
            for (model, api, status), count in sorted(self.counts.items()):
                lines.append(f'gpt_tf_request_count{{model_name="{esc(model)}",api="{api}",'
                             f'status="{status}"}} {count}')
            lines.append("# TYPE gpt_tf_request_latency_seconds summary")
            for (model, api), (total, count) in sorted(self.latency.items()):
                labels = f'model_name="{esc(model)}",api="{api}"'
                lines.append(f"gpt_tf_request_latency_seconds_sum{{{labels}}} {total:.6f}")
                lines.append(f"gpt_tf_request_latency_seconds_count{{{labels}}} {count}")
        return "\n".join(lines) + "\n"


class _Slot:
    """One of the `--max_concurrent_requests` slots; `release` is idempotent.

    Released when the work is done, before the answer is written, so a client
    that sends its next request as soon as it reads an answer never meets its
    own slot still taken (a 429 at exactly the limit).
    """

    def __init__(self, limiter):
        self._limiter = limiter
        self._held = limiter is not None

    def release(self):
        if self._held:
            self._held = False
            self._limiter.release()


class _Deadlines:
    """Closes connections that do not deliver a request's headers (or body) in time.

    A per-read socket timeout cannot bound a client that trickles a byte
    every few seconds; this one thread checks every connection's deadline
    and shuts the socket down when it passes.
    """

    def __init__(self, interval=0.25):
        self._lock = threading.Lock()
        self._deadlines = {}  # handler -> monotonic deadline
        self._stop = threading.Event()
        self._interval = interval
        self._thread = threading.Thread(target=self._run, name="gpt-tf-deadlines",
                                        daemon=True)
        self._thread.start()

    def arm(self, handler, seconds):
        with self._lock:
            self._deadlines[handler] = time.monotonic() + seconds

    def disarm(self, handler):
        with self._lock:
            self._deadlines.pop(handler, None)

    def _run(self):
        import socket

        while not self._stop.wait(self._interval):
            now = time.monotonic()
            with self._lock:
                late = [h for h, deadline in self._deadlines.items() if deadline <= now]
                for handler in late:
                    del self._deadlines[handler]
            for handler in late:
                handler.timed_out = True
                try:
                    handler.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=5)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "gpt-tf-serve"
    error_content_type = "application/json"
    # One write per response: the status line, headers and body are buffered
    # and flushed together (`_send`); TCP_NODELAY for larger bodies and streams.
    wbufsize = 1 << 16
    disable_nagle_algorithm = True

    def setup(self):
        self.timeout = self.server.options.socket_timeout
        self.timed_out = False
        self._started = None
        self._body_read = False
        super().setup()

    def handle_expect_100(self):
        ok = super().handle_expect_100()
        self.wfile.flush()  # the buffered "100 Continue" must go out now
        return ok

    def handle_one_request(self):
        # The deadline covers waiting for the request line (an idle keep-alive
        # connection) and reading the headers; `_dispatch` disarms it.
        self.server.deadlines.arm(self, self.server.options.header_timeout)
        try:
            super().handle_one_request()
        finally:
            self.server.deadlines.disarm(self)
        if self.timed_out:
            self.close_connection = True

    def log_message(self, format, *args):  # noqa: A002  (BaseHTTPRequestHandler's name)
        log.debug("%s - %s", self.address_string(), format % args)

    # -- responses ---------------------------------------------------------------------------

    def _send(self, status, body, content_type="application/json", headers=None):
        data = body if isinstance(body, bytes) else body.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self._record(status)  # before the write: a scrape right after the answer sees it
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        self.wfile.flush()

    def _record(self, status):
        """Counts this request in the metrics, once."""
        if self._started is None:
            return
        seconds, self._started = time.perf_counter() - self._started, None
        self.server.metrics.record(self._metrics_model(), self._api, status, seconds)

    def _send_json(self, status, payload, headers=None):
        self._send(status, json.dumps(payload, ensure_ascii=False), headers=headers)

    def send_error(self, code, message=None, explain=None):
        # BaseHTTPRequestHandler's own errors (bad request line, unsupported
        # method...) as TF Serving-style JSON; never a 5xx for client mistakes.
        if code >= 500:  # 501 unsupported method, 505 bad HTTP version: client mistakes
            code = 405 if code == 501 else 400
        if self.request_version == "HTTP/0.9":  # unparsable request line: still send a status
            self.request_version = "HTTP/1.0"
        self.close_connection = True
        try:
            self._send_json(code, {"error": message or self.responses.get(code, ("",))[0]})
        except OSError:
            pass

    # -- dispatch ----------------------------------------------------------------------------

    def do_GET(self):
        self._dispatch(self._get)

    def do_POST(self):
        self._dispatch(self._post)

    def do_HEAD(self):
        self._dispatch(self._get)

    def _method_not_allowed(self):
        self._dispatch(lambda: self._raise(ServingError(405, f"method {self.command} is not "
                                                             "supported; use GET or POST")))

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _method_not_allowed

    @staticmethod
    def _raise(error):
        raise error

    def _dispatch(self, handler):
        self.server.deadlines.disarm(self)
        self._started = time.perf_counter()
        self._body_read = False
        self._model, self._api, status = None, "other", 500
        if self.timed_out:  # headers cut short by the deadline: nobody to answer
            self.close_connection = True
            self._record(408)
            return
        try:
            status = handler() or 200
        except ServingError as error:
            status = error.status
            if status == 411 or self._body_left():
                self.close_connection = True
            headers = {"Retry-After": "1"} if status in (429, 503) else None
            self._send_json(status, {"error": error.message}, headers)
        except UserError as error:
            status = 400
            self.close_connection = self.close_connection or self._body_left()
            self._send_json(400, {"error": str(error)})
        except (ConnectionError, TimeoutError, OSError) as error:
            status = 499
            log.debug("connection problem: %s", error)
            self.close_connection = True
        except Exception as error:  # a bug: report it, keep serving
            log.exception("internal error on %s %s", self.command, self.path)
            status = 500
            self.close_connection = True
            try:
                self._send_json(500, {"error": f"internal error: {type(error).__name__}"})
            except OSError:
                pass
        finally:
            self._record(status)  # requests answered without `_send` (streams, dropped)

    def _body_left(self):
        """Whether the request has a body this handler did not read (it would be taken
        for the next request on a keep-alive connection)."""
        if self._body_read:
            return False
        length = (self.headers.get("Content-Length") or "0").strip() if self.headers else "0"
        chunked = "chunked" in ((self.headers.get("Transfer-Encoding") if self.headers
                                 else None) or "").lower()
        return chunked or length != "0"

    def _metrics_model(self):
        if not self._model:
            return ""
        return self._model if self.server.manager.has_model(self._model) else UNKNOWN_MODEL

    def _match(self):
        path = urlsplit(self.path).path
        match = _MODEL_URL.match(path)
        if not match:
            return path, None
        return path, match

    def _get(self):
        path, match = self._match()
        if path == self.server.options.metrics_path:
            self._api = "metrics"
            page = self.server.metrics.render()
            if self.server.batcher is not None:
                page += "\n".join(self.server.batcher.render(escape_label_value)) + "\n"
            self._send(200, page, "text/plain; version=0.0.4")
            return 200
        if match is None or match.group("verb"):
            raise not_found(f"Malformed request: {self.command} {path}")
        name, version, label = self._target(match)
        manager = self.server.manager
        if match.group("metadata"):
            self._api = "metadata"
            self._send_json(200, manager.metadata(name, version, label))
        else:
            self._api = "status"
            self._send_json(200, manager.status(name, version, label))
        return 200

    def _target(self, match):
        name = unquote(match.group("name"))
        self._model = name
        label = match.group("label")
        return name, match.group("version"), unquote(label) if label else None

    def _read_json(self):
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            raise ServingError(411, "chunked request bodies are not supported; send "
                                    "Content-Length")
        lengths = self.headers.get_all("Content-Length") or []
        if not lengths:
            raise ServingError(411, "the request needs a Content-Length header and a JSON body")
        if len({value.strip() for value in lengths}) > 1:
            # RFC 9112 6.3: the body's end is ambiguous; refuse and close.
            self.close_connection = True
            raise bad_request(f"conflicting Content-Length headers {lengths}; send one")
        try:
            length = int(lengths[0].strip())
            if length < 0 or not lengths[0].strip().isdigit():
                raise ValueError
        except ValueError:
            self.close_connection = True
            raise bad_request("invalid Content-Length header") from None
        limit = self.server.options.max_body_bytes
        if length > limit:
            if length <= limit + (16 << 20):  # drain, so the client can read the answer
                remaining = length
                while remaining > 0:
                    chunk = self.rfile.read(min(remaining, 1 << 16))
                    if not chunk:
                        break
                    remaining -= len(chunk)
            self.close_connection = True
            raise ServingError(413, f"request body of {length} bytes exceeds the limit of "
                                    f"{limit} bytes (--max_body_bytes)")
        # The whole body within socket_timeout, however slowly it trickles in.
        self.server.deadlines.arm(self, self.server.options.socket_timeout)
        try:
            data = self.rfile.read(length)
        finally:
            self.server.deadlines.disarm(self)
        self._body_read = True
        if len(data) != length:
            self.close_connection = True
            raise bad_request("the request body is shorter than its Content-Length")
        try:
            return json.loads(data.decode("utf-8"))
        except UnicodeDecodeError:
            raise bad_request("the request body is not valid UTF-8") from None
        except (json.JSONDecodeError, RecursionError) as error:
            raise bad_request(f"JSON Parse error: {error}") from None

    def _post(self):
        path, match = self._match()
        if match is None or match.group("metadata") or not match.group("verb"):
            raise not_found(f"Malformed request: {self.command} {path}")
        verb = match.group("verb")
        name, version, label = self._target(match)
        if verb not in ("predict", "classify", "generateStream"):
            raise not_found(f"Malformed request: POST {path} (supported: :predict, :classify, "
                            "and the :generateStream extension)")
        self._api = verb
        body = self._read_json()
        servable = self.server.manager.resolve(name, version, label)
        if isinstance(body, dict) and "signature_name" in body and \
                not isinstance(body["signature_name"], str):
            raise bad_request("'signature_name' must be a string")
        slot = _Slot(None)
        if not self._queued(servable, verb, body):
            limiter = self.server.limiter
            if not limiter.acquire(blocking=False):
                raise ServingError(429, "too many concurrent requests (limit "
                                        f"{self.server.options.max_concurrent_requests}, "
                                        "--max_concurrent_requests); retry later")
            slot = _Slot(limiter)
        try:
            if verb == "generateStream":
                self._stream(servable, body, slot)
                return 200
            answer = self._predict(servable, body) if verb == "predict" else \
                self._classify(servable, body)
            data = json.dumps(answer, ensure_ascii=False).encode("utf-8")
            budgets.check_response(len(data), self.server.options.max_response_bytes,
                                   measured=True)
        finally:
            slot.release()
        self._send(200, data)
        return 200

    def _queued(self, servable, verb, body):
        """Whether this request waits in a batch queue (and takes no concurrency slot)."""
        batcher = self.server.batcher
        if batcher is None or verb == "generateStream":
            return False
        name = (body.get("signature_name") if isinstance(body, dict) else None) \
            or "serving_default"
        return name in servable.input_specs and batcher.merges(servable, name)

    def _run(self, servable, signature, inputs):
        batcher = self.server.batcher
        if batcher is None:
            return servable.run(signature, inputs)
        return batcher.run(self._metrics_model(), servable, signature, inputs)

    def _max_new_tokens(self, servable):
        limit = int(servable.metadata.get("limits", {}).get("max_new_tokens", 0)) or (1 << 30)
        if self.server.options.max_new_tokens:
            limit = min(limit, self.server.options.max_new_tokens)
        return limit

    def _predict(self, servable, body):
        signature = servable.signature(body.get("signature_name") if isinstance(body, dict)
                                       else None)
        specs = servable.input_specs[signature]
        inputs, row_format = rest.parse_predict(body, specs, self.server.options.limits())
        if "max_new_tokens" in inputs and inputs["max_new_tokens"].size:
            limit = self._max_new_tokens(servable)
            if int(inputs["max_new_tokens"].max()) > limit:
                raise bad_request(f"max_new_tokens must be <= {limit} on this server")
        budgets.check_request(servable, signature, inputs, self.server.options)
        outputs = self._run(servable, signature, inputs)
        budgets.check_response(budgets.outputs_bytes(outputs),
                               self.server.options.max_response_bytes, measured=True)
        return rest.encode_predict(outputs, row_format)

    def _classify(self, servable, body):
        name = (body.get("signature_name") if isinstance(body, dict) else None) \
            or "serving_default"
        signature = servable.signature(name)
        method = servable.method_names.get(signature)
        if method != CLASSIFY_METHOD:
            raise bad_request(f"Expected classification signature method_name to be "
                              f"{CLASSIFY_METHOD}. Was: {method}")
        serialized = rest.parse_classify(body, self.server.options.limits(),
                                         text_feature=servable.classify_feature(signature))
        inputs = {"inputs": serialized}
        budgets.check_request(servable, signature, inputs, self.server.options)
        return rest.encode_classify(self._run(servable, signature, inputs))

    def _stream(self, servable, body, slot):
        from gpt_tf.serving.streaming import parse_stream_request, stream_generate

        request = parse_stream_request(body, self._max_new_tokens(servable),
                                       self.server.options.max_string_bytes)
        context = int(servable.metadata.get("model", {}).get("sequence_length", 0))
        budgets.check_compute(budgets.RequestCost(
            1, len(request["prompt"].encode("utf-8")) + 1, request["max_new_tokens"],
            context=context), self.server.options.max_request_tokens)
        events = stream_generate(servable, **request)
        first = next(events)  # errors before the first token still get a JSON status
        self.close_connection = True
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(_event(first))
        self.wfile.flush()
        for event in events:
            if event.get("done"):
                slot.release()  # the work is over; the summary is only a write
            self.wfile.write(_event(event))
            self.wfile.flush()


def _event(payload):
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n".encode("utf-8")


class _HTTPServer(ThreadingHTTPServer):
    """A thread per connection, at most `options.max_connections` at once."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def process_request(self, request, client_address):
        if not self.connection_slots.acquire(blocking=False):
            self._refuse(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.connection_slots.release()
            raise

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.connection_slots.release()

    def _refuse(self, request):
        limit = self.options.max_connections
        body = json.dumps({"error": f"too many open connections (limit {limit}, "
                                    "--rest_api_max_connections); retry later"}).encode()
        head = (f"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n")
        try:
            request.settimeout(1.0)
            request.sendall(head.encode("ascii") + body)
        except OSError:
            pass
        self.metrics.record("", "other", 503, 0.0)
        self.shutdown_request(request)


class ModelServer:
    """The REST server (and optional gRPC server) over a `ModelManager`.

    Args:
        manager: a `ModelManager` (already polled once).
        host: REST bind address.
        port: REST port (0: pick a free one; see `.port`).
        options: `ServerOptions`.
        grpc_port: gRPC port (None: no gRPC server; 0: pick a free one).
        owns_manager: `shutdown` also stops the manager's polling (for a manager
            made for this server, as `gpt-tf serve` does); a manager passed in by
            the caller is the caller's to stop.
    """

    def __init__(self, manager, host="127.0.0.1", port=8501, options=None, grpc_port=None,
                 owns_manager=False):
        from gpt_tf.serving.batching import BatchScheduler

        self.manager = manager
        self.owns_manager = owns_manager
        self.options = options or ServerOptions()
        self.httpd = _HTTPServer((host, port), _Handler)
        self.httpd.manager = manager
        self.httpd.options = self.options
        self.httpd.metrics = Metrics()
        self.httpd.limiter = threading.BoundedSemaphore(self.options.max_concurrent_requests)
        self.httpd.connection_slots = threading.BoundedSemaphore(self.options.max_connections)
        self.httpd.deadlines = _Deadlines()
        self.batcher = BatchScheduler(self.options.batching) if self.options.batching else None
        self.httpd.batcher = self.batcher
        self.host = host
        self.port = self.httpd.server_address[1]
        self.grpc_server = None
        self.grpc_port = None
        if grpc_port is not None:
            from gpt_tf.serving.grpc_server import start_grpc_server

            self.grpc_server, self.grpc_port = start_grpc_server(
                manager, host, grpc_port, self.httpd.limiter, self.options, self.batcher)
        self._thread = None
        self._serving = False

    @property
    def url(self):
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{host}:{self.port}"

    def start(self):
        """Serves in a background thread (returns immediately)."""
        self._serving = True
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="gpt-tf-rest",
                                        daemon=True)
        self._thread.start()
        return self

    def serve_forever(self):
        self._serving = True
        self.httpd.serve_forever()

    def shutdown(self):
        if self._serving:  # socketserver's shutdown waits forever for a loop never started
            self.httpd.shutdown()
        self.httpd.server_close()
        self.httpd.deadlines.stop()
        if self.grpc_server is not None:
            self.grpc_server.stop(grace=1)
        if self.batcher is not None:
            self.batcher.stop()
        if self.owns_manager:
            self.manager.stop()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.shutdown()
