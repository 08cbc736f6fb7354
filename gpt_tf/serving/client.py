"""Clients for TF Serving's REST and gRPC APIs.

`ServingClient` speaks only TF Serving's documented REST API (plus the
`:generateStream` extension in `stream`, which real TF Serving lacks), so the
apps work unchanged against `tensorflow_model_server` and `gpt-tf serve`.
It needs nothing beyond the standard library.

`GrpcServingClient` uses the `tensorflow-serving-api` stubs (and TensorFlow
for the tensor protos).

    client = ServingClient("http://localhost:8501", "shakespeare")
    client.generate(["ROMEO."], max_new_tokens=40, temperature=0.8, top_k=40)
    client.score(["To be, or not to be"])
"""

import base64
import json
import socket
import urllib.error
import urllib.request
from urllib.parse import quote

from gpt_tf.serving.errors import ServerUnavailable, ServingError

SAMPLING_DEFAULTS = {"max_new_tokens": 64, "temperature": 0.0, "top_k": 0, "top_p": 1.0,
                     "repetition_penalty": 1.0, "seed": 0}


def _not_tf_serving(body, limit=120):
    """A one-line excerpt of a non-JSON answer, with what it probably means."""
    text = " ".join(str(body).split())
    if len(text) > limit:
        text = text[:limit] + "..."
    return (f"{text!r}: this is not a TF Serving REST endpoint; check the host, the port "
            "(TF Serving's REST port is 8501) and the model name in the URL")


class ServingClient:
    """TF Serving REST client for one model.

    Args:
        base_url: e.g. `http://localhost:8501`.
        model_name: the served model name.
        version: pin an integer version (or None).
        label: pin a version label such as `stable` or `canary` (or None).
        timeout: seconds per request.
    """

    def __init__(self, base_url, model_name, version=None, label=None, timeout=120.0):
        if version is not None and label is not None:
            raise ValueError("give a version or a label, not both")
        self.base_url = base_url.rstrip("/")
        self.model_name = model_name
        self.version = version
        self.label = label
        self.timeout = timeout

    @property
    def model_url(self):
        url = f"{self.base_url}/v1/models/{quote(self.model_name, safe='')}"
        if self.version is not None:
            url += f"/versions/{int(self.version)}"
        elif self.label is not None:
            url += f"/labels/{quote(self.label, safe='')}"
        return url

    def _request(self, method, url, payload=None, stream=False):
        data = None if payload is None else json.dumps(payload).encode("utf-8")
        try:
            request = urllib.request.Request(url, data=data, method=method,
                                             headers={"Content-Type": "application/json"})
            response = urllib.request.urlopen(request, timeout=self.timeout)
        except urllib.error.HTTPError as error:
            body = error.read().decode("utf-8", errors="replace")
            try:
                message = json.loads(body).get("error", body)
            except (ValueError, AttributeError):
                message = _not_tf_serving(body or error.reason)
            raise ServingError(error.code, f"{method} {url}: {error.code} {message}") from None
        except (urllib.error.URLError, socket.timeout, ConnectionError) as error:
            reason = getattr(error, "reason", error)
            raise ServerUnavailable(
                f"cannot reach the model server at {self.base_url} ({reason}); start it with "
                "`gpt-tf serve --model_config_file saved_models/models.config` or check the "
                "URL") from None
        except ValueError as error:  # e.g. "Invalid IPv6 URL", an unknown scheme
            raise ServerUnavailable(f"malformed model server URL {url!r} ({error}); give one "
                                    "like http://localhost:8501/v1/models/NAME") from None
        if stream:
            return response
        with response:
            body = response.read().decode("utf-8", errors="replace")
        try:
            return json.loads(body)
        except ValueError:
            raise ServingError(502, f"{method} {url}: the answer is not JSON "
                               f"({_not_tf_serving(body)})") from None

    # ---- TF Serving REST API --------------------------------------------------------------

    def status(self):
        """`GET /v1/models/NAME[...]`: the model version status list."""
        return self._request("GET", self.model_url)

    def metadata(self):
        """`GET .../metadata`: the signature defs."""
        return self._request("GET", self.model_url + "/metadata")

    def predict(self, instances=None, inputs=None, signature_name=None):
        """`POST ...:predict` with row (`instances`) or columnar (`inputs`) data.

        Returns:
            The response JSON (`{"predictions": ...}` or `{"outputs": ...}`).
        """
        if (instances is None) == (inputs is None):
            raise ValueError("give exactly one of instances or inputs")
        payload = {"instances": instances} if instances is not None else {"inputs": inputs}
        if signature_name:
            payload["signature_name"] = signature_name
        return self._request("POST", self.model_url + ":predict", payload)

    def classify(self, examples, signature_name="classify", context=None):
        """`POST ...:classify`; returns `[[(label, score), ...], ...]` per example."""
        payload = {"signature_name": signature_name, "examples": list(examples)}
        if context:
            payload["context"] = context
        results = self._request("POST", self.model_url + ":classify", payload)["results"]
        return [[(label, float(score)) for label, score in row] for row in results]

    # ---- conveniences over the gpt-tf signatures ------------------------------------------

    def generate(self, prompts, **sampling):
        """Completions through the `generate` signature (row format).

        Args:
            prompts: list of strings.
            **sampling: `max_new_tokens`, `temperature`, `top_k`, `top_p`,
                `repetition_penalty`, `seed` (defaults: greedy, 64 tokens).

        Returns:
            List of dicts with `completion`, `num_tokens`, `stop_reason`,
            `prompt_tokens_truncated`.
        """
        unknown = set(sampling) - set(SAMPLING_DEFAULTS)
        if unknown:
            raise ValueError(f"unknown sampling options {sorted(unknown)}")
        settings = {**SAMPLING_DEFAULTS, **sampling}
        instances = [{"prompt": p, **settings} for p in prompts]
        return self.predict(instances=instances, signature_name="generate")["predictions"]

    def complete(self, prompts):
        """Completions through `serving_default` (the export's default settings)."""
        return self.predict(instances=list(prompts))["predictions"]

    def score(self, texts):
        """Per text: `log_likelihood`, `num_tokens`, `perplexity`, `truncated`."""
        return self.predict(instances=[{"text": t} for t in texts],
                            signature_name="score")["predictions"]

    def tokenize(self, texts):
        rows = self.predict(inputs={"text": list(texts)}, signature_name="tokenize")["outputs"]
        return [ids[:n] for ids, n in zip(rows["token_ids"], rows["lengths"])]

    def detokenize(self, rows):
        width = max((len(r) for r in rows), default=0)
        padded = [list(r) + [0] * (width - len(r)) for r in rows]
        return self.predict(inputs={"token_ids": padded},
                            signature_name="detokenize")["outputs"]

    def stream(self, prompt, **sampling):
        """Yields text pieces as they are generated (gpt-tf `:generateStream` extension).

        The last item is the summary dict (`completion`, `stop_reason`, ...).
        Real TF Serving answers 404 (`ServingError`): fall back to `generate`.
        """
        unknown = set(sampling) - set(SAMPLING_DEFAULTS)
        if unknown:
            raise ValueError(f"unknown sampling options {sorted(unknown)}")
        payload = {"prompt": prompt, **sampling}
        response = self._request("POST", self.model_url + ":generateStream", payload,
                                 stream=True)
        with response:
            for raw in response:
                line = raw.decode("utf-8").strip()
                if not line.startswith("data:"):
                    continue
                event = json.loads(line[5:])
                if event.get("done"):
                    yield event
                    return
                if event.get("text"):
                    yield event["text"]


def b64(data):
    """`{"b64": ...}` for a binary string input."""
    return {"b64": base64.b64encode(data).decode("ascii")}


class GrpcServingClient:
    """TF Serving gRPC client (`tensorflow-serving-api`) for one model.

    Args:
        target: `host:port` of the gRPC server (TF Serving's `--port`).
        model_name: the served model name.
        version / label: pin a version or a label.
        timeout: seconds per call.
    """

    def __init__(self, target, model_name, version=None, label=None, timeout=120.0):
        try:
            import grpc
            from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc
        except ImportError:
            raise ServerUnavailable("the gRPC client needs `pip install tensorflow-serving-api "
                                    "grpcio`") from None
        self.model_name = model_name
        self.version = version
        self.label = label
        self.timeout = timeout
        self.channel = grpc.insecure_channel(target)
        self.prediction = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
        self.models = model_service_pb2_grpc.ModelServiceStub(self.channel)
        self.target = target

    def _spec(self, spec, signature_name=None):
        spec.name = self.model_name
        if self.version is not None:
            spec.version.value = int(self.version)
        elif self.label is not None:
            spec.version_label = self.label
        if signature_name:
            spec.signature_name = signature_name

    def _call(self, method, request):
        import grpc

        try:
            return method(request, timeout=self.timeout)
        except grpc.RpcError as error:
            code = error.code()
            status = {grpc.StatusCode.INVALID_ARGUMENT: 400, grpc.StatusCode.NOT_FOUND: 404,
                      grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
                      grpc.StatusCode.UNIMPLEMENTED: 405}.get(code)
            if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                raise ServerUnavailable(f"cannot reach the gRPC model server at {self.target} "
                                        f"({error.details()})") from None
            raise ServingError(status or 500, f"{code.name}: {error.details()}") from None

    def predict(self, inputs, signature_name=None):
        """`{name: array-like}` -> `{output: np.ndarray}`."""
        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2

        request = predict_pb2.PredictRequest()
        self._spec(request.model_spec, signature_name)
        for key, value in inputs.items():
            request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
        response = self._call(self.prediction.Predict, request)
        return {key: tf.make_ndarray(value) for key, value in response.outputs.items()}

    def generate(self, prompts, **sampling):
        """Completions through the `generate` signature; list of dicts."""
        import numpy as np

        settings = {**SAMPLING_DEFAULTS, **sampling}
        batch = len(prompts)
        dtypes = {"max_new_tokens": np.int32, "top_k": np.int32, "seed": np.int32}
        inputs = {"prompt": np.array([p.encode("utf-8") for p in prompts], dtype=object)}
        for key, value in settings.items():
            inputs[key] = np.full([batch], value, dtype=dtypes.get(key, np.float32))
        out = self.predict(inputs, "generate")
        return [{"completion": out["completion"][i].decode("utf-8", "replace"),
                 "num_tokens": int(out["num_tokens"][i]),
                 "stop_reason": out["stop_reason"][i].decode(),
                 "prompt_tokens_truncated": int(out["prompt_tokens_truncated"][i])}
                for i in range(batch)]

    def classify(self, examples, signature_name="classify"):
        """Feature dicts -> `[[(label, score), ...], ...]` via `Classify`."""
        from tensorflow_serving.apis import classification_pb2

        request = classification_pb2.ClassificationRequest()
        self._spec(request.model_spec, signature_name)
        for features in examples:
            example = request.input.example_list.examples.add()
            for key, value in features.items():
                values = value if isinstance(value, list) else [value]
                if all(isinstance(v, (str, bytes)) for v in values):
                    example.features.feature[key].bytes_list.value.extend(
                        v.encode("utf-8") if isinstance(v, str) else v for v in values)
                elif all(isinstance(v, int) for v in values):
                    example.features.feature[key].int64_list.value.extend(values)
                else:
                    example.features.feature[key].float_list.value.extend(map(float, values))
        response = self._call(self.prediction.Classify, request)
        return [[(c.label, c.score) for c in row.classes]
                for row in response.result.classifications]

    def metadata(self):
        """The `SignatureDefMap` proto of the model."""
        from tensorflow_serving.apis import get_model_metadata_pb2

        request = get_model_metadata_pb2.GetModelMetadataRequest()
        self._spec(request.model_spec)
        request.metadata_field.append("signature_def")
        response = self._call(self.prediction.GetModelMetadata, request)
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        response.metadata["signature_def"].Unpack(signature_map)
        return signature_map

    def status(self):
        """`[(version, state_name, error_message)]`."""
        from tensorflow_serving.apis import get_model_status_pb2

        request = get_model_status_pb2.GetModelStatusRequest()
        self._spec(request.model_spec)
        response = self._call(self.models.GetModelStatus, request)
        names = get_model_status_pb2.ModelVersionStatus.State
        return [(s.version, names.Name(s.state), s.status.error_message)
                for s in response.model_version_status]

    def close(self):
        self.channel.close()
