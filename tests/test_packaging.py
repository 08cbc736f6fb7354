"""What `pip install .` gives: the library, the TFLite runner and the apps."""

import os
import shutil
import subprocess
import sys
import zipfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("gpt_tf", "tflite", "apps")


def test_wheel_installs_the_apps(tmp_path):
    pytest.importorskip("setuptools", reason="building the wheel offline needs setuptools")
    pytest.importorskip("wheel", reason="building the wheel offline needs the wheel package")
    # Build from a copy (in-tree builds write build/ and *.egg-info beside the sources), without
    # model files; about 2 s.
    source = tmp_path / "source"
    source.mkdir()
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy(os.path.join(ROOT, name), source / name)
    for name in PACKAGES:
        shutil.copytree(os.path.join(ROOT, name), source / name,
                        ignore=shutil.ignore_patterns("__pycache__", "*.tflite", "*.model"))
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation",
         "--quiet", "--wheel-dir", str(tmp_path / "dist")],
        capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("gpt_tf-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        assert {"apps/__init__.py", "apps/translate.py", "apps/demo_examples.json",
                "tflite/run.py", "gpt_tf/cli.py"} <= names
        assert not [name for name in names if name.startswith(("tests/", "bench/", "tools/"))]
        archive.extractall(tmp_path / "site")  # what pip install puts in site-packages

    # From elsewhere, with the installed copy first on the path: the apps run from it.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = dict(os.environ, PYTHONPATH=str(tmp_path / "site"))
    where = subprocess.run(
        [sys.executable, "-c", "import apps.translate, tflite.run; print(apps.__file__)"],
        cwd=elsewhere, env=env, capture_output=True, text=True, timeout=120)
    assert where.returncode == 0, where.stderr[-3000:]
    assert where.stdout.strip().startswith(str(tmp_path / "site"))
    usage = subprocess.run([sys.executable, "-m", "apps.translate", "--help"], cwd=elsewhere,
                           env=env, capture_output=True, text=True, timeout=120)
    assert usage.returncode == 0, usage.stderr[-3000:]
    assert usage.stdout.startswith("usage: python -m apps.translate")
