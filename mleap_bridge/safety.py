"""Refusals that keep a hostile bundle inside itself and within size limits.

:mod:`mleap_bridge.bundle` uses the path, link and zip checks while reading a bundle; the ops
use :func:`check_width` (through :meth:`mleap_bridge.bundle.Node.size`) on every attribute
that decides how much memory scoring allocates. The limits are those of
:mod:`spark_models.limits`, read at each call, so changing the environment variables takes
effect without a restart. Every refusal is a :class:`~spark_models.exceptions.MalformedModelError`.
"""

from __future__ import annotations

import os
import stat
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any

import numpy as np

from spark_models import limits
from spark_models.exceptions import MalformedModelError

_CHUNK = 1 << 20  # bytes copied at a time while extracting
# What zipfile raises on a damaged, truncated, encrypted or exotic archive.
_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError,
               ValueError, OSError)


# ---- declared sizes ---------------------------------------------------------------------

def vector_limit() -> int:
    """The largest vector width a bundle may declare (``SPARK_MODELS_MAX_VECTOR_SIZE``)."""
    return limits.current().vector_size


def whole_number(value: Any) -> int | None:
    """``value`` as an int if it is a whole number (not a bool), else None."""
    if isinstance(value, (bool, np.bool_)):
        return None
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)) and np.isfinite(value) and float(value).is_integer():
        return int(value)
    return None


def check_width(node: str, attribute: str, value: Any, op: str | None = None, minimum: int = 0,
                limit: int | None = None) -> int:
    """``value`` (a size a bundle declares or implies) as an int from ``minimum`` to the vector-size limit."""
    where = f"MLeap node {node!r}" + (f" (op {op!r})" if op else "")
    whole = whole_number(value)
    if whole is None:
        raise MalformedModelError(f"{where}: attribute {attribute!r} is {value!r}, not a whole number")
    if whole < minimum:
        raise MalformedModelError(f"{where}: attribute {attribute!r} is {whole}; it must be at least {minimum}")
    limit = vector_limit() if limit is None else limit
    if whole > limit:
        raise MalformedModelError(
            f"{where}: attribute {attribute!r} is {whole}, over the limit of {limit} for a vector size "
            f"(set {limits.MAX_VECTOR_SIZE_ENV} to raise it if the bundle is trusted)")
    return whole


# ---- paths and links --------------------------------------------------------------------

def inside(root: Path, path: Path, what: str) -> Path:
    """``path`` resolved, refused unless it is ``root`` (already resolved) or below it."""
    resolved = path.resolve()
    if resolved != root and root not in resolved.parents:
        raise MalformedModelError(f"{what}: {str(path)!r} resolves to {str(resolved)!r}, outside the bundle")
    return resolved


def _check_entry(path: Path, root: Path, source: Path) -> None:
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return  # the reader names what is missing
    if stat.S_ISLNK(mode):
        raise MalformedModelError(
            f"MLeap bundle {str(source)!r}: {path.relative_to(root).as_posix()} is a symbolic link "
            f"(to {os.readlink(path)!r}); links inside a bundle directory are refused")
    if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
        raise MalformedModelError(f"MLeap bundle {str(source)!r}: {path.relative_to(root).as_posix()} is neither "
                                  "a regular file nor a directory")


def check_tree(root: Path, source: Path) -> None:
    """Refuse links and special files anywhere in what the reader reads (``bundle.json``, ``root/``)."""

    def fail(error: OSError) -> None:
        raise MalformedModelError(f"MLeap bundle {str(source)!r}: cannot list {error.filename!r} ({error.strerror})")

    for top in (root / "bundle.json", root / "root"):
        _check_entry(top, root, source)
        if top.is_dir():
            for folder, dirs, files in os.walk(top, onerror=fail):
                for name in dirs + files:
                    _check_entry(Path(folder, name), root, source)


# ---- zip archives -----------------------------------------------------------------------

@dataclass
class _Budget:
    """Bytes actually written while extracting, against the archive-size limit."""

    archive: Path
    declared: int
    limit: int
    used: int = 0

    def spend(self, n: int, entry: str) -> None:
        self.used += n
        if self.used > self.limit:
            raise MalformedModelError(
                f"{self.archive}: extracting {entry!r} went past the limit of {self.limit} bytes uncompressed, "
                f"though the zip declares {self.declared} bytes in total (set {limits.MAX_ARCHIVE_BYTES_ENV} "
                "to raise the limit if the bundle is trusted)")


def _check_archive(archive: Path, infos: list[zipfile.ZipInfo]) -> _Budget:
    cap = limits.current()
    if len(infos) > cap.archive_entries:
        raise MalformedModelError(
            f"{archive}: the zip holds {len(infos)} entries, over the limit of {cap.archive_entries} entries "
            f"(set {limits.MAX_ARCHIVE_ENTRIES_ENV} to raise it if the bundle is trusted)")
    declared = sum(info.file_size for info in infos)
    if declared > cap.archive_bytes:
        raise MalformedModelError(
            f"{archive}: the zip declares {declared} bytes uncompressed, over the limit of {cap.archive_bytes} "
            f"bytes (set {limits.MAX_ARCHIVE_BYTES_ENV} to raise it if the bundle is trusted)")
    return _Budget(archive, declared, cap.archive_bytes)


def _entry_parts(archive: Path, info: zipfile.ZipInfo) -> tuple[str, ...]:
    """The path components of an entry; absolute paths, ``..``, drives and links are refused."""
    member = info.filename
    parts = PurePosixPath(member.replace("\\", "/")).parts
    if member.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
        raise MalformedModelError(f"{archive}: refusing unsafe zip entry {member!r}")
    if stat.S_ISLNK(info.external_attr >> 16):
        raise MalformedModelError(f"{archive}: refusing zip entry {member!r}: it is a symbolic link")
    return parts


def _copy(source: IO[bytes], target: IO[bytes], info: zipfile.ZipInfo, budget: _Budget) -> None:
    written = 0
    while chunk := source.read(_CHUNK):
        written += len(chunk)
        if written > info.file_size:
            raise MalformedModelError(f"{budget.archive}: zip entry {info.filename!r} holds more than the "
                                      f"{info.file_size} bytes its header declares")
        budget.spend(len(chunk), info.filename)
        target.write(chunk)


def _extract_entry(zf: zipfile.ZipFile, info: zipfile.ZipInfo, dest: Path, budget: _Budget) -> None:
    parts = _entry_parts(budget.archive, info)
    if not parts:
        return
    target = inside(dest, dest.joinpath(*parts), f"{budget.archive}: zip entry {info.filename!r}")
    try:
        if info.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        with zf.open(info) as source, open(target, "wb") as out:
            _copy(source, out, info, budget)
    except MalformedModelError:
        raise
    except _ZIP_ERRORS as e:
        raise MalformedModelError(f"{budget.archive}: zip entry {info.filename!r} cannot be extracted "
                                  f"({type(e).__name__}: {e})") from None


def extract_zip(archive: Path, dest: Path) -> None:
    """Extract ``archive`` into the empty directory ``dest`` within the archive limits.

    The entry count and the declared uncompressed sizes (central directory) are checked
    before anything is written; the bytes actually written are counted too, so a header
    that lies about a size cannot get past the limit.
    """
    dest = dest.resolve()
    try:
        with zipfile.ZipFile(archive) as zf:
            infos = zf.infolist()
            budget = _check_archive(archive, infos)
            for info in infos:
                _entry_parts(archive, info)  # refuse unsafe names before writing anything
            for info in infos:
                _extract_entry(zf, info, dest, budget)
    except MalformedModelError:
        raise
    except _ZIP_ERRORS as e:
        raise MalformedModelError(f"MLeap bundle {str(archive)!r} is not a readable zip archive "
                                  f"({type(e).__name__}: {e})") from None
