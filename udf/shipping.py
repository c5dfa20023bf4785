"""Model shipping: the driver archives the model once; each worker extracts it once.

The archive name carries a hash of the model's files, so a changed model is a new archive
and a worker's extracted copy is valid for as long as it exists.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
import tempfile
from pathlib import Path

from spark_models.exceptions import MalformedModelError

_ARCHIVE_PREFIX = "spark-models-"


def content_hash(model_dir: Path) -> str:
    """A digest of every file's relative path and bytes."""
    digest = hashlib.sha256()
    for path in sorted(p for p in model_dir.rglob("*") if p.is_file()):
        digest.update(path.relative_to(model_dir).as_posix().encode())
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()[:20]


def build_archive(model_dir: Path, key: str) -> Path:
    """A tar.gz of the model directory in a temp dir, named after its content hash."""
    out = Path(tempfile.mkdtemp(prefix="spark-models-ship-")) / f"{_ARCHIVE_PREFIX}{key}.tar.gz"
    with tarfile.open(out, "w:gz", compresslevel=1) as tar:
        for path in sorted(model_dir.rglob("*")):
            if path.is_file():
                tar.add(path, arcname=path.relative_to(model_dir).as_posix())
    return out


def archive_name(key: str) -> str:
    return f"{_ARCHIVE_PREFIX}{key}.tar.gz"


def safe_extract(archive: Path, dest: Path) -> None:
    """Extract refusing absolute paths, ``..`` and links that leave ``dest``."""
    with tarfile.open(archive, "r:*") as tar:
        for member in tar.getmembers():
            name = member.name
            if name.startswith("/") or os.path.isabs(name) or ".." in Path(name).parts:
                raise MalformedModelError(f"{archive}: refusing unsafe archive entry {name!r}")
            if member.issym() or member.islnk():
                raise MalformedModelError(f"{archive}: refusing link entry {name!r}")
        tar.extractall(dest, filter="data") if hasattr(tarfile, "data_filter") else tar.extractall(dest)


def extracted_model_dir(archive: Path, key: str) -> Path:
    """Extract ``archive`` once per machine (atomic rename), returning the model directory."""
    root = Path(tempfile.gettempdir()) / "spark-models-extracted"
    target = root / key
    if (target / "MLmodel").is_file():
        return target
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=root))
    safe_extract(archive, tmp)
    try:
        os.replace(tmp, target)
    except OSError:  # another process won the race; its copy is identical
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return target
