"""Download a public dataset's files, verify their published checksums and unpack them.

Files land in ``cache_dir/<source name>/``; a file already there whose checksum matches is not
downloaded again. A file with no published checksum is fetched only with ``verify=False``: a
download that cannot be checked is the user's explicit choice, never a silent default.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from facetrec.data.sources import RemoteFile, Source, find_root, get_source
from facetrec.errors import DataError

CHUNK = 1 << 20
TIMEOUT_S = 60
_USER_AGENT = "facetrec-dataset-fetch"


def fetch(
    name: str,
    cache_dir: Path,
    /,
    *,
    force: bool = False,
    progress: bool = True,
    verify: bool = True,
    files: Sequence[RemoteFile] | None = None,
    **options: Any,
) -> Path:
    """Download source ``name`` into ``cache_dir/name`` and return the folder that ``load_source`` accepts.

    ``force`` downloads again even when a verified copy is present; ``files`` replaces the source's
    published files (mirrors, tests); ``options`` fill placeholders such as ``category``.
    """
    source = get_source(name)
    source.check_options(options)
    if not source.files and files is None:
        raise DataError(
            f"{name}: has no download (its files are not published as a release); get them from "
            f"{source.homepage} and import the folder with --path (load_source({name!r}, PATH))"
        )
    remote = tuple(files) if files is not None else source.remote_files(**options)
    unverifiable = [f.name for f in remote if f.checksum is None]
    if verify and unverifiable:
        raise DataError(
            f"{name}: no published checksum is known for {', '.join(unverifiable)}, so the download cannot be "
            "verified. Pass verify=False (--no-verify) to download it anyway, or download it yourself from "
            f"{source.homepage} and load the local copy with --path."
        )
    folder = Path(cache_dir) / name
    folder.mkdir(parents=True, exist_ok=True)
    for item in remote:
        path = folder / item.name
        if force or not _usable(path, item):
            _download(item, path, source, progress)
        if item.extract_to is not None and zipfile.is_zipfile(path):
            _unpack(path, folder / item.extract_to, force)
    return find_root(source, folder, **options)


def file_digest(path: Path, algorithm: str) -> str:
    """Hex digest of a file, read in chunks."""
    digest = hashlib.new(algorithm)
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _usable(path: Path, item: RemoteFile) -> bool:
    """A present file is reused when its checksum matches (or none is known and the user chose verify=False)."""
    if not path.is_file():
        return False
    if item.checksum is None:
        return True
    algorithm, expected = item.checksum
    if file_digest(path, algorithm) == expected:
        return True
    path.unlink()  # a stale or damaged copy: download it again
    return False


def _download(item: RemoteFile, path: Path, source: Source, progress: bool) -> None:
    """Stream ``item.url`` to a temporary file, check it, then move it into place."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{item.name}.", suffix=".part", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            digest = _stream(item, out, progress)
        if item.checksum is not None:
            algorithm, expected = item.checksum
            actual = digest[algorithm]
            if actual != expected:
                raise DataError(
                    f"{source.name}: {item.name} from {item.url} failed verification: expected {algorithm} "
                    f"{expected}, got {actual}. The file was deleted; the download may be damaged or the publisher "
                    "changed the file. Try again, or download it yourself and use --path."
                )
        tmp.replace(path)
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise DataError(
            f"{source.name}: downloading {item.url} failed ({reason}). Check the network, or download the file "
            f"yourself from {source.homepage}, unzip it and load it with --path PATH (or load_source("
            f"{source.name!r}, PATH))."
        ) from None
    finally:
        tmp.unlink(missing_ok=True)


def _stream(item: RemoteFile, out: Any, progress: bool) -> dict[str, str]:
    """Copy the response to ``out`` in chunks, hashing as it goes; a rich progress bar shows bytes/s."""
    hashes = {"sha256": hashlib.sha256(), "md5": hashlib.md5()}
    request = urllib.request.Request(item.url, headers={"User-Agent": _USER_AGENT})
    with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
        length = response.headers.get("Content-Length") if hasattr(response, "headers") else None
        total = int(length) if length and str(length).isdigit() else item.size
        bar = _progress(item.name, total) if progress else None
        try:
            while chunk := response.read(CHUNK):
                out.write(chunk)
                for h in hashes.values():
                    h.update(chunk)
                if bar is not None:
                    bar[0].update(bar[1], advance=len(chunk))
        finally:
            if bar is not None:
                bar[0].stop()
    return {k: h.hexdigest() for k, h in hashes.items()}


def _progress(label: str, total: int | None) -> tuple[Any, Any]:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=False,
    )
    task = bar.add_task(label, total=total)
    bar.start()
    return bar, task


def _unpack(archive: Path, target: Path, force: bool) -> None:
    """Extract a zip once (a marker records which copy), refusing members that would land outside ``target``."""
    marker = archive.parent / f".{archive.name}.unpacked"
    stamp = f"{archive.stat().st_size} {archive.stat().st_mtime_ns}\n"
    if not force and marker.is_file() and marker.read_text() == stamp:
        return
    target.mkdir(parents=True, exist_ok=True)
    base = target.resolve()
    try:
        with zipfile.ZipFile(archive) as zf:
            for member in zf.infolist():
                if not (target / member.filename).resolve().is_relative_to(base):
                    raise DataError(f"{archive}: member {member.filename!r} would unpack outside {target}; refused")
            zf.extractall(target)
    except (zipfile.BadZipFile, OSError) as exc:
        raise DataError(f"{archive}: could not be unpacked ({exc}); delete it and fetch again") from None
    marker.write_text(stamp)
