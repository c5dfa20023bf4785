"""Parse ``runs:/`` and ``models:/`` URIs into a :class:`RegistryUri` (no I/O, no MLflow).

Accepted forms (as MLflow reads them):

- ``runs:/<run_id>/<path>`` — an artifact path of a run; in MLflow 3 the first segment may
  also name a logged model of that run (``log_model(name=...)``).
- ``models:/<name>/<version>`` — a registered model version (digits).
- ``models:/<name>/latest`` — the highest version of a registered model.
- ``models:/<name>@<alias>`` — the version an alias points to now.
- ``models:/<model_id>`` — an MLflow 3 logged model (``m-<hex>``).

Stages (``models:/<name>/Production``) are deprecated in MLflow and refused here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote, urlparse

from spark_models.exceptions import InvalidModelUriError

REGISTRY_SCHEMES = ("runs", "models")
_RUN_ID = re.compile(r"^[A-Za-z0-9_\-]+$")


@dataclass(frozen=True)
class RegistryUri:
    """A parsed ``runs:/`` or ``models:/`` URI; exactly one kind of reference is set."""

    uri: str
    scheme: str  # "runs" or "models"
    run_id: str | None = None
    path: str | None = None  # runs:/ artifact path ("" for the run's root)
    name: str | None = None  # registered model name
    version: str | None = None
    alias: str | None = None
    latest: bool = False
    model_id: str | None = None

    @property
    def kind(self) -> str:
        """One of ``run``, ``version``, ``alias``, ``latest``, ``logged_model``."""
        if self.run_id is not None:
            return "run"
        if self.model_id is not None:
            return "logged_model"
        if self.alias is not None:
            return "alias"
        return "latest" if self.latest else "version"


def is_registry_uri(uri: str) -> bool:
    """Whether ``uri`` is a ``runs:/`` or ``models:/`` URI."""
    return urlparse(str(uri)).scheme.lower() in REGISTRY_SCHEMES


def _bad(uri: str, why: str) -> InvalidModelUriError:
    return InvalidModelUriError(
        f"Not a valid model URI {uri!r}: {why}. Expected runs:/<run_id>/<path>, models:/<name>/<version>, "
        "models:/<name>/latest, models:/<name>@<alias> or models:/<model_id>"
    )


def parse_registry_uri(uri: str) -> RegistryUri:
    """Parse ``uri``; a malformed one raises InvalidModelUriError naming it."""
    text = str(uri)
    parsed = urlparse(text, allow_fragments=False)
    scheme = parsed.scheme.lower()
    if scheme not in REGISTRY_SCHEMES:
        raise _bad(text, "the scheme must be runs or models")
    if parsed.netloc:
        raise _bad(text, f"a remote registry profile ({parsed.netloc!r}) is not supported; set MLFLOW_TRACKING_URI")
    if parsed.query:
        raise _bad(text, "it must not have a query string")
    path = unquote(parsed.path)
    if not path.startswith("/") or not path.strip("/"):
        raise _bad(text, "the path is empty")
    if scheme == "runs":
        return _parse_runs(text, path[1:].rstrip("/").split("/"))
    return _parse_models(text, path[1:].split("/"))


def _parse_runs(uri: str, parts: list[str]) -> RegistryUri:
    run_id, rest = parts[0], parts[1:]
    if not _RUN_ID.match(run_id):
        raise _bad(uri, f"{run_id!r} is not a run id")
    if any(p in ("", ".", "..") for p in rest):
        raise _bad(uri, "the artifact path has an empty, '.' or '..' segment")
    return RegistryUri(uri, "runs", run_id=run_id, path="/".join(rest))


def _parse_models(uri: str, parts: list[str]) -> RegistryUri:
    if len(parts) > 2 or any(not p.strip() for p in parts):
        raise _bad(uri, "models:/ takes a name and one version, 'latest' or @alias")
    if len(parts) == 2:
        name, suffix = parts
        if "@" in name:
            raise _bad(uri, "use either a version or an @alias, not both")
        if suffix.isdigit():
            return RegistryUri(uri, "models", name=name, version=str(int(suffix)))
        if suffix.lower() == "latest":
            return RegistryUri(uri, "models", name=name, latest=True)
        raise _bad(uri, f"{suffix!r} is not a version number or 'latest' (stages are deprecated in MLflow)")
    head = parts[0]
    if "@" in head:
        name, _, alias = head.rpartition("@")
        if not name.strip() or not alias.strip():
            raise _bad(uri, "both the name and the alias must be non-empty")
        return RegistryUri(uri, "models", name=name, alias=alias)
    if head in (".", ".."):
        raise _bad(uri, "'.' and '..' are not model ids")
    return RegistryUri(uri, "models", model_id=head)
