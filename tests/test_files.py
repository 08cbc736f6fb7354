"""gpt_tf.files: atomic directories and text files, sha256."""

import hashlib
import os

import pytest

from gpt_tf.errors import UserError
from gpt_tf.files import atomic_directory, atomic_write_text, sha256_file


def _write(directory, name, text):
    with open(os.path.join(directory, name), "w", encoding="utf-8") as handle:
        handle.write(text)


def test_atomic_directory_appears_complete_or_not_at_all(tmp_path):
    final = tmp_path / "deep" / "run"
    with pytest.raises(RuntimeError):
        with atomic_directory(final) as tmp:
            _write(tmp, "a.txt", "half")
            raise RuntimeError("interrupted")
    assert not final.exists() and os.listdir(tmp_path / "deep") == []
    with atomic_directory(final) as tmp:
        assert isinstance(tmp, str) and os.path.dirname(tmp) == str(final.parent)
        _write(tmp, "a.txt", "whole")
    assert (final / "a.txt").read_text() == "whole"
    assert os.listdir(tmp_path / "deep") == ["run"]


def test_atomic_directory_refuses_or_replaces_an_existing_one(tmp_path):
    final = tmp_path / "data"
    with atomic_directory(final) as tmp:
        _write(tmp, "old.txt", "old")
    with pytest.raises(UserError, match="already exists"):
        with atomic_directory(final):
            pytest.fail("nothing may be written over an existing directory")
    with pytest.raises(ValueError):
        with atomic_directory(final, replace=True) as tmp:
            _write(tmp, "new.txt", "new")
            raise ValueError("bad data")
    assert os.listdir(final) == ["old.txt"]
    with atomic_directory(final, replace=True) as tmp:
        _write(tmp, "new.txt", "new")
    assert os.listdir(final) == ["new.txt"] and os.listdir(tmp_path) == ["data"]


def test_atomic_write_text_and_sha256(tmp_path):
    path = tmp_path / "sub" / "card.md"
    atomic_write_text(path, "é\n")
    atomic_write_text(str(path), "été\n")
    assert path.read_bytes() == "été\n".encode("utf-8")
    assert os.listdir(path.parent) == ["card.md"]
    assert sha256_file(path) == hashlib.sha256("été\n".encode("utf-8")).hexdigest()
    assert sha256_file(path, chunk_size=1) == sha256_file(path)
