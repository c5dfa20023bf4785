"""Safe extraction of archives spark-models did not write itself (shipped models, environments)."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

from spark_models import limits
from spark_models.exceptions import MalformedModelError


def safe_extract(archive: Path, dest: Path) -> None:
    """Extract refusing absolute paths, ``..``, links, special files, and archives over the size
    limits of :mod:`spark_models.limits` (checked before anything is written)."""
    limit = limits.current()
    with tarfile.open(archive, "r:*") as tar:
        members = tar.getmembers()
        if len(members) > limit.archive_entries:
            raise MalformedModelError(f"{archive}: {len(members)} entries exceed the limit of {limit.archive_entries} "
                                      f"(raise {limits.MAX_ARCHIVE_ENTRIES_ENV} to allow more)")
        total = sum(m.size for m in members if m.isfile())
        if total > limit.archive_bytes:
            raise MalformedModelError(f"{archive}: {total} uncompressed bytes exceed the limit of {limit.archive_bytes} "
                                      f"(raise {limits.MAX_ARCHIVE_BYTES_ENV} to allow more)")
        for member in members:
            _check_member(archive, member)
        tar.extractall(dest, filter="data") if hasattr(tarfile, "data_filter") else tar.extractall(dest)


def _check_member(archive: Path, member: tarfile.TarInfo) -> None:
    name = member.name
    if name.startswith("/") or os.path.isabs(name) or ".." in Path(name).parts:
        raise MalformedModelError(f"{archive}: refusing unsafe archive entry {name!r}")
    if member.issym() or member.islnk():
        raise MalformedModelError(f"{archive}: refusing link entry {name!r}")
    if not (member.isfile() or member.isdir()):
        raise MalformedModelError(f"{archive}: refusing special file entry {name!r}")
