"""TF Serving REST request/response encoding (predict and classify).

Follows https://www.tensorflow.org/tfx/serving/api_rest:
- row format `{"instances": [...]}`: one entry per example, a dict of named
  inputs (or a bare value when the signature has one input); answered with
  `{"predictions": [...]}` (bare values when the signature has one output);
- columnar format `{"inputs": {...}}` (or a bare value for one input);
  answered with `{"outputs": ...}`;
- binary strings as `{"b64": "..."}`; outputs whose name ends in `_bytes`
  are returned base64-encoded the same way;
- classify: `{"examples": [{feature: value}], "context": {...}}` ->
  `{"results": [[[label, score], ...], ...]}`.

Every malformed, wrong-typed or oversized input raises `ServingError(400)`
with a message naming the input; nothing here raises anything else.
"""

import base64
import binascii
import math

import numpy as np

from gpt_tf.serving.errors import bad_request

_INT_RANGES = {"int32": (-(2 ** 31), 2 ** 31 - 1), "int64": (-(2 ** 63), 2 ** 63 - 1),
               "uint8": (0, 255), "int8": (-128, 127), "int16": (-(2 ** 15), 2 ** 15 - 1)}


class Limits:
    """Bounds on what one request may contain.

    Args:
        max_batch_size: instances (or first-dimension rows) per request.
        max_string_bytes: bytes of one string value (prompts, texts).
        max_elements: values in one input tensor.
    """

    def __init__(self, max_batch_size=64, max_string_bytes=16384, max_elements=1 << 20):
        self.max_batch_size = max_batch_size
        self.max_string_bytes = max_string_bytes
        self.max_elements = max_elements


def _shape_of(value, name, depth=0):
    """Shape of a rectangular nested list, or `ServingError`."""
    if depth > 16:
        raise bad_request(f"input '{name}' is nested too deeply")
    if isinstance(value, list):
        if not value:
            return (0,)
        shapes = {_shape_of(v, name, depth + 1) for v in value}
        if len(shapes) != 1:
            raise bad_request(f"input '{name}' is ragged (rows of different lengths); pad it "
                              "to a rectangular array")
        return (len(value),) + shapes.pop()
    return ()


def _flatten(value):
    if isinstance(value, list):
        for item in value:
            yield from _flatten(item)
    else:
        yield value


def _to_string(value, name, limits):
    if isinstance(value, dict):
        if set(value) != {"b64"} or not isinstance(value["b64"], str):
            raise bad_request(f"input '{name}': a binary value must be {{\"b64\": \"...\"}}")
        try:
            data = base64.b64decode(value["b64"], validate=True)
        except (binascii.Error, ValueError):
            raise bad_request(f"input '{name}': invalid base64 in {{\"b64\": ...}}") from None
    elif isinstance(value, str):
        data = value.encode("utf-8", errors="surrogatepass")
    else:
        raise bad_request(f"input '{name}' must be a string, got {_json_type(value)}")
    if len(data) > limits.max_string_bytes:
        raise bad_request(f"input '{name}' has a string of {len(data)} bytes; the limit is "
                          f"{limits.max_string_bytes} (--max_string_bytes)")
    return data


def _json_type(value):
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return "null"


def to_array(value, name, dtype, limits):
    """JSON value -> numpy array of `dtype` (`string`, `int32`, `float32`, `bool`...)."""
    shape = _shape_of(value, name)
    size = int(np.prod(shape)) if shape else 1
    if size > limits.max_elements:
        raise bad_request(f"input '{name}' has {size} values; the limit is {limits.max_elements}")
    flat = list(_flatten(value))
    if dtype == "string":
        out = np.array([_to_string(v, name, limits) for v in flat], dtype=object)
    elif dtype in _INT_RANGES:
        low, high = _INT_RANGES[dtype]
        for v in flat:
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise bad_request(f"input '{name}' must be {dtype}, got {_json_type(v)}")
            if isinstance(v, float) and (not math.isfinite(v) or v != int(v)):
                raise bad_request(f"input '{name}' must be {dtype}, got the number {v}")
            if not low <= int(v) <= high:
                raise bad_request(f"input '{name}': {int(v)} is out of range for {dtype}")
        out = np.array([int(v) for v in flat], dtype=dtype)
    elif dtype in ("float32", "float64", "float16", "bfloat16"):
        for v in flat:
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise bad_request(f"input '{name}' must be {dtype}, got {_json_type(v)}")
        with np.errstate(over="ignore"):
            out = np.array([float(v) for v in flat], dtype="float32" if dtype == "bfloat16"
                           else dtype)
        if not np.all(np.isfinite(out)):
            raise bad_request(f"input '{name}' has a value that is not a finite {dtype}")
    elif dtype == "bool":
        if not all(isinstance(v, bool) for v in flat):
            raise bad_request(f"input '{name}' must be booleans (true/false)")
        out = np.array(flat, dtype=bool)
    else:
        raise bad_request(f"input '{name}' has dtype {dtype}, which the REST API does not "
                          "support here")
    return out.reshape(shape)


def _check_shape(array, name, shape):
    if shape is None:
        return
    if array.ndim != len(shape):
        raise bad_request(f"input '{name}' must have rank {len(shape)} (shape "
                          f"{_shape_text(shape)}), got shape {list(array.shape)}")
    for got, want in zip(array.shape, shape):
        if want is not None and want >= 0 and got != want:
            raise bad_request(f"input '{name}' must have shape {_shape_text(shape)}, got "
                              f"{list(array.shape)}")


def _shape_text(shape):
    return "[" + ", ".join("-1" if d is None or d < 0 else str(d) for d in shape) + "]"


def parse_predict(body, input_specs, limits):
    """Decodes a predict request for a signature.

    Args:
        body: the parsed JSON object.
        input_specs: `{name: (dtype, shape)}` of the signature (shape with
            None for unknown dimensions; the first is the batch).
        limits: `Limits`.

    Returns:
        `(inputs {name: np.ndarray}, row_format: bool)`.
    """
    if not isinstance(body, dict):
        raise bad_request("the request body must be a JSON object with 'instances' or 'inputs'")
    unknown = set(body) - {"signature_name", "instances", "inputs"}
    if unknown:
        raise bad_request(f"unknown key(s) {sorted(unknown)} in the request; expected "
                          "'signature_name' and 'instances' or 'inputs'")
    if ("instances" in body) == ("inputs" in body):
        raise bad_request("the request must have exactly one of 'instances' (row format) or "
                          "'inputs' (columnar format)")
    names = list(input_specs)
    if "instances" in body:
        instances = body["instances"]
        if not isinstance(instances, list) or not instances:
            raise bad_request("'instances' must be a non-empty list")
        if len(instances) > limits.max_batch_size:
            raise bad_request(f"{len(instances)} instances exceed the limit of "
                              f"{limits.max_batch_size} per request (--max_batch_size)")
        columns = {name: [] for name in names}
        for number, instance in enumerate(instances):
            if isinstance(instance, dict) and not (len(names) == 1 and set(instance) == {"b64"}):
                missing = [n for n in names if n not in instance]
                extra = sorted(set(instance) - set(names))
                if missing or extra:
                    raise bad_request(
                        f"instance {number} has inputs {sorted(instance)}; the signature needs "
                        f"exactly {names}")
                for name in names:
                    columns[name].append(instance[name])
            elif len(names) == 1:
                columns[names[0]].append(instance)
            else:
                raise bad_request(f"instance {number} must be an object with the inputs {names}")
        inputs = {}
        for name in names:
            dtype, shape = input_specs[name]
            array = to_array(columns[name], name, dtype, limits)
            _check_shape(array, name, shape)
            inputs[name] = array
        return inputs, True
    raw = body["inputs"]
    if isinstance(raw, dict) and not (len(names) == 1 and set(raw) == {"b64"}):
        missing = [n for n in names if n not in raw]
        extra = sorted(set(raw) - set(names))
        if missing or extra:
            raise bad_request(f"'inputs' has {sorted(raw)}; the signature needs exactly {names}")
    elif len(names) == 1:
        raw = {names[0]: raw}
    else:
        raise bad_request(f"'inputs' must be an object with the inputs {names}")
    inputs = {}
    for name in names:
        dtype, shape = input_specs[name]
        array = to_array(raw[name], name, dtype, limits)
        _check_shape(array, name, shape)
        if shape and array.shape[0] > limits.max_batch_size:
            raise bad_request(f"input '{name}' has {array.shape[0]} rows; the limit is "
                              f"{limits.max_batch_size} (--max_batch_size)")
        inputs[name] = array
    return inputs, False


def _json_value(array, name):
    if array.dtype == object or array.dtype.kind == "S":
        def convert(item):
            if name.endswith("_bytes"):
                return {"b64": base64.b64encode(item).decode("ascii")}
            return item.decode("utf-8", errors="replace") if isinstance(item, bytes) else item
        return np.vectorize(convert, otypes=[object])(array).tolist() if array.size \
            else array.tolist()
    if array.dtype.kind == "f":
        return array.astype(np.float64).tolist()
    return array.tolist()


def encode_predict(outputs, row_format):
    """Signature outputs `{name: np.ndarray}` -> the TF Serving response JSON."""
    names = sorted(outputs)
    if row_format:
        batch = {outputs[n].shape[0] if outputs[n].ndim else None for n in names}
        if len(batch) != 1 or None in batch:
            # TF Serving rejects this too; our signatures are all batch-first.
            raise bad_request("the signature's outputs do not share a batch dimension; use the "
                              "columnar 'inputs' format")
        values = {n: _json_value(outputs[n], n) for n in names}
        if len(names) == 1:
            return {"predictions": values[names[0]]}
        size = batch.pop()
        return {"predictions": [{n: values[n][i] for n in names} for i in range(size)]}
    if len(names) == 1:
        return {"outputs": _json_value(outputs[names[0]], names[0])}
    return {"outputs": {n: _json_value(outputs[n], n) for n in names}}


def _feature(value, name, limits):
    import tensorflow as tf

    values = value if isinstance(value, list) else [value]
    if not values:
        raise bad_request(f"feature '{name}' is an empty list")
    if all(isinstance(v, str) or isinstance(v, dict) for v in values):
        return tf.train.Feature(bytes_list=tf.train.BytesList(
            value=[_to_string(v, name, limits) for v in values]))
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        if any(not -(2 ** 63) <= v < 2 ** 63 for v in values):
            raise bad_request(f"feature '{name}' has an integer out of int64 range")
        return tf.train.Feature(int64_list=tf.train.Int64List(value=values))
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return tf.train.Feature(float_list=tf.train.FloatList(value=[float(v) for v in values]))
    raise bad_request(f"feature '{name}' must be strings, integers or numbers (one kind)")


def parse_classify(body, limits, text_feature=None):
    """Decodes `{"examples": [...], "context": {...}}` into serialized `tf.Example`s.

    Args:
        body: the parsed JSON object.
        limits: `Limits`.
        text_feature: the feature the signature reads as one string (a gpt-tf
            classify task's input), checked in every example; None: no check.
    """
    import tensorflow as tf

    if not isinstance(body, dict):
        raise bad_request("the request body must be a JSON object with 'examples'")
    unknown = set(body) - {"signature_name", "examples", "context"}
    if unknown:
        raise bad_request(f"unknown key(s) {sorted(unknown)} in the classify request")
    examples = body.get("examples")
    if not isinstance(examples, list) or not examples:
        raise bad_request("'examples' must be a non-empty list of objects")
    if len(examples) > limits.max_batch_size:
        raise bad_request(f"{len(examples)} examples exceed the limit of "
                          f"{limits.max_batch_size} per request (--max_batch_size)")
    context = body.get("context", {})
    if not isinstance(context, dict):
        raise bad_request("'context' must be an object of features")
    serialized = []
    for number, example in enumerate(examples):
        if not isinstance(example, dict):
            raise bad_request(f"example {number} must be an object of features")
        features = {**context, **example}
        if text_feature is not None:
            _check_text_feature(features, text_feature, number)
        proto = tf.train.Example(features=tf.train.Features(feature={
            str(k): _feature(v, str(k), limits) for k, v in features.items()}))
        serialized.append(proto.SerializeToString())
    return np.array(serialized, dtype=object)


def _check_text_feature(features, name, number):
    # The graph parses `name` as one string with "" as default: a missing feature
    # would classify the empty text, a number would fail as "Graph execution error".
    if name not in features:
        raise bad_request(f"example {number} has no feature '{name}' (features: "
                          f"{sorted(features)}); this signature classifies the string "
                          f"feature '{name}'")
    value = features[name]
    if isinstance(value, list):
        if len(value) != 1:
            raise bad_request(f"example {number}: feature '{name}' must be one string, got a "
                              f"list of {len(value)}")
        value = value[0]
    if not isinstance(value, str) and not (isinstance(value, dict) and set(value) == {"b64"}):
        raise bad_request(f"example {number}: feature '{name}' must be a string, got "
                          f"{_json_type(value)}")


def encode_classify(outputs):
    """`{"classes": (B, K), "scores": (B, K)}` -> `{"results": [[[label, score]...]...]}`."""
    scores = outputs.get("scores")
    classes = outputs.get("classes")
    if scores is None and classes is None:
        raise bad_request("the signature has neither 'classes' nor 'scores' outputs")
    rows = (scores if scores is not None else classes).shape[0]
    results = []
    for i in range(rows):
        if classes is not None and scores is not None:
            row = [[c.decode("utf-8", errors="replace"), float(s)]
                   for c, s in zip(classes[i], scores[i])]
        elif scores is not None:
            row = [[str(k), float(s)] for k, s in enumerate(scores[i])]
        else:
            row = [[c.decode("utf-8", errors="replace"), 0.0] for c in classes[i]]
        results.append(row)
    return {"results": results}
