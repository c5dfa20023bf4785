"""Model shipping: the driver archives the model once; each worker extracts it once.

The archive name carries a hash of the model's files, so a changed model is a new archive
and a worker's extracted copy is valid for as long as it exists. A model the workers cannot
score as it is (a Spark ML pipeline without an MLeap bundle) is converted on the driver into
a copy, also kept per content hash and reused.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tarfile
import tempfile
import uuid
from pathlib import Path
from typing import Callable

from spark_models.archives import safe_extract
from spark_models.exceptions import MalformedModelError

_ARCHIVE_PREFIX = "spark-models-"
_logger = logging.getLogger(__name__)


def _model_files(model_dir: Path) -> list[Path]:
    """The model's files, without the bytecode Python writes when its code is imported."""
    return sorted(p for p in model_dir.rglob("*")
                  if p.is_file() and "__pycache__" not in p.relative_to(model_dir).parts)


def content_hash(model_dir: Path) -> str:
    """A digest of every file's relative path and bytes."""
    digest = hashlib.sha256()
    for path in _model_files(model_dir):
        digest.update(path.relative_to(model_dir).as_posix().encode())
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()[:20]


def private_dir(kind: str) -> Path:
    """``$TMPDIR/spark-models-<kind>-<uid>``, private to this user (see :func:`spark_models.envs.cache.private`)."""
    from spark_models.envs.cache import user_dir

    return user_dir(kind)


def _archive_root() -> Path:
    """This user's directory of model archives (one per model content, reused, never per call)."""
    return private_dir("archives")


def build_archive(model_dir: Path, key: str) -> Path:
    """A tar.gz of the model directory named after its content hash, built once and reused.

    The file stays where it is: Spark's file server (``addFile``) serves it from this path
    for as long as the session lives, so it cannot be deleted after shipping; keying it by
    content means shipping the same model again adds no file.
    """
    root = _archive_root()
    out = root / archive_name(key)
    if out.is_file():
        return out
    fd, tmp = tempfile.mkstemp(prefix=f".{key}-", suffix=".tmp", dir=root)
    try:
        with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz", compresslevel=1) as tar:
            for path in _model_files(model_dir):
                tar.add(path, arcname=path.relative_to(model_dir).as_posix())
        os.replace(tmp, out)  # atomic: a concurrent builder of the same key writes the same bytes
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out


def converted_model_dir(model_dir: Path, tag: str, build: Callable[[Path], None]) -> Path:
    """A converted copy of ``model_dir``, written by ``build(new_dir)`` once per content of
    ``model_dir``, ``tag`` and spark-models version, and reused (``model_dir`` is never changed).

    Copies live next to the archives, in this user's private directory; a failed build leaves
    nothing behind.
    """
    from spark_models import __version__

    root = _archive_root() / "converted"
    root.mkdir(mode=0o700, exist_ok=True)
    target = root / f"{content_hash(model_dir)}-{tag}-{__version__}"
    if (target / "MLmodel").is_file():
        _logger.info("Reusing the %s copy of %s at %s", tag, model_dir, target)
        return target
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=root))
    try:
        build(tmp / "model")
        try:
            os.replace(tmp / "model", target)  # atomic: readers never see a half-built copy
        except OSError:  # another process won the race; its copy is built from the same content
            if not (target / "MLmodel").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    _logger.info("Wrote the %s copy of %s to %s", tag, model_dir, target)
    return target


def archive_name(key: str) -> str:
    return f"{_ARCHIVE_PREFIX}{key}.tar.gz"


def _matches(target: Path, key: str) -> bool:
    return (target / "MLmodel").is_file() and content_hash(target) == key


def _install(tmp: Path, target: Path, key: str) -> None:
    """Rename the complete ``tmp`` to ``target``. A ``target`` another process installed meanwhile
    is kept when it matches ``key``; one that does not (stale, partial, planted) is moved aside
    first, so no reader ever sees it half removed."""
    for _ in range(3):
        try:
            os.replace(tmp, target)
            return
        except OSError:
            if _matches(target, key):
                return
            _logger.warning("Replacing %s: its content does not match the model it is named after", target)
            stale = target.with_name(f".stale-{target.name}-{uuid.uuid4().hex[:8]}")
            try:
                os.replace(target, stale)
            except FileNotFoundError:
                continue
            shutil.rmtree(stale, ignore_errors=True)
    raise MalformedModelError(f"Could not install the model {key} at {target}: other processes keep replacing it")


def extracted_model_dir(archive: Path, key: str) -> Path:
    """The model of ``archive`` extracted once per machine into this user's private directory.

    It is extracted under a temporary name and renamed when complete, and used only while its
    content hashes to ``key``: a partial, stale or foreign directory is replaced, never served.
    """
    root = private_dir("extracted")
    target = root / key
    if _matches(target, key):
        return target
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=root))
    try:
        safe_extract(archive, tmp)
        if content_hash(tmp) != key:
            raise MalformedModelError(f"{archive}: its content does not match the model hash {key} it was shipped as")
        _install(tmp, target, key)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
