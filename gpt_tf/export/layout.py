"""Where a SavedModel export's files are: version directories, manifest, metadata.

    BASE/NAME/<version>/             an integer version directory (TF Serving's layout)
      saved_model.pb, variables/
      assets.extra/gpt_tf.json       export metadata (limits, ids, tasks)
      assets.extra/tf_serving_warmup_requests
      SHA256SUMS                     the manifest, written last

The one definition of this layout, for the writer (`gpt_tf.export.saved_model`,
`bundle`), the servers (`gpt_tf.serving.models`) and the clients
(`gpt_tf.clients.open`). A leaf module: standard library only.
"""

import json
import os
import re

SAVED_MODEL_FILE = "saved_model.pb"
EXTRA_DIR = "assets.extra"
METADATA_FILE = "gpt_tf.json"
WARMUP_FILE = "tf_serving_warmup_requests"
MANIFEST_FILE = "SHA256SUMS"
# A version directory is a positive integer (that fits an int64); TF Serving and
# `gpt-tf serve` ignore every other name, e.g. an export still being written
# under `.tmp-*`.
VERSION_DIR = re.compile(r"^[1-9][0-9]{0,17}$")


def list_versions(model_dir, complete_only=True, require_manifest=True):
    """Integer version subdirectories of `model_dir`, ascending ([] if it cannot be read).

    Args:
        complete_only: only versions holding `saved_model.pb` (a copy still
            in progress may not have it yet).
        require_manifest: with `complete_only`, also the `SHA256SUMS` manifest,
            which an export writes last.
    """
    try:
        entries = os.listdir(model_dir)
    except OSError:
        return []
    versions = []
    for entry in entries:
        path = os.path.join(model_dir, entry)
        if not VERSION_DIR.match(entry) or not os.path.isdir(path):
            continue
        if complete_only:
            if not os.path.isfile(os.path.join(path, SAVED_MODEL_FILE)):
                continue
            if require_manifest and not os.path.isfile(os.path.join(path, MANIFEST_FILE)):
                continue
        versions.append(int(entry))
    return sorted(versions)


def metadata_path(export_dir):
    """The `assets.extra/gpt_tf.json` path of an export."""
    return os.path.join(export_dir, EXTRA_DIR, METADATA_FILE)


def read_metadata(export_dir):
    """The `assets.extra/gpt_tf.json` of an export (empty dict if absent)."""
    path = metadata_path(export_dir)
    if not os.path.isfile(path):
        return {}
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)
