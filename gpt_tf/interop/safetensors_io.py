"""The `.safetensors` format with numpy only: a checked reader and a writer.

Layout: 8 bytes little-endian header length N, N bytes of JSON
`{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}`,
then the tensor bytes (offsets relative to the end of the header). The reader
checks every field against the file before trusting it, so a truncated or
corrupt file is a one-line error, never a crash or a silent misread.
"""

import json
import math
import os

import numpy as np

from gpt_tf.errors import UserError

_DTYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "I64": np.int64,
           "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_,
           "BF16": np.uint16}
_NAMES = {np.dtype(np.float32): "F32", np.dtype(np.float16): "F16", np.dtype(np.float64): "F64",
          np.dtype(np.int64): "I64", np.dtype(np.int32): "I32"}
_MAX_HEADER = 100 * 1024 * 1024


def read_safetensors(path):
    """All tensors of a `.safetensors` file as float32/int numpy arrays (BF16 widened).

    Raises:
        UserError: the file is missing, truncated, or its header is not valid.
    """
    def bad(reason):
        return UserError(f"'{path}' is not a valid safetensors file: {reason}; download or "
                         "convert it again")

    if not os.path.isfile(path):
        raise UserError(f"'{path}' not found")
    size = os.path.getsize(path)
    with open(path, "rb") as handle:
        prefix = handle.read(8)
        if len(prefix) < 8:
            raise bad("shorter than its 8-byte header length")
        length = int.from_bytes(prefix, "little")
        if length > min(size - 8, _MAX_HEADER):
            raise bad(f"header length {length} exceeds the file")
        try:
            header = json.loads(handle.read(length).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise bad(f"header is not JSON ({error})") from None
        if not isinstance(header, dict):
            raise bad("header is not a JSON object")
        data_size = size - 8 - length
        tensors = {}
        for name, entry in header.items():
            if name == "__metadata__":
                continue
            try:
                dtype = _DTYPES[entry["dtype"]]
                shape, offsets = list(entry["shape"]), list(entry["data_offsets"])
                if not all(type(n) is int for n in shape + offsets):
                    raise TypeError("non-integer shape or offsets")
                begin, end = offsets
            except (KeyError, TypeError, ValueError):
                raise bad(f"tensor '{name}' has an unsupported or malformed entry "
                          f"{str(entry)[:80]}") from None
            count = math.prod(shape)  # exact: np.prod would wrap around on huge shapes
            if min(shape, default=0) < 0 or max(shape, default=0) >= 2 ** 62 \
                    or not 0 <= begin <= end <= data_size \
                    or end - begin != count * np.dtype(dtype).itemsize:
                raise bad(f"tensor '{name}' (shape {shape}, offsets {begin}..{end}) does not fit "
                          f"the {data_size} data bytes")
            handle.seek(8 + length + begin)
            array = np.frombuffer(handle.read(end - begin), dtype=dtype).reshape(shape)
            if entry["dtype"] == "BF16":
                array = (array.astype(np.uint32) << 16).view(np.float32)
            tensors[name] = array
    return tensors


def write_safetensors(path, tensors, metadata=None):
    """Writes `{name: array}` (float32/16/64, int32/64) as a `.safetensors` file."""
    header, offset, blobs = {}, 0, []
    for name in sorted(tensors):
        array = np.ascontiguousarray(tensors[name])
        if array.dtype not in _NAMES:
            raise ValueError(f"tensor '{name}': dtype {array.dtype} is not supported")
        blob = array.tobytes()
        header[name] = {"dtype": _NAMES[array.dtype], "shape": list(array.shape),
                        "data_offsets": [offset, offset + len(blob)]}
        offset += len(blob)
        blobs.append(blob)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    encoded = json.dumps(header, separators=(",", ":")).encode("utf-8")
    encoded += b" " * (-len(encoded) % 8)  # align the data to 8 bytes
    with open(path, "wb") as handle:
        handle.write(len(encoded).to_bytes(8, "little"))
        handle.write(encoded)
        for blob in blobs:
            handle.write(blob)
