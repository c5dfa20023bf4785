"""Reading and writing serialized model objects (pickle, cloudpickle, skops).

Security: loading a pickle or cloudpickle file runs code chosen by whoever wrote it.
Load only models you trust. For scikit-learn the safe path is ``skops``, which loads only
types on a trusted list and never runs arbitrary code.

Pickles written by MLflow refer to MLflow classes (``mlflow.pyfunc.model.PythonModel``);
:class:`_CompatUnpickler` maps those to ours, so such files load where MLflow is absent.
"""

from __future__ import annotations

import importlib
import os
import pickle
from pathlib import Path
from typing import Any, Sequence

from spark_models.exceptions import (
    ArtifactNotFoundError,
    InvalidArgumentError,
    MalformedModelError,
    MissingDependencyError,
    UnsafeModelError,
)

PICKLE = "pickle"
CLOUDPICKLE = "cloudpickle"
SKOPS = "skops"
FORMATS = (CLOUDPICKLE, PICKLE, SKOPS)

# (module, name) in MLflow → (module, name) in spark-models, for pickles MLflow wrote.
_MLFLOW_CLASSES = {
    ("mlflow.pyfunc.model", "PythonModel"): ("spark_models.pyfunc.model", "PythonModel"),
    ("mlflow.pyfunc", "PythonModel"): ("spark_models.pyfunc.model", "PythonModel"),
    ("mlflow.pyfunc.model", "PythonModelContext"): ("spark_models.pyfunc.model", "PythonModelContext"),
    ("mlflow.models.signature", "_TypeHints"): ("spark_models.pyfunc.model", "_MlflowTypeHints"),
}


class _CompatUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        target = _MLFLOW_CLASSES.get((module, name))
        if target is not None:
            return getattr(importlib.import_module(target[0]), target[1])
        try:
            return super().find_class(module, name)
        except ModuleNotFoundError as e:
            top = module.split(".")[0]
            hint = "pip install mlflow-skinny" if top == "mlflow" else f"install the package that provides {top!r}"
            err = MissingDependencyError(
                f"The pickled model refers to {module}.{name}, but module {e.name!r} is not installed ({hint})."
            )
            err.missing_module = e.name or top
            raise err from e


def load_pickle(path: str | os.PathLike) -> Any:
    """Unpickle a (cloud)pickle file. This runs code from the file: trust its source."""
    path = Path(path)
    if not path.is_file():
        raise ArtifactNotFoundError(f"Serialized model file {str(path)!r} does not exist")
    import cloudpickle  # noqa: F401  (cloudpickle's reconstructors must be importable)

    with open(path, "rb") as f:
        try:
            return _CompatUnpickler(f).load()
        except (pickle.UnpicklingError, EOFError) as e:
            raise MalformedModelError(f"{path}: not a readable pickle file ({e})") from e


def dump(obj: Any, path: str | os.PathLike, fmt: str = CLOUDPICKLE) -> None:
    """Serialize ``obj`` to ``path`` in one of :data:`FORMATS`."""
    if fmt not in FORMATS:
        raise InvalidArgumentError(f"Unknown serialization format {fmt!r}; use one of {FORMATS}")
    if fmt == SKOPS:
        sio = _import_skops()
        sio.dump(obj, path)
        return
    if fmt == CLOUDPICKLE:
        import cloudpickle

        with open(path, "wb") as f:
            cloudpickle.dump(obj, f)
        return
    with open(path, "wb") as f:
        pickle.dump(obj, f)


def _import_skops():
    try:
        import skops.io as sio
    except ImportError:
        raise MissingDependencyError(
            "This model is stored in the skops format, which needs the 'skops' package: "
            "pip install skops (or pip install 'spark-models[sklearn]')."
        ) from None
    return sio


def load_skops(path: str | os.PathLike, trusted_types: Sequence[str] | None = None) -> Any:
    """Load a skops file, trusting only skops' defaults plus ``trusted_types``."""
    path = Path(path)
    if not path.is_file():
        raise ArtifactNotFoundError(f"Serialized model file {str(path)!r} does not exist")
    sio = _import_skops()
    trusted = list(trusted_types or [])
    untrusted = [t for t in sio.get_untrusted_types(file=path) if t not in trusted]
    if untrusted:
        raise UnsafeModelError(
            f"{path} contains types that are not trusted: {untrusted}. If you trust this file, "
            "save the model with skops_trusted_types=[...] listing them (or pass them when loading)."
        )
    return sio.load(path, trusted=trusted or None)


def load(path: str | os.PathLike, fmt: str, trusted_types: Sequence[str] | None = None) -> Any:
    """Load a serialized object written in ``fmt``."""
    if fmt == SKOPS:
        return load_skops(path, trusted_types)
    if fmt in (PICKLE, CLOUDPICKLE):
        return load_pickle(path)
    raise MalformedModelError(f"{path}: unknown serialization format {fmt!r}; expected one of {FORMATS}")
