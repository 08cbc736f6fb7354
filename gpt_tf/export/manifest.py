"""SHA-256 manifests: written last at export, verified before every load.

The manifest is a `SHA256SUMS` file in the format of coreutils `sha256sum`, so
it can also be checked by hand: `cd saved_models/NAME/3 && sha256sum -c SHA256SUMS`.
It lists every file under the directory except itself; a missing, changed or
unlisted file fails verification.

This module imports only the standard library (the TFLite runner reuses the
same format without TensorFlow).
"""

import os

from gpt_tf.errors import UserError
from gpt_tf.export.layout import MANIFEST_FILE
from gpt_tf.files import atomic_write_text, sha256_file  # noqa: F401  (sha256_file re-exported)


class ManifestError(UserError):
    """A directory does not match its manifest (tampered, truncated or incomplete)."""


def _files(directory):
    for root, dirs, names in os.walk(directory):
        dirs.sort()
        for name in sorted(names):
            path = os.path.join(root, name)
            relative = os.path.relpath(path, directory).replace(os.sep, "/")
            if relative != MANIFEST_FILE:
                yield relative, path


def write_manifest(directory):
    """Writes `directory/SHA256SUMS` over every file below `directory`.

    Returns:
        `{relative_path: sha256}`.
    """
    digests = {relative: sha256_file(path) for relative, path in _files(directory)}
    lines = "".join(f"{digest}  {relative}\n" for relative, digest in sorted(digests.items()))
    atomic_write_text(os.path.join(directory, MANIFEST_FILE), lines)
    return digests


def read_manifest(directory):
    """Parses `directory/SHA256SUMS` into `{relative_path: sha256}`."""
    path = os.path.join(directory, MANIFEST_FILE)
    if not os.path.isfile(path):
        raise ManifestError(f"'{directory}' has no {MANIFEST_FILE} manifest: it is incomplete "
                            "(still being written?) or was not exported by gpt-tf; re-export it")
    digests = {}
    with open(path, encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, 1):
            line = line.rstrip("\n")
            if not line:
                continue
            digest, sep, relative = line.partition("  ")
            unsafe = relative.startswith("/") or ".." in relative.split("/")
            if not sep or len(digest) != 64 or unsafe:
                raise ManifestError(f"{path}: line {number} is malformed; re-export the model")
            digests[relative.lstrip("*")] = digest.lower()
    if not digests:
        raise ManifestError(f"{path} lists no files; re-export the model")
    return digests


def verify_manifest(directory):
    """Checks every file of `directory` against its manifest.

    Raises:
        ManifestError: naming the first missing, changed or unlisted file.
    """
    expected = read_manifest(directory)
    present = dict(_files(directory))
    for relative, digest in sorted(expected.items()):
        path = present.get(relative)
        if path is None:
            raise ManifestError(f"'{directory}': file '{relative}' listed in {MANIFEST_FILE} is "
                                "missing; the export is incomplete or damaged; re-export it")
        actual = sha256_file(path)
        if actual != digest:
            raise ManifestError(
                f"'{directory}': sha256 mismatch for '{relative}' (manifest {digest[:12]}..., "
                f"file {actual[:12]}...): the file was modified or corrupted; re-export the model")
    extra = sorted(set(present) - set(expected))
    if extra:
        raise ManifestError(f"'{directory}': file '{extra[0]}' is not in {MANIFEST_FILE}; remove "
                            "it or re-export the model")
    return expected
