"""Resolve a model URI on the scoring side into a local directory plus its provenance.

``runs:/`` and ``models:/`` URIs are resolved through MLflow's client when ``mlflow`` is
importable, otherwise through the tracking server's REST API (``MLFLOW_TRACKING_URI``, see
:mod:`spark_models.tracking.rest`). ``SPARK_MODELS_TRACKING_CLIENT=rest`` forces the REST
client even beside MLflow (``mlflow`` forces MLflow's; the default ``auto`` picks).

Errors name the URI and the server: :class:`~spark_models.exceptions.ModelNotFoundError` (no such
run, version, alias or logged model), :class:`~spark_models.exceptions.TrackingAuthError`
(401/403), :class:`~spark_models.exceptions.TrackingServerError` (down, 5xx). Retries: the REST
client's are documented in :mod:`spark_models.tracking.rest`; through MLflow, MLflow's own apply
(``MLFLOW_HTTP_REQUEST_MAX_RETRIES``, ``MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR``,
``MLFLOW_HTTP_REQUEST_TIMEOUT``).

An alias or ``/latest`` is looked up on every call (so a moved alias is picked up by the next
job), while the files of a resolved version are downloaded once into the cache
(:mod:`spark_models.tracking.artifacts`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlparse, urlunparse

from spark_models.exceptions import (
    InvalidArgumentError,
    InvalidModelUriError,
    MissingDependencyError,
    ModelNotFoundError,
    TrackingAuthError,
    TrackingServerError,
)
from spark_models.tracking.artifacts import ArtifactReader, artifact_reader, fetch_model
from spark_models.tracking.rest import RestClient, tracking_uri_from_env
from spark_models.tracking.uris import RegistryUri, is_registry_uri, parse_registry_uri

_logger = logging.getLogger(__name__)
CLIENT_ENV = "SPARK_MODELS_TRACKING_CLIENT"


@dataclass(frozen=True)
class ModelSource:
    """Where a model's files are on local disk, and which tracked model they are."""

    local_dir: Path
    uri: str
    tracking_uri: str | None = None
    registered_name: str | None = None
    version: str | None = None
    alias: str | None = None
    run_id: str | None = None
    model_id: str | None = None
    artifact_uri: str | None = None

    def as_dict(self) -> dict[str, str]:
        """The provenance fields that are set, as strings (``local_dir`` left out)."""
        return {f.name: str(getattr(self, f.name)) for f in fields(self)
                if f.name != "local_dir" and getattr(self, f.name) is not None}


def resolve_model_source(model_uri: str | os.PathLike, dst_path: str | os.PathLike | None = None) -> ModelSource:
    """Resolve ``model_uri`` (local path, storage URL, ``runs:/`` or ``models:/``) to a :class:`ModelSource`."""
    uri = os.fspath(model_uri)
    if not is_registry_uri(uri):
        from spark_models.storage import resolve_storage_uri

        return ModelSource(local_dir=resolve_storage_uri(uri, dst_path), uri=uri)
    parsed = parse_registry_uri(uri)
    backend = _backend(uri)
    with backend.translate_errors():
        source, reader, identity = _resolve(parsed, backend)
        local = fetch_model(reader, identity, dst_path)
    result = ModelSource(local_dir=local, **source)
    _logger.info("Resolved %s to %s (version %s, run %s, model %s) at %s", uri,
                 result.registered_name or result.model_id or result.run_id, result.version,
                 result.run_id, result.model_id, local)
    return result


def _backend(uri: str):
    choice = (os.environ.get(CLIENT_ENV) or "auto").lower()
    if choice not in ("auto", "rest", "mlflow"):
        raise InvalidArgumentError(f"{CLIENT_ENV} must be auto, rest or mlflow, not {choice!r}")
    if choice != "rest":
        try:
            import mlflow  # noqa: F401
        except ImportError:
            if choice == "mlflow":
                raise MissingDependencyError(f"{CLIENT_ENV}=mlflow but mlflow is not installed (resolving {uri!r})") from None
        else:
            return _MlflowBackend(uri)
    tracking_uri = tracking_uri_from_env()
    if not tracking_uri:
        raise MissingDependencyError(
            f"{uri!r} is an MLflow tracking/registry URI; resolving it needs MLflow "
            "(pip install 'spark-models[mlflow]' installs mlflow-skinny) or, without MLflow, "
            "MLFLOW_TRACKING_URI set to the tracking server's http(s):// URL."
        )
    return _RestBackend(RestClient(tracking_uri, uri))


def _resolve(parsed: RegistryUri, backend) -> tuple[dict[str, Any], ArtifactReader, str]:
    base: dict[str, Any] = {"uri": parsed.uri, "tracking_uri": _without_credentials(backend.tracking_uri)}
    if parsed.kind == "run":
        return _resolve_run(parsed.run_id, parsed.path, backend, base)
    if parsed.kind == "logged_model":
        info = backend.logged_model(parsed.model_id)
        base.update(model_id=parsed.model_id, run_id=info.get("source_run_id") or None,
                    artifact_uri=info["artifact_uri"])
        return base, backend.reader(info["artifact_uri"]), f"logged-model:{parsed.model_id}"
    if parsed.kind == "alias":
        mv = backend.version_by_alias(parsed.name, parsed.alias)
        base["alias"] = parsed.alias
    elif parsed.kind == "latest":
        mv = backend.latest_version(parsed.name)
    else:
        mv = backend.version(parsed.name, parsed.version)
    return _resolve_version(mv, backend, base)


def _without_credentials(uri: str | None) -> str | None:
    """``uri`` with any ``user:password@`` removed: provenance is written into scored tables."""
    if not uri:
        return uri
    parsed = urlparse(uri)
    if parsed.username is None and parsed.password is None:
        return uri
    return urlunparse(parsed._replace(netloc=parsed.netloc.rpartition("@")[2]))


def _resolve_run(run_id: str, path: str, backend, base: dict) -> tuple[dict, ArtifactReader, str]:
    run = backend.run(run_id)
    base["run_id"] = run_id
    name, _, rest = path.partition("/")
    logged = backend.logged_model_of_run(run["experiment_id"], name, run_id) if name else None
    if logged is not None:
        location = "/".join(p for p in (logged["artifact_uri"].rstrip("/"), rest) if p)
        base["model_id"] = logged["model_id"]
    else:
        location = "/".join(p for p in (run["artifact_uri"].rstrip("/"), path) if p)
    base["artifact_uri"] = location
    return base, backend.reader(location), f"run:{run_id}/{path}"


def _resolve_version(mv: dict, backend, base: dict) -> tuple[dict, ArtifactReader, str]:
    name, version = mv["name"], str(mv["version"])
    base.update(registered_name=name, version=version, run_id=mv.get("run_id") or None,
                model_id=mv.get("model_id") or _model_id_of(mv.get("source")))
    location = backend.download_uri(name, version)
    if is_registry_uri(location):  # a source such as models:/m-<id> or runs:/<id>/model
        inner, reader, _ = _resolve(parse_registry_uri(location), backend)
        location = inner["artifact_uri"]
        base["model_id"] = base["model_id"] or inner.get("model_id")
        base["run_id"] = base["run_id"] or inner.get("run_id")
    else:
        reader = backend.reader(location)
    base["artifact_uri"] = location
    return base, reader, f"models:{name}/{version}"


def _model_id_of(source: str | None) -> str | None:
    """The logged model id in a version's ``source`` (``models:/m-<id>``, MLflow 3), else None."""
    if source and is_registry_uri(source):
        try:
            return parse_registry_uri(source).model_id
        except InvalidModelUriError:
            return None
    return None


class _RestBackend:
    """Resolution calls answered by the tracking server's REST API."""

    def __init__(self, client: RestClient) -> None:
        self.client = client
        self.tracking_uri = client.server

    @contextlib.contextmanager
    def translate_errors(self) -> Iterator[None]:
        yield  # RestClient already raises spark-models errors naming the URI and server

    def run(self, run_id: str) -> dict:
        return self.client.get_run(run_id)

    def logged_model_of_run(self, experiment_id: str, name: str, run_id: str) -> dict | None:
        return self.client.find_logged_model(experiment_id, name, run_id)

    def logged_model(self, model_id: str) -> dict:
        return self.client.get_logged_model(model_id)

    def version(self, name: str, version: str) -> dict:
        return self.client.get_model_version(name, version)

    def version_by_alias(self, name: str, alias: str) -> dict:
        return self.client.get_model_version_by_alias(name, alias)

    def latest_version(self, name: str) -> dict:
        return self.client.latest_model_version(name)

    def download_uri(self, name: str, version: str) -> str:
        return self.client.get_model_version_download_uri(name, version)

    def reader(self, artifact_uri: str) -> ArtifactReader:
        return artifact_reader(artifact_uri, self.client)


class _MlflowBackend:
    """Resolution calls answered by MLflow's own client (whatever tracking store it is set to)."""

    def __init__(self, uri: str) -> None:
        import mlflow
        from mlflow import MlflowClient

        self.uri = uri
        self.tracking_uri = mlflow.get_tracking_uri()
        self.client = MlflowClient(self.tracking_uri)

    @contextlib.contextmanager
    def translate_errors(self) -> Iterator[None]:
        from mlflow.exceptions import MlflowException

        try:
            yield
        except MlflowException as e:
            where = f"resolving {self.uri!r} at tracking server {self.tracking_uri}"
            code = getattr(e, "error_code", "")
            if code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND") or "not found" in str(e.message).lower():
                raise ModelNotFoundError(f"Not found while {where}: {e.message}") from None
            if code in ("PERMISSION_DENIED", "UNAUTHENTICATED"):
                raise TrackingAuthError(f"Access refused while {where}: {e.message}") from None
            if code == "INVALID_PARAMETER_VALUE":
                raise InvalidModelUriError(f"The tracking server rejected the request while {where}: {e.message}") from None
            raise TrackingServerError(f"MLflow failed while {where}: {e.message}") from None

    def run(self, run_id: str) -> dict:
        info = self.client.get_run(run_id).info
        return {"experiment_id": info.experiment_id, "artifact_uri": info.artifact_uri}

    def logged_model_of_run(self, experiment_id: str, name: str, run_id: str) -> dict | None:
        search = getattr(self.client, "search_logged_models", None)
        if search is None:  # MLflow 2
            return None
        quoted = name.replace("'", "\\'")
        token = None
        while True:
            page = search(experiment_ids=[experiment_id], filter_string=f"name = '{quoted}'", page_token=token)
            for model in page:
                if model.source_run_id == run_id:
                    return self._logged(model)
            if not page.token:
                return None
            token = page.token

    @staticmethod
    def _logged(model) -> dict:
        return {"model_id": model.model_id, "artifact_uri": model.artifact_location,
                "source_run_id": model.source_run_id}

    def logged_model(self, model_id: str) -> dict:
        return self._logged(self.client.get_logged_model(model_id))

    @staticmethod
    def _mv(mv) -> dict:
        return {"name": mv.name, "version": mv.version, "run_id": mv.run_id,
                "model_id": getattr(mv, "model_id", None), "source": mv.source}

    def version(self, name: str, version: str) -> dict:
        return self._mv(self.client.get_model_version(name, version))

    def version_by_alias(self, name: str, alias: str) -> dict:
        return self._mv(self.client.get_model_version_by_alias(name, alias))

    def latest_version(self, name: str) -> dict:
        quoted = name.replace("'", "\\'")
        versions = self.client.search_model_versions(f"name = '{quoted}'")
        if not versions:
            raise ModelNotFoundError(f"Registered model {name!r} has no versions (resolving {self.uri!r} "
                                     f"at tracking server {self.tracking_uri})")
        return self._mv(max(versions, key=lambda v: int(v.version)))

    def download_uri(self, name: str, version: str) -> str:
        return self.client.get_model_version_download_uri(name, version)

    def reader(self, artifact_uri: str) -> ArtifactReader:
        return _MlflowReader(artifact_uri, self.tracking_uri)


class _MlflowReader:
    """Reads an artifact location with ``mlflow.artifacts`` (any store MLflow supports)."""

    def __init__(self, location: str, tracking_uri: str) -> None:
        self.location, self.tracking_uri = location.rstrip("/"), tracking_uri

    def read_bytes(self, rel: str) -> bytes:
        import mlflow.artifacts

        with tempfile.TemporaryDirectory() as tmp:
            local = mlflow.artifacts.download_artifacts(artifact_uri=f"{self.location}/{rel}", dst_path=tmp,
                                                        tracking_uri=self.tracking_uri)
            return Path(local).read_bytes()

    def download_to(self, dest: Path) -> None:
        import shutil

        import mlflow.artifacts

        incoming = dest / ".incoming"
        incoming.mkdir()
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=self.location, dst_path=str(incoming),
                                                         tracking_uri=self.tracking_uri))
        for child in list(local.iterdir()):  # MLflow puts the contents under the location's basename
            os.replace(child, dest / child.name)
        shutil.rmtree(incoming, ignore_errors=True)
