"""`assets.extra/tf_serving_warmup_requests`: requests replayed at model load.

TF Serving reads this TFRecord of `PredictionLog` protos and runs each
request before it marks a version AVAILABLE, so the first user request does
not pay for graph initialisation and XLA compilation. `gpt-tf serve` replays
the same file.
"""

import numpy as np
import tensorflow as tf

from gpt_tf.export.tasks import ClassificationTask, GenerationTask

WARMUP_PROMPT = "Hello"


def _predict_log(signature_name, inputs):
    from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.signature_name = signature_name
    for key, value in inputs.items():
        request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
    return prediction_log_pb2.PredictionLog(
        predict_log=prediction_log_pb2.PredictLog(request=request))


def warmup_requests(signatures, tasks=()):
    """`[PredictionLog]`: one small batch-1 request per text signature."""
    d = signatures.defaults
    prompt = np.array([WARMUP_PROMPT.encode()], dtype=object)
    logs = [
        _predict_log("serving_default", {"prompt": prompt}),
        _predict_log("generate", {
            "prompt": prompt,
            "max_new_tokens": np.array([d["max_new_tokens"]], np.int32),
            "temperature": np.array([0.8], np.float32), "top_k": np.array([40], np.int32),
            "top_p": np.array([0.95], np.float32),
            "repetition_penalty": np.array([1.1], np.float32), "seed": np.array([0], np.int32),
        }),
        _predict_log("score", {"text": prompt}),
        _predict_log("tokenize", {"text": prompt}),
        _predict_log("detokenize", {
            "token_ids": np.array([[signatures.end_of_text_id]], np.int32)}),
    ]
    for task in tasks:
        if isinstance(task, GenerationTask):
            logs.append(_predict_log(task.name, {name: prompt for name in task.inputs}))
        elif isinstance(task, ClassificationTask):
            logs.append(_predict_log(task.name + "_text", {task.input: prompt}))
            example = tf.train.Example(features=tf.train.Features(feature={
                task.input: tf.train.Feature(
                    bytes_list=tf.train.BytesList(value=[WARMUP_PROMPT.encode()]))}))
            logs.append(_predict_log(task.name, {
                "inputs": np.array([example.SerializeToString()], dtype=object)}))
    return logs


def write_warmup_requests(path, signatures, tasks=()):
    with tf.io.TFRecordWriter(path) as writer:
        for log in warmup_requests(signatures, tasks):
            writer.write(log.SerializeToString())


def read_warmup_requests(path):
    """`[(signature_name, {input: np.ndarray})]` from a warmup file (predict logs only)."""
    from tensorflow_serving.apis import prediction_log_pb2

    requests = []
    for record in tf.data.TFRecordDataset(path):
        log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        if log.WhichOneof("log_type") != "predict_log":
            continue
        request = log.predict_log.request
        inputs = {key: tf.make_ndarray(value) for key, value in request.inputs.items()}
        requests.append((request.model_spec.signature_name or "serving_default", inputs))
    return requests
