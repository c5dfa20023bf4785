"""The MLmodel file: ``Model`` reads and writes it, keeping fields other tools wrote."""

from __future__ import annotations

import datetime as _dt
import logging
import os
import uuid
from pathlib import Path
from typing import Any

import yaml

from spark_models.exceptions import FlavorNotFoundError, MalformedModelError, ModelNotFoundError
from spark_models.schema.signature import ModelSignature

_logger = logging.getLogger(__name__)

MLMODEL_FILE_NAME = "MLmodel"

# Fields with a meaning to spark-models; everything else is kept verbatim in ``extra``.
_KNOWN_FIELDS = (
    "artifact_path",
    "run_id",
    "flavors",
    "time_created",
    "utc_time_created",
    "signature",
    "saved_input_example_info",
    "databricks_runtime",
    "model_uuid",
    "mlflow_version",
    "metadata",
    "spark_models_version",
)


def _utc_now_str() -> str:
    # MLflow's own form ("YYYY-MM-DD HH:MM:SS.ffffff", UTC): ISO 8601 with a space separator.
    return str(_dt.datetime.now(_dt.timezone.utc).replace(tzinfo=None))


def _installed_mlflow_version() -> str | None:
    from importlib import metadata

    for dist in ("mlflow", "mlflow-skinny"):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return None


class Model:
    """An MLmodel file: the model's flavors and metadata.

    >>> m = Model().add_flavor("python_function", loader_module="my_flavor")
    >>> sorted(m.flavors)
    ['python_function']
    """

    def __init__(
        self,
        artifact_path: str | None = None,
        run_id: str | None = None,
        utc_time_created: str | None = None,
        flavors: dict[str, dict[str, Any]] | None = None,
        signature: ModelSignature | None = None,
        saved_input_example_info: dict[str, Any] | None = None,
        model_uuid: str | None = None,
        mlflow_version: str | None = None,
        metadata: dict[str, Any] | None = None,
        databricks_runtime: str | None = None,
        **extra: Any,
    ):
        from spark_models import __version__

        self.artifact_path = artifact_path
        self.run_id = run_id
        self.utc_time_created = utc_time_created or _utc_now_str()
        self.flavors: dict[str, dict[str, Any]] = dict(flavors or {})
        self.signature = signature
        self.saved_input_example_info = saved_input_example_info
        self.model_uuid = model_uuid or uuid.uuid4().hex
        self.mlflow_version = mlflow_version or _installed_mlflow_version()
        self.metadata = metadata
        self.databricks_runtime = databricks_runtime or os.environ.get("DATABRICKS_RUNTIME_VERSION")
        self.spark_models_version = extra.pop("spark_models_version", None) or __version__
        self.extra: dict[str, Any] = extra

    @property
    def time_created(self) -> _dt.datetime:
        """Creation time as a UTC datetime (parsed from either MLflow field)."""
        text = str(self.extra.get("time_created") or self.utc_time_created)
        return _dt.datetime.fromisoformat(text.replace("Z", "+00:00").replace("T", " "))

    def add_flavor(self, name: str, **params: Any) -> "Model":
        """Add (or replace) a flavor entry; returns self so calls chain."""
        self.flavors[name] = params
        return self

    def get_flavor(self, name: str) -> dict[str, Any]:
        """The flavor's configuration, or an error listing the flavors the model has."""
        if name not in self.flavors:
            present = ", ".join(sorted(self.flavors)) or "none"
            raise FlavorNotFoundError(
                f"The model has no {name!r} flavor. Flavors present: {present}."
            )
        return self.flavors[name]

    def to_dict(self) -> dict[str, Any]:
        """The MLmodel content as a plain dict (None fields omitted, extras kept)."""
        d: dict[str, Any] = {}
        for key in _KNOWN_FIELDS:
            value = getattr(self, key, None) if key != "time_created" else None
            if key == "signature" and value is not None:
                value = value.to_dict()
            if value is not None:
                d[key] = value
        for key, value in self.extra.items():
            d.setdefault(key, value)
        return d

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), default_flow_style=False, sort_keys=True)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the MLmodel file; ``path`` is a model directory or the file itself."""
        target = Path(path)
        if target.is_dir():
            target = target / MLMODEL_FILE_NAME
        target.write_text(self.to_yaml())
        return target

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "<dict>") -> "Model":
        """Build a Model from MLmodel content written by spark-models or MLflow 1.x–3.x."""
        if not isinstance(d, dict):
            raise MalformedModelError(f"{source}: MLmodel must be a YAML mapping, got {type(d).__name__}")
        d = dict(d)
        flavors = d.pop("flavors", None)
        if not isinstance(flavors, dict) or not flavors:
            raise MalformedModelError(f"{source}: MLmodel has no 'flavors' mapping")
        for name, conf in flavors.items():
            if not isinstance(conf, dict):
                raise MalformedModelError(f"{source}: flavor {name!r} must be a mapping, got {conf!r}")
        sig = d.pop("signature", None)
        if sig is not None and not isinstance(sig, ModelSignature):
            try:
                sig = ModelSignature.from_dict(sig)
            except Exception as e:  # SchemaError and anything a broken file can raise
                raise MalformedModelError(f"{source}: invalid signature: {e}") from e
        known = {k: d.pop(k) for k in list(d) if k in _KNOWN_FIELDS and k != "time_created"}
        model = cls(flavors=flavors, signature=sig, **known, **d)
        # A loaded file keeps exactly what it had: no invented timestamps, ids or versions.
        for key in ("utc_time_created", "model_uuid", "mlflow_version", "databricks_runtime", "spark_models_version"):
            setattr(model, key, known.get(key))
        return model

    @classmethod
    def load(cls, path_or_uri: str | os.PathLike) -> "Model":
        """Read the MLmodel of a model directory, an MLmodel file or a model URI."""
        path = Path(path_or_uri) if _looks_local(path_or_uri) else None
        if path is None:
            from spark_models.uri import resolve_model_uri

            path = resolve_model_uri(str(path_or_uri))
        mlmodel = path if path.name == MLMODEL_FILE_NAME and path.is_file() else path / MLMODEL_FILE_NAME
        if not mlmodel.parent.exists():
            raise ModelNotFoundError(f"No model at {str(path)!r}: the directory does not exist")
        if not mlmodel.is_file():
            raise ModelNotFoundError(
                f"{str(mlmodel.parent)!r} is not a model directory: it has no {MLMODEL_FILE_NAME} file"
            )
        return cls.from_dict(_read_yaml(mlmodel), source=str(mlmodel))

    def load_input_example(self, path: str | os.PathLike) -> Any:
        """The saved input example, as the kind of object it was saved from (or None)."""
        from spark_models.schema.input_example import load_input_example

        return load_input_example(self, Path(path))

    def __repr__(self) -> str:
        return f"Model(flavors={sorted(self.flavors)}, model_uuid={self.model_uuid!r})"


def _looks_local(path_or_uri: str | os.PathLike) -> bool:
    text = os.fspath(path_or_uri)
    return "://" not in text and not text.startswith(("runs:/", "models:/"))


def _read_yaml(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return yaml.safe_load(f)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e)
        raise MalformedModelError(f"{path}: malformed YAML{where}: {problem}") from None
