"""``load_model``: model URI → ``PyFuncModel`` through the python_function loader contract."""

from __future__ import annotations

import importlib
import inspect
import logging
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from spark_models.environment import python_version, read_requirements, requirement_name
from spark_models.exceptions import ArtifactNotFoundError, MalformedModelError, MissingDependencyError
from spark_models.flavors.registry import loader_module_name
from spark_models.mlmodel import Model
from spark_models.pyfunc.pyfunc_model import PyFuncModel
from spark_models.uri import resolve_model_uri

_logger = logging.getLogger(__name__)

# Import names whose distribution is named differently.
_DIST_OF_MODULE = {
    "sklearn": "scikit-learn",
    "yaml": "pyyaml",
    "cv2": "opencv-python",
    "PIL": "pillow",
    "skimage": "scikit-image",
    "google": "protobuf",
}


def load_model(
    model_uri: str | os.PathLike,
    suppress_warnings: bool = False,
    dst_path: str | os.PathLike | None = None,
    model_config: dict[str, Any] | None = None,
) -> PyFuncModel:
    """Load any model with a ``python_function`` flavor.

    ``model_uri``: a local path, ``file://`` URI, any fsspec URL (``s3://``, ``gs://`` …,
    downloaded once to a local cache), or ``runs:/`` / ``models:/`` when MLflow is installed.
    ``model_config`` is passed to the flavor's loader (e.g. ``{"predict_fn": "predict_proba"}``
    for sklearn models).

    >>> import spark_models.pyfunc
    >>> model = spark_models.pyfunc.load_model("path/to/model")  # doctest: +SKIP
    >>> model.predict(df)  # doctest: +SKIP
    """
    local = resolve_model_uri(model_uri, dst_path)
    meta = Model.load(local)
    conf = meta.get_flavor("python_function")
    if "loader_module" not in conf:
        raise MalformedModelError(f"{local / 'MLmodel'}: python_function flavor has no 'loader_module'")
    if not suppress_warnings:
        _warn_python_mismatch(conf)
    add_code_to_sys_path(local, conf)
    data_path = local / conf["data"] if conf.get("data") else local
    if not data_path.exists():
        raise ArtifactNotFoundError(f"Model data {str(data_path)!r} named in {local / 'MLmodel'} does not exist")
    loader = import_loader_module(conf["loader_module"], local)
    try:
        impl = _call_loader(loader, str(data_path), model_config)
    except ModuleNotFoundError as e:
        raise MissingDependencyError(_missing_package_message(conf["loader_module"], e.name or "?", local)) from e
    except MissingDependencyError as e:
        missing = getattr(e, "missing_module", None)
        if missing is None:
            raise
        raise MissingDependencyError(f"{_missing_package_message(conf['loader_module'], missing, local)} ({e})") from e
    return PyFuncModel(meta, impl, model_uri=os.fspath(model_uri), local_path=local)


def _warn_python_mismatch(conf: dict[str, Any]) -> None:
    saved = str(conf.get("python_version") or "")
    if saved and saved.split(".")[:2] != python_version().split(".")[:2]:
        _logger.warning(
            "The model was saved with Python %s; this is Python %s. Loading may fail or behave differently.",
            saved,
            python_version(),
        )


def add_code_to_sys_path(model_dir: Path, conf: dict[str, Any]) -> None:
    """Put the model's ``code`` directory (and the code paths in it) on ``sys.path``."""
    code = conf.get("code")
    if not code:
        return
    code_dir = model_dir / code
    if not code_dir.is_dir():
        raise ArtifactNotFoundError(f"Code directory {str(code_dir)!r} named in MLmodel does not exist")
    for path in (str(code_dir), *(str(p) for p in code_dir.iterdir() if p.is_dir())):
        if path not in sys.path:
            sys.path.insert(0, path)


def import_loader_module(name: str, model_dir: Path) -> ModuleType:
    """Import the loader (MLflow names mapped to ours), naming the missing package on failure."""
    module = loader_module_name(name)
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        raise MissingDependencyError(_missing_package_message(name, e.name or module, model_dir)) from e


def _missing_package_message(loader: str, missing: str, model_dir: Path) -> str:
    top = missing.split(".")[0]
    wanted = requirement_name(_DIST_OF_MODULE.get(top, top))
    reqs = read_requirements(model_dir)
    match = [r for r in reqs if requirement_name(r) == wanted]
    head = f"Cannot load the model at {str(model_dir)!r}: its loader {loader!r} needs module {top!r}, which is not installed."
    if match:
        return f"{head} The model's requirements.txt lists {match[0]!r}; install it with: pip install '{match[0]}'"
    if reqs:
        return f"{head} The model's requirements.txt lists: {', '.join(reqs)}"
    return f"{head} The model has no requirements.txt; install the package that provides {top!r}."


def _call_loader(loader: ModuleType, data_path: str, model_config: dict[str, Any] | None) -> Any:
    load = getattr(loader, "_load_pyfunc", None)
    if load is None:
        raise MalformedModelError(f"Loader module {loader.__name__!r} has no _load_pyfunc(path) function")
    try:
        accepts_config = "model_config" in inspect.signature(load).parameters
    except (TypeError, ValueError):
        accepts_config = False
    if accepts_config:
        return load(data_path, model_config=model_config)
    if model_config:
        _logger.warning("Loader %s takes no model_config; ignoring it", loader.__name__)
    return load(data_path)
