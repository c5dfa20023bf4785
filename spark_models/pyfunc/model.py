"""Custom Python models: ``PythonModel``, ``PythonModelContext`` and their loader.

This module is the ``loader_module`` of custom models (MLflow's is ``mlflow.pyfunc.model``,
which maps here). ``python_model.pkl`` is a cloudpickle file: loading it runs code, so
load only models you trust.
"""

from __future__ import annotations

import inspect
import logging
import os
from pathlib import Path
from typing import Any, Sequence

from spark_models import serialization
from spark_models.environment import default_requirements
from spark_models.exceptions import ArtifactNotFoundError, InvalidArgumentError, MalformedModelError
from spark_models.flavors.contract import PYFUNC, Flavor, LoadContext
from spark_models.flavors.saving import saved_model
from spark_models.mlmodel import Model

_logger = logging.getLogger(__name__)

PYTHON_MODEL_FILE = "python_model.pkl"
ARTIFACTS_DIR = "artifacts"
LOADER_MODULE = "spark_models.pyfunc.model"


class PythonModel:
    """Base class of custom models. Override ``predict``; ``load_context`` is optional.

    Both forms of ``predict`` work: ``predict(self, context, model_input, params=None)``
    (MLflow 1.x/2.x) and ``predict(self, model_input, params=None)`` (MLflow 3).
    """

    def load_context(self, context: "PythonModelContext") -> None:
        """Load artifacts from ``context.artifacts``; called once when the model loads."""

    def predict(self, context, model_input, params: dict[str, Any] | None = None):  # pragma: no cover
        raise NotImplementedError("PythonModel subclasses must implement predict()")


class PythonModelContext:
    """What ``load_context`` receives: local artifact paths and the model config."""

    def __init__(self, artifacts: dict[str, str], model_config: dict[str, Any] | None = None):
        self._artifacts = dict(artifacts)
        self._model_config = dict(model_config or {})

    @property
    def artifacts(self) -> dict[str, str]:
        """Artifact name → absolute local path."""
        return self._artifacts

    @property
    def model_config(self) -> dict[str, Any]:
        return self._model_config


class _MlflowTypeHints:
    """Stand-in for ``mlflow.models.signature._TypeHints`` found in MLflow 3 pickles."""

    def __init__(self, input=None, output=None):
        self.input = input
        self.output = output


def _predict_call_style(predict) -> tuple[bool, bool]:
    """(takes context, takes params) for a bound ``predict`` method."""
    try:
        sig = inspect.signature(predict)
    except (TypeError, ValueError):
        return True, True
    params = list(sig.parameters.values())
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    takes_context = len(positional) >= 2 and positional[0].name != "model_input"
    takes_params = "params" in sig.parameters or any(p.kind == p.VAR_KEYWORD for p in params)
    return takes_context, takes_params


class _PythonModelPyfuncWrapper:
    """Adapts a loaded ``PythonModel`` to ``predict(model_input, params=None)``."""

    def __init__(self, python_model: PythonModel, context: PythonModelContext):
        self.python_model = python_model
        self.context = context
        self._takes_context, self._takes_params = _predict_call_style(python_model.predict)

    def predict(self, model_input: Any, params: dict[str, Any] | None = None) -> Any:
        args = (self.context, model_input) if self._takes_context else (model_input,)
        if self._takes_params:
            return self.python_model.predict(*args, params=params)
        if params:
            _logger.warning("The model's predict() takes no params; ignoring %s", sorted(params))
        return self.python_model.predict(*args)

    def unwrap_python_model(self) -> PythonModel:
        return self.python_model


def _copy_artifacts(artifacts: dict[str, str], model_dir: Path) -> dict[str, dict[str, str]]:
    """Copy each artifact (local path or fsspec URI) under ``artifacts/``; returns the MLmodel entry."""
    import fsspec

    entries: dict[str, dict[str, str]] = {}
    dest_root = model_dir / ARTIFACTS_DIR
    dest_root.mkdir()
    for name, uri in artifacts.items():
        fs, src = fsspec.core.url_to_fs(str(uri))
        if not fs.exists(src):
            raise ArtifactNotFoundError(f"Artifact {name!r}: {uri!r} does not exist")
        base = Path(src.rstrip("/")).name
        rel = Path(ARTIFACTS_DIR) / base
        if (model_dir / rel).exists():  # two artifacts with one file name: keep both
            rel = Path(ARTIFACTS_DIR) / name / base
        fs.get(src, str(model_dir / rel), recursive=fs.isdir(src))
        entries[name] = {"path": rel.as_posix(), "uri": str(uri)}
    return entries


def save_model(
    path: str | os.PathLike,
    python_model: PythonModel | None = None,
    artifacts: dict[str, str] | None = None,
    code_paths: Sequence[str | os.PathLike] | None = None,
    conda_env: Any = None,
    pip_requirements: Any = None,
    extra_pip_requirements: Any = None,
    signature: Any = None,
    input_example: Any = None,
    metadata: dict[str, Any] | None = None,
    model_config: dict[str, Any] | None = None,
    mlflow_model: Model | None = None,
) -> Model:
    """Save a custom ``PythonModel`` with its artifacts as a python_function model."""
    if python_model is None:
        raise InvalidArgumentError("save_model needs python_model (a PythonModel instance)")
    if not callable(getattr(python_model, "predict", None)):
        raise InvalidArgumentError(f"python_model must have a predict() method; got {type(python_model).__name__}")
    with saved_model(path, default_pip=default_pip_requirements(), mlflow_model=mlflow_model, code_paths=code_paths,
                     signature=signature, input_example=input_example, conda_env=conda_env,
                     pip_requirements=pip_requirements, extra_pip_requirements=extra_pip_requirements,
                     metadata=metadata) as draft:
        serialization.dump(python_model, draft.dir / PYTHON_MODEL_FILE, serialization.CLOUDPICKLE)
        conf: dict[str, Any] = {"python_model": PYTHON_MODEL_FILE, "cloudpickle_version": _cloudpickle_version(),
                                "code": draft.code}
        if artifacts:
            conf["artifacts"] = _copy_artifacts(artifacts, draft.dir)
        if model_config:
            conf["config"] = model_config  # MLflow's key (MODEL_CONFIG)
        draft.set_pyfunc(FLAVOR.module, **conf)
        draft.predict_for_signature = lambda example: _wrapper(draft.dir, conf, model_config).predict(example)
    return draft.model


def default_pip_requirements() -> list[str]:
    return default_requirements("cloudpickle")


def _cloudpickle_version() -> str:
    import cloudpickle

    return cloudpickle.__version__


def _artifact_paths(context: LoadContext, conf: dict[str, Any]) -> dict[str, str]:
    paths = {}
    for name, entry in (conf.get("artifacts") or {}).items():
        rel = entry.get("path") if isinstance(entry, dict) else entry
        full = context.path(rel, f"artifact {name!r}")
        if not full.exists():
            raise ArtifactNotFoundError(f"Artifact {name!r} of the model is missing: {str(full)!r}")
        paths[name] = str(full)
    return paths


def _wrapper(model_dir: Path, conf: dict[str, Any], model_config: dict[str, Any] | None) -> "_PythonModelPyfuncWrapper":
    model = Model().add_flavor(PYFUNC, **conf)
    return _load_python_model(LoadContext(model_dir, model, dict(model_config or {})))


def _load_python_model(context: LoadContext) -> _PythonModelPyfuncWrapper:
    """The pyfunc form: unpickle ``python_model.pkl`` and call its ``load_context``."""
    conf = context.pyfunc_conf
    if "python_model" not in conf:
        raise MalformedModelError(f"{context.model_dir}/MLmodel: python_function flavor has no 'python_model' entry")
    python_model = serialization.load_pickle(context.path(conf["python_model"], "python_model"))
    # "config" is MLflow's key; "model_config" is what spark-models 0.1 wrote.
    config = {**(conf.get("config") or conf.get("model_config") or {}), **context.model_config}
    model_context = PythonModelContext(_artifact_paths(context, conf), config)
    python_model.load_context(model_context)
    return _PythonModelPyfuncWrapper(python_model, model_context)


def load_model(model_uri: str | os.PathLike, dst_path: str | os.PathLike | None = None) -> Any:
    """The ``PyFuncModel`` of a custom model (as :func:`spark_models.pyfunc.load_model`)."""
    from spark_models.pyfunc.loading import load_model as load_pyfunc_model

    return load_pyfunc_model(model_uri, dst_path=dst_path)


FLAVOR = Flavor(
    name=PYFUNC,
    save_model=save_model,
    load_model=load_model,
    load_pyfunc=_load_python_model,
    default_pip_requirements=default_pip_requirements,
    module=LOADER_MODULE,
    mlflow_module="mlflow.pyfunc.model",
    runs_code=lambda context: f"unpickles {context.pyfunc_conf.get('python_model', PYTHON_MODEL_FILE)} (cloudpickle)",
)
_load_pyfunc = FLAVOR.mlflow_loader()
