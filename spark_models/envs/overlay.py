"""A copy of the installed ``spark_models`` package for scorer processes to import.

A model's environment may hold no spark_models, or another version of it; its scorer process
runs with ``PYTHONPATH=<overlay>`` so it imports this code.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import threading
from pathlib import Path

from spark_models.envs.cache import cache_root, subdir
from spark_models.exceptions import ModelEnvironmentError

_logger = logging.getLogger(__name__)
_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc")
_lock = threading.Lock()
_done: dict[str, Path] = {}


def _package_dir() -> Path:
    import spark_models

    return Path(spark_models.__file__).resolve().parent


def _package_files(package: Path) -> list[Path]:
    return sorted(p for p in package.rglob("*")
                  if p.is_file() and "__pycache__" not in p.relative_to(package).parts and p.suffix != ".pyc")


def package_hash(package: Path | None = None) -> str:
    """A hash of the package's files (their paths and contents)."""
    package = package or _package_dir()
    digest = hashlib.sha256()
    for path in _package_files(package):
        digest.update(path.relative_to(package).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:20]


def code_overlay(root: Path | None = None) -> Path:
    """The directory holding a copy of the installed ``spark_models`` (under the cache ``root``'s
    ``code`` subdirectory, named by :func:`package_hash`); copied on first use, then reused."""
    package = _package_dir()
    code = subdir(cache_root(root), "code")
    with _lock:
        key = f"{code}\0{package}"
        known = _done.get(key)
        if known is not None and (known / "spark_models" / "__init__.py").is_file():
            return known
        target = code / package_hash(package)
        if not (target / "spark_models" / "__init__.py").is_file():
            _install(package, target)
        _done[key] = target
        return target


def _install(package: Path, target: Path) -> None:
    """Copy ``package`` into ``target`` atomically: another process may be doing the same."""
    staging = Path(tempfile.mkdtemp(prefix=".incoming-", dir=target.parent))
    try:
        shutil.copytree(package, staging / "spark_models", ignore=_IGNORED)
        try:
            os.replace(staging, target)
            _logger.info("Copied spark_models code to %s", target)
        except OSError as e:
            if not (target / "spark_models" / "__init__.py").is_file():  # not another process's copy
                raise ModelEnvironmentError(f"cannot install the spark_models code copy at {target}: {e}; "
                                            "remove that directory") from None
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
