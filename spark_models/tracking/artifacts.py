"""Download a tracked model's artifacts into the private cache.

``mlflow-artifacts:`` URIs (the server's proxied artifact store, ``--serve-artifacts``) are read
through ``/api/2.0/mlflow-artifacts/artifacts`` with the tracking server's credentials; any
other artifact URI (``s3://``, ``gs://``, ``file://``, a local path …) is read with fsspec.

The cache entry is keyed by what was resolved (registered name and version, or the run / logged
model id) *and* the MLmodel file's content, so a resolved version is downloaded once, while a
new version (or a re-logged model) gets a new entry. Entries are written into a private (0700)
temporary directory and renamed into place, so a reader never sees half a model.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Protocol
from urllib.parse import quote, unquote, urlparse

from spark_models.exceptions import ModelNotFoundError, TrackingServerError
from spark_models.tracking.rest import ARTIFACTS_API, RestClient

_logger = logging.getLogger(__name__)
_COMPLETE = ".complete"


class ArtifactReader(Protocol):
    """Reads one model directory of an artifact store."""

    location: str

    def read_bytes(self, rel: str) -> bytes: ...

    def download_to(self, dest: Path) -> None: ...


class ProxiedReader:
    """A directory under the tracking server's proxied artifact API."""

    def __init__(self, client: RestClient, root: str, location: str) -> None:
        self.client, self.root, self.location = client, root.strip("/"), location

    def _path(self, rel: str) -> str:
        return "/".join(p for p in (self.root, rel.strip("/")) if p)

    def read_bytes(self, rel: str) -> bytes:
        return self.client.request("GET", f"{ARTIFACTS_API}/{quote(self._path(rel))}").content

    def _list(self, rel: str) -> list[dict]:
        body = self.client.request("GET", ARTIFACTS_API, params={"path": self._path(rel)}).json()
        return body.get("files", [])

    def download_to(self, dest: Path) -> None:
        pending = [""]
        while pending:
            rel = pending.pop()
            for entry in self._list(rel):
                base = str(entry.get("path", "")).rsplit("/", 1)[-1]
                if base in ("", ".", ".."):
                    raise TrackingServerError(f"Listing {self.location!r} gave a bad file name {entry.get('path')!r}")
                child = f"{rel}/{base}".lstrip("/")
                if entry.get("is_dir"):
                    pending.append(child)
                    continue
                target = dest / child
                target.parent.mkdir(parents=True, exist_ok=True)
                response = self.client.request("GET", f"{ARTIFACTS_API}/{quote(self._path(child))}", stream=True)
                with open(target, "wb") as out:
                    for chunk in response.iter_content(chunk_size=1 << 20):
                        out.write(chunk)


class FsspecReader:
    """A directory of any fsspec-readable store (or a local path)."""

    def __init__(self, location: str) -> None:
        import fsspec

        self.location = location
        self.fs, path = fsspec.core.url_to_fs(location)
        self.root = path.rstrip("/")

    def read_bytes(self, rel: str) -> bytes:
        try:
            return self.fs.cat_file(f"{self.root}/{rel}")
        except FileNotFoundError:
            raise ModelNotFoundError(f"No {rel} under artifact location {self.location!r}") from None

    def download_to(self, dest: Path) -> None:
        for src in self.fs.find(self.root):
            target = dest / src[len(self.root):].lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            self.fs.get_file(src, str(target))


def artifact_reader(artifact_uri: str, client: RestClient | None) -> ArtifactReader:
    """The reader for ``artifact_uri``: proxied through the server, or fsspec."""
    parsed = urlparse(artifact_uri)
    if parsed.scheme == "mlflow-artifacts":
        if client is None:
            raise ModelNotFoundError(f"{artifact_uri!r} needs a tracking server to download through")
        if parsed.netloc and parsed.netloc != urlparse(client.server).netloc:
            scheme = urlparse(client.server).scheme
            client = RestClient(f"{scheme}://{parsed.netloc}", client.uri)
        return ProxiedReader(client, unquote(parsed.path), artifact_uri)
    if parsed.scheme in ("http", "https") and client is not None and ARTIFACTS_API in parsed.path:
        root = parsed.path.split(ARTIFACTS_API, 1)[1]
        return ProxiedReader(RestClient(f"{parsed.scheme}://{parsed.netloc}", client.uri), unquote(root), artifact_uri)
    return FsspecReader(artifact_uri)


def private_cache_root() -> Path:
    """``<cache_dir>/registry``, created private (0700)."""
    from spark_models.storage import cache_dir

    root = cache_dir() / "registry"
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    return root


def cache_key(identity: str, mlmodel: bytes) -> str:
    """The cache entry name for ``identity`` (name+version or run/model id) and MLmodel content."""
    digest = hashlib.sha256(identity.encode())
    digest.update(b"\0")
    digest.update(mlmodel)
    return digest.hexdigest()[:32]


def fetch_model(reader: ArtifactReader, identity: str, dst_path: str | os.PathLike | None = None) -> Path:
    """The model directory of ``reader`` on local disk: ``dst_path``, or the cache entry."""
    try:
        mlmodel = reader.read_bytes("MLmodel")
    except ModelNotFoundError as e:
        raise ModelNotFoundError(f"No MLmodel file at {reader.location!r} ({identity}): {e}") from None
    if dst_path is not None:
        target = Path(dst_path)
        target.mkdir(parents=True, exist_ok=True)
        reader.download_to(target)
        return target.resolve()
    target = private_cache_root() / cache_key(identity, mlmodel)
    if (target / _COMPLETE).exists():
        _logger.info("Using cached model %s (%s) at %s", identity, reader.location, target)
        return target
    return _download_atomically(reader, target, identity)


def _download_atomically(reader: ArtifactReader, target: Path, identity: str) -> Path:
    tmp = Path(tempfile.mkdtemp(prefix=".download-", dir=target.parent))  # mkdtemp is 0700
    try:
        _logger.info("Downloading model %s from %s to %s", identity, reader.location, target)
        reader.download_to(tmp)
        if not (tmp / "MLmodel").is_file():
            raise ModelNotFoundError(f"Downloading {reader.location!r} ({identity}) gave no MLmodel file")
        (tmp / _COMPLETE).touch()
        if target.exists() and not (target / _COMPLETE).exists():
            shutil.rmtree(target, ignore_errors=True)
        try:
            os.replace(tmp, target)
        except OSError:
            if not (target / _COMPLETE).exists():  # not another process winning the race
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target
