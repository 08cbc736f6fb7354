"""TF Serving's gRPC API (`PredictionService`, `ModelService`) over a `ModelManager`.

The same servables, limits and errors as the REST server, spoken through
the `tensorflow-serving-api` stubs, so `GrpcServingClient` (and any TF
Serving gRPC client) works against `gpt-tf serve --port N`.
"""

from concurrent import futures

import numpy as np
import tensorflow as tf

from gpt_tf.errors import UserError
from gpt_tf.export.signatures import CLASSIFY_METHOD
from gpt_tf.serving import budgets
from gpt_tf.serving.errors import ServingError, bad_request

_GRPC_CODES = {400: "INVALID_ARGUMENT", 404: "NOT_FOUND", 405: "UNIMPLEMENTED",
               411: "INVALID_ARGUMENT", 413: "RESOURCE_EXHAUSTED", 429: "RESOURCE_EXHAUSTED",
               503: "UNAVAILABLE"}
_STATES = {"START": 10, "LOADING": 20, "AVAILABLE": 30, "UNLOADING": 40, "END": 50}
_NUMPY = {"string": object, "bfloat16": np.float32}


def _target(model_spec):
    version = model_spec.version.value if model_spec.HasField("version") else None
    label = model_spec.version_label or None
    return model_spec.name, version, label


def _inputs(servable, signature, proto_inputs, limits):
    specs = servable.input_specs[signature]
    if set(proto_inputs) != set(specs):
        raise bad_request(f"inputs {sorted(proto_inputs)} do not match signature '{signature}' "
                          f"inputs {sorted(specs)}")
    inputs = {}
    for name, proto in proto_inputs.items():
        dtype, shape = specs[name]
        try:
            array = tf.make_ndarray(proto)
        except Exception:  # malformed TensorProto
            raise bad_request(f"input '{name}' is not a valid TensorProto") from None
        if array.size > limits.max_elements:
            raise bad_request(f"input '{name}' has too many values")
        want = _NUMPY.get(dtype, dtype)
        if dtype == "string":
            if array.dtype != object:
                raise bad_request(f"input '{name}' must be DT_STRING")
            if any(len(v) > limits.max_string_bytes for v in array.reshape(-1)):
                raise bad_request(f"input '{name}' has a string over {limits.max_string_bytes} "
                                  "bytes")
        elif array.dtype != np.dtype(want):
            raise bad_request(f"input '{name}' must be {dtype}, got {array.dtype}")
        if shape is not None and (array.ndim != len(shape) or any(
                w is not None and g != w for g, w in zip(array.shape, shape))):
            raise bad_request(f"input '{name}' has shape {list(array.shape)}, expected "
                              f"{[-1 if d is None else d for d in shape]}")
        if array.ndim and array.shape[0] > limits.max_batch_size:
            raise bad_request(f"input '{name}' has more than {limits.max_batch_size} rows")
        inputs[name] = array
    return inputs


def _check_text_feature(example, name, number):
    feature = example.features.feature.get(name)
    if feature is None:
        raise bad_request(f"example {number} has no feature '{name}'; this signature "
                          f"classifies the string feature '{name}'")
    if feature.WhichOneof("kind") != "bytes_list" or len(feature.bytes_list.value) != 1:
        raise bad_request(f"example {number}: feature '{name}' must be one string (bytes_list "
                          "with one value)")


class _Services:
    def __init__(self, manager, limiter, options, batcher=None):
        self.manager = manager
        self.limiter = limiter
        self.options = options
        self.batcher = batcher

    def _call(self, context, fn, slot=True):
        """Runs `fn` (holding a concurrency slot unless `slot` is False: Predict and
        Classify take theirs in `_run`, after the signature is known)."""
        import grpc

        try:
            if not slot:
                return fn()
            self._acquire()
            try:
                return fn()
            finally:
                self.limiter.release()
        except ServingError as error:
            context.abort(getattr(grpc.StatusCode, _GRPC_CODES.get(error.status, "UNKNOWN")),
                          error.message)
        except UserError as error:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))

    def _acquire(self):
        if not self.limiter.acquire(blocking=False):
            raise ServingError(429, "too many concurrent requests; retry later")

    def _run(self, model, servable, signature, inputs):
        """Runs a signature: through the batch queue where it merges (`--enable_batching`),
        else holding a concurrency slot."""
        if self.batcher is not None and self.batcher.merges(servable, signature):
            return self.batcher.run(model, servable, signature, inputs)
        self._acquire()
        try:
            if self.batcher is not None:
                return self.batcher.run(model, servable, signature, inputs)
            return servable.run(signature, inputs)
        finally:
            self.limiter.release()

    # PredictionService
    def Predict(self, request, context):
        from tensorflow_serving.apis import predict_pb2

        def run():
            servable = self.manager.resolve(*_target(request.model_spec))
            signature = servable.signature(request.model_spec.signature_name)
            inputs = _inputs(servable, signature, request.inputs, self.options.limits())
            if "max_new_tokens" in inputs and inputs["max_new_tokens"].size:
                limit = int(servable.metadata.get("limits", {}).get("max_new_tokens", 1 << 30))
                if self.options.max_new_tokens:
                    limit = min(limit, self.options.max_new_tokens)
                if int(inputs["max_new_tokens"].max()) > limit:
                    raise bad_request(f"max_new_tokens must be <= {limit} on this server")
            budgets.check_request(servable, signature, inputs, self.options, encoding="proto")
            outputs = self._run(request.model_spec.name, servable, signature, inputs)
            budgets.check_response(budgets.outputs_bytes(outputs, "proto"),
                                   self.options.max_response_bytes, measured=True)
            wanted = set(request.output_filter) or set(outputs)
            response = predict_pb2.PredictResponse()
            response.model_spec.name = request.model_spec.name
            response.model_spec.version.value = servable.version
            response.model_spec.signature_name = signature
            for key in wanted:
                if key not in outputs:
                    raise bad_request(f"output_filter names unknown output '{key}'")
                response.outputs[key].CopyFrom(tf.make_tensor_proto(outputs[key]))
            return response

        return self._call(context, run, slot=False)

    def Classify(self, request, context):
        from tensorflow_serving.apis import classification_pb2

        def run():
            servable = self.manager.resolve(*_target(request.model_spec))
            signature = servable.signature(request.model_spec.signature_name)
            if servable.method_names.get(signature) != CLASSIFY_METHOD:
                raise bad_request(f"Expected classification signature method_name to be "
                                  f"{CLASSIFY_METHOD}. Was: "
                                  f"{servable.method_names.get(signature)}")
            which = request.input.WhichOneof("kind")
            if which == "example_list":
                examples = list(request.input.example_list.examples)
            elif which == "example_list_with_context":
                context_example = request.input.example_list_with_context.context
                examples = []
                for example in request.input.example_list_with_context.examples:
                    merged = tf.train.Example()
                    merged.CopyFrom(context_example)
                    merged.MergeFrom(example)
                    examples.append(merged)
            else:
                raise bad_request("the classify request has no examples")
            if not examples or len(examples) > self.options.max_batch_size:
                raise bad_request(f"give 1..{self.options.max_batch_size} examples")
            feature = servable.classify_feature(signature)
            for number, example in enumerate(examples):
                if feature is not None:
                    _check_text_feature(example, feature, number)
            serialized = np.array([e.SerializeToString() for e in examples], dtype=object)
            inputs = {"inputs": serialized}
            budgets.check_request(servable, signature, inputs, self.options, encoding="proto")
            outputs = self._run(request.model_spec.name, servable, signature, inputs)
            response = classification_pb2.ClassificationResponse()
            response.model_spec.name = request.model_spec.name
            response.model_spec.version.value = servable.version
            response.model_spec.signature_name = signature
            for labels, scores in zip(outputs["classes"], outputs["scores"]):
                row = response.result.classifications.add()
                for label, score in zip(labels, scores):
                    row.classes.add(label=label.decode("utf-8", "replace"), score=float(score))
            return response

        return self._call(context, run, slot=False)

    def GetModelMetadata(self, request, context):
        from tensorflow_serving.apis import get_model_metadata_pb2

        def run():
            if list(request.metadata_field) not in ([], ["signature_def"]):
                raise bad_request("only metadata_field 'signature_def' is supported")
            servable = self.manager.resolve(*_target(request.model_spec))
            signature_map = get_model_metadata_pb2.SignatureDefMap()
            for key, value in servable.signature_defs.items():
                signature_map.signature_def[key].CopyFrom(value)
            response = get_model_metadata_pb2.GetModelMetadataResponse()
            response.model_spec.name = request.model_spec.name
            response.model_spec.version.value = servable.version
            response.metadata["signature_def"].Pack(signature_map)
            return response

        return self._call(context, run)

    def Regress(self, request, context):
        import grpc

        context.abort(grpc.StatusCode.UNIMPLEMENTED, "Regress is not supported by gpt-tf serve")

    def MultiInference(self, request, context):
        import grpc

        context.abort(grpc.StatusCode.UNIMPLEMENTED,
                      "MultiInference is not supported by gpt-tf serve")

    # ModelService
    def GetModelStatus(self, request, context):
        from tensorflow_serving.apis import get_model_status_pb2

        def run():
            status = self.manager.status(*_target(request.model_spec))
            response = get_model_status_pb2.GetModelStatusResponse()
            for entry in status["model_version_status"]:
                row = response.model_version_status.add()
                row.version = int(entry["version"])
                row.state = _STATES.get(entry["state"], 0)
                row.status.error_message = entry["status"]["error_message"]
                row.status.error_code = 0 if entry["status"]["error_code"] == "OK" else 2
            return response

        return self._call(context, run)

    def HandleReloadConfigRequest(self, request, context):
        import grpc

        context.abort(grpc.StatusCode.UNIMPLEMENTED,
                      "config reload over gRPC is not supported; use "
                      "--model_config_file_poll_wait_seconds")


def start_grpc_server(manager, host, port, limiter, options, batcher=None, max_workers=8):
    """Starts the gRPC server; returns `(server, bound_port)`.

    `batcher`: the REST server's `BatchScheduler` (shared queues), or None.
    """
    import grpc
    from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

    services = _Services(manager, limiter, options, batcher)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=max_workers),
                         options=[("grpc.max_receive_message_length", options.max_body_bytes)])

    class Prediction(prediction_service_pb2_grpc.PredictionServiceServicer):
        Predict = staticmethod(services.Predict)
        Classify = staticmethod(services.Classify)
        Regress = staticmethod(services.Regress)
        MultiInference = staticmethod(services.MultiInference)
        GetModelMetadata = staticmethod(services.GetModelMetadata)

    class Model(model_service_pb2_grpc.ModelServiceServicer):
        GetModelStatus = staticmethod(services.GetModelStatus)
        HandleReloadConfigRequest = staticmethod(services.HandleReloadConfigRequest)

    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(Prediction(), server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(Model(), server)
    bound = server.add_insecure_port(f"{host}:{port}")
    if not bound:
        raise UserError(f"cannot bind the gRPC port {host}:{port}; choose another --port")
    server.start()
    return server, bound
