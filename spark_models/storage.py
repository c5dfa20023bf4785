"""Model directories in storage → local directories.

Local paths and ``file://`` URIs are used in place. Any other fsspec URL (``s3://``,
``gs://``, ``abfss://``, ``dbfs:/``, ``http(s)://`` …) is downloaded once into a local
cache keyed by the URI and the remote MLmodel's content, so a changed model is fetched
again and an unchanged one never is. Registry URIs are :mod:`spark_models.uri`'s.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from pathlib import Path
from urllib.parse import unquote, urlparse

from spark_models.exceptions import InvalidModelUriError, MissingDependencyError, ModelNotFoundError

_logger = logging.getLogger(__name__)

CACHE_DIR_ENV = "SPARK_MODELS_CACHE_DIR"


def cache_dir() -> Path:
    """Where remote models are downloaded (``$SPARK_MODELS_CACHE_DIR`` or ~/.cache)."""
    root = os.environ.get(CACHE_DIR_ENV) or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "spark-models"
    )
    return Path(root) / "models"


def uri_scheme(uri: str) -> str:
    """The URI's scheme, or '' for a plain local path (Windows drive letters included)."""
    scheme = urlparse(uri).scheme
    return "" if len(scheme) <= 1 else scheme.lower()


def resolve_storage_uri(model_uri: str | os.PathLike, dst_path: str | os.PathLike | None = None) -> Path:
    """A local directory holding the model at ``model_uri`` (a path or a storage URL).

    ``dst_path`` forces remote models to be downloaded there instead of the cache.
    """
    uri = os.fspath(model_uri)
    scheme = uri_scheme(uri)
    if scheme == "":
        return _existing_local(Path(uri).expanduser(), uri)
    if scheme == "file":
        parsed = urlparse(uri)
        return _existing_local(Path(unquote(parsed.netloc + parsed.path)), uri)
    return _download_with_fsspec(uri, dst_path)


def _existing_local(path: Path, uri: str) -> Path:
    if not path.exists():
        raise ModelNotFoundError(f"No model at {uri!r}: the path does not exist")
    return path.resolve()


def _filesystem(uri: str):
    import fsspec

    try:
        return fsspec.core.url_to_fs(uri)
    except ImportError as e:
        raise MissingDependencyError(f"Cannot open {uri!r}: {e}") from None
    except ValueError as e:
        raise InvalidModelUriError(f"Cannot open {uri!r}: {e}") from None


def _download_with_fsspec(uri: str, dst_path: str | os.PathLike | None) -> Path:
    fs, remote = _filesystem(uri)
    remote = remote.rstrip("/")
    if not fs.exists(remote):
        raise ModelNotFoundError(f"No model at {uri!r}: the path does not exist")
    if fs.isfile(remote):
        raise InvalidModelUriError(f"{uri!r} is a file; a model URI names the model directory")
    if dst_path is not None:
        target = Path(dst_path)
        _copy_tree(fs, remote, target)
        return target
    target = cache_dir() / _cache_key(fs, remote, uri)
    if (target / ".complete").exists():
        return target
    _copy_tree(fs, remote, target)
    (target / ".complete").touch()
    return target


def _cache_key(fs, remote: str, uri: str) -> str:
    digest = hashlib.sha256(uri.encode())
    mlmodel = f"{remote}/MLmodel"
    if fs.exists(mlmodel):
        digest.update(fs.cat_file(mlmodel))
    return digest.hexdigest()[:24]


def _copy_tree(fs, remote: str, target: Path) -> None:
    """Download into a temporary sibling, then rename: readers never see half a model."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".download-", dir=target.parent))
    try:
        _logger.info("Downloading model %s to %s", remote, target)
        for src in fs.find(remote):
            rel = src[len(remote):].lstrip("/")
            dest = tmp / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            fs.get_file(src, str(dest))
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
