"""A small client of the MLflow tracking server's REST API (``requests``; never imports MLflow).

Configuration comes from MLflow's own environment variables:

- ``MLFLOW_TRACKING_URI`` — ``http(s)://host[:port][/prefix]`` of the server;
- ``MLFLOW_TRACKING_TOKEN`` — sent as ``Authorization: Bearer <token>``; otherwise
  ``MLFLOW_TRACKING_USERNAME`` / ``MLFLOW_TRACKING_PASSWORD`` — HTTP basic auth;
- ``MLFLOW_TRACKING_INSECURE_TLS=true`` — do not verify the server's TLS certificate;
- ``MLFLOW_TRACKING_SERVER_CERT_PATH`` — a CA bundle to verify it with.

Retries: a request that cannot connect, times out, or gets HTTP 429/500/502/503/504 is retried
``SPARK_MODELS_HTTP_RETRIES`` times (default 3) with exponential back-off (1 s, 2 s, 4 s …,
``SPARK_MODELS_HTTP_BACKOFF`` seconds as the base); each request waits at most
``SPARK_MODELS_HTTP_TIMEOUT`` seconds (default 60). After the last try the error is a
:class:`~spark_models.exceptions.TrackingServerError` naming the model URI and the server.
HTTP 401/403 raise :class:`~spark_models.exceptions.TrackingAuthError` at once, 404 (and
MLflow's ``RESOURCE_DOES_NOT_EXIST``) :class:`~spark_models.exceptions.ModelNotFoundError`.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from spark_models.exceptions import (
    InvalidModelUriError,
    MissingDependencyError,
    ModelNotFoundError,
    TrackingAuthError,
    TrackingServerError,
)

_logger = logging.getLogger(__name__)

_RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
_NOT_FOUND_CODES = frozenset({"RESOURCE_DOES_NOT_EXIST", "NOT_FOUND"})
API = "/api/2.0/mlflow"
ARTIFACTS_API = "/api/2.0/mlflow-artifacts/artifacts"


def _env_number(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


def tracking_uri_from_env() -> str | None:
    """``MLFLOW_TRACKING_URI``, or None when unset."""
    return os.environ.get("MLFLOW_TRACKING_URI") or None


class RestClient:
    """Read-only calls to one tracking server, with auth, timeouts and retries.

    ``uri`` is the model URI being resolved; every error message names it and the server.
    """

    def __init__(self, tracking_uri: str, uri: str) -> None:
        try:
            import requests
        except ImportError:
            raise MissingDependencyError(f"Resolving {uri!r} without MLflow needs requests: pip install requests") from None
        if not tracking_uri.lower().startswith(("http://", "https://")):
            raise MissingDependencyError(
                f"{uri!r} is an MLflow tracking/registry URI; resolving it needs MLflow "
                "(pip install 'spark-models[mlflow]' installs mlflow-skinny) because the tracking URI "
                f"{tracking_uri!r} is not an http(s):// server the REST client could ask instead."
            )
        self.server = tracking_uri.rstrip("/")
        self.uri = uri
        self.timeout = _env_number("SPARK_MODELS_HTTP_TIMEOUT", 60.0)
        self.retries = int(_env_number("SPARK_MODELS_HTTP_RETRIES", 3))
        self.backoff = _env_number("SPARK_MODELS_HTTP_BACKOFF", 1.0)
        self._requests = requests
        self.session = requests.Session()
        self.session.headers.update(auth_headers())
        self.session.headers["User-Agent"] = "spark-models"
        self.session.verify = _tls_verify()

    def _where(self) -> str:
        return f"resolving {self.uri!r} at tracking server {self.server}"

    def request(self, method: str, path: str, *, stream: bool = False, **kwargs: Any):
        """One HTTP call (``path`` is under the server root), retried as the module says."""
        url = f"{self.server}{path}"
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            try:
                response = self.session.request(method, url, timeout=self.timeout, stream=stream, **kwargs)
            except (self._requests.ConnectionError, self._requests.Timeout) as e:
                if last:
                    raise TrackingServerError(
                        f"Tracking server {self.server} is unreachable while {self._where()} "
                        f"({type(e).__name__}; tried {self.retries + 1} times): {e}"
                    ) from None
                self._sleep(attempt, f"{type(e).__name__}")
                continue
            if response.status_code in _RETRY_STATUS and not last:
                response.close()
                self._sleep(attempt, f"HTTP {response.status_code}")
                continue
            self._raise_for_status(response, path)
            return response
        raise AssertionError("unreachable")  # pragma: no cover

    def _sleep(self, attempt: int, why: str) -> None:
        delay = self.backoff * (2**attempt)
        _logger.warning("%s from %s while %s; retrying in %.1f s", why, self.server, self._where(), delay)
        time.sleep(delay)

    def _raise_for_status(self, response, path: str) -> None:
        status = response.status_code
        if status < 400:
            return
        detail = _error_detail(response)
        if status in (401, 403):
            raise TrackingAuthError(
                f"Tracking server {self.server} refused access (HTTP {status}) while {self._where()}: {detail}. "
                "Set MLFLOW_TRACKING_TOKEN, or MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD."
            )
        if status == 404 or _error_code(response) in _NOT_FOUND_CODES or (status == 400 and "not found" in detail.lower()):
            raise ModelNotFoundError(f"Not found (HTTP {status} for {path.split('?')[0]}) while {self._where()}: {detail}")
        if status < 500:
            raise InvalidModelUriError(f"The tracking server rejected the request (HTTP {status}) while {self._where()}: {detail}")
        raise TrackingServerError(f"Tracking server {self.server} answered HTTP {status} while {self._where()}: {detail}")

    def get_json(self, endpoint: str, **params: Any) -> dict:
        """GET ``/api/2.0/mlflow/<endpoint>`` with query ``params``; the decoded JSON."""
        return self._json(self.request("GET", f"{API}/{endpoint}", params=params))

    def post_json(self, endpoint: str, body: dict) -> dict:
        """POST a JSON ``body`` to ``/api/2.0/mlflow/<endpoint>``; the decoded JSON."""
        return self._json(self.request("POST", f"{API}/{endpoint}", json=body))

    def _json(self, response) -> dict:
        try:
            return response.json()
        except ValueError:
            raise TrackingServerError(
                f"Tracking server {self.server} sent a response that is not JSON while {self._where()} "
                f"(HTTP {response.status_code}, {response.headers.get('Content-Type')})"
            ) from None

    # -- the few read calls resolving needs ---------------------------------------------------

    def get_run(self, run_id: str) -> dict:
        """The run's ``info`` (run_id, experiment_id, artifact_uri …)."""
        return self.get_json("runs/get", run_id=run_id)["run"]["info"]

    def find_logged_model(self, experiment_id: str, name: str, run_id: str) -> dict | None:
        """The logged model called ``name`` that ``run_id`` produced, or None (MLflow 3)."""
        body: dict[str, Any] = {"experiment_ids": [experiment_id], "filter": f"name = '{_quote(name)}'"}
        while True:
            try:
                page = self.post_json("logged-models/search", body)
            except ModelNotFoundError:
                return None  # an MLflow 2 server has no logged models
            for model in page.get("models", []):
                if model.get("info", {}).get("source_run_id") == run_id:
                    return model["info"]
            if not page.get("next_page_token"):
                return None
            body["page_token"] = page["next_page_token"]

    def get_logged_model(self, model_id: str) -> dict:
        """A logged model's ``info`` (model_id, artifact_uri, source_run_id …)."""
        return self.get_json(f"logged-models/{model_id}")["model"]["info"]

    def get_model_version(self, name: str, version: str) -> dict:
        return self.get_json("model-versions/get", name=name, version=version)["model_version"]

    def get_model_version_by_alias(self, name: str, alias: str) -> dict:
        return self.get_json("registered-models/alias", name=name, alias=alias)["model_version"]

    def latest_model_version(self, name: str) -> dict:
        """The registered model's highest version (MLflow's ``/latest``)."""
        versions: list[dict] = []
        params: dict[str, Any] = {"filter": f"name = '{_quote(name)}'", "max_results": 1000}
        while True:
            page = self.get_json("model-versions/search", **params)
            versions += page.get("model_versions", [])
            if not page.get("next_page_token"):
                break
            params["page_token"] = page["next_page_token"]
        if not versions:
            raise ModelNotFoundError(f"Registered model {name!r} has no versions while {self._where()}")
        return max(versions, key=lambda v: int(v["version"]))

    def get_model_version_download_uri(self, name: str, version: str) -> str:
        return self.get_json("model-versions/get-download-uri", name=name, version=version)["artifact_uri"]


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


def _error_code(response) -> str | None:
    try:
        return response.json().get("error_code")
    except (ValueError, AttributeError):
        return None


def _error_detail(response) -> str:
    try:
        body = response.json()
        if isinstance(body, dict) and body.get("message"):
            return f"{body.get('error_code', '')} {body['message']}".strip()
    except ValueError:
        pass
    text = (response.text or "").strip().replace("\n", " ")
    return text[:300] or response.reason or "no details"


def auth_headers() -> dict[str, str]:
    """The Authorization header MLflow's environment variables ask for (or none)."""
    token = os.environ.get("MLFLOW_TRACKING_TOKEN")
    if token:
        return {"Authorization": f"Bearer {token}"}
    user, password = os.environ.get("MLFLOW_TRACKING_USERNAME"), os.environ.get("MLFLOW_TRACKING_PASSWORD")
    if user and password:
        import base64

        basic = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        return {"Authorization": f"Basic {basic}"}
    return {}


def _tls_verify() -> bool | str:
    if os.environ.get("MLFLOW_TRACKING_INSECURE_TLS", "").lower() in ("1", "true", "yes"):
        return False
    return os.environ.get("MLFLOW_TRACKING_SERVER_CERT_PATH") or True
