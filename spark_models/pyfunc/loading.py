"""``load_model``: model URI → ``PyFuncModel``, through the flavor registry.

The URI is resolved and MLmodel parsed once (a :class:`~spark_models.flavors.contract.LoadContext`);
its ``python_function.loader_module`` names the flavor (ours, MLflow's ``mlflow.<flavor>``
names, a registered third party's, or a model's own module shipped in ``code/``), whose
``load_pyfunc(context)`` builds the implementation.
"""

from __future__ import annotations

import logging
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from spark_models.environment import python_version, read_requirements, requirement_name
from spark_models.exceptions import ArtifactNotFoundError, MalformedModelError, MissingDependencyError, UnsafeModelError
from spark_models.flavors.contract import Flavor, LoadContext
from spark_models.flavors.opening import open_model
from spark_models.flavors.registry import flavor_for_loader_module
from spark_models.flavors.trust import check_code_dir, refusal
from spark_models.pyfunc.pyfunc_model import PyFuncModel

_logger = logging.getLogger(__name__)

# Import names whose distribution is named differently.
_DIST_OF_MODULE = {
    "sklearn": ("scikit-learn",),
    "yaml": ("pyyaml",),
    "cv2": ("opencv-python", "opencv-python-headless"),
    "PIL": ("pillow",),
    "skimage": ("scikit-image",),
    "google": ("protobuf",),
    "xgboost": ("xgboost", "xgboost-cpu"),
    "tensorflow": ("tensorflow", "tensorflow-cpu"),
}


def load_model(
    model_uri: str | os.PathLike,
    suppress_warnings: bool = False,
    dst_path: str | os.PathLike | None = None,
    model_config: dict[str, Any] | None = None,
    *,
    allow_code: bool | None = None,
) -> PyFuncModel:
    """Load any model with a ``python_function`` flavor.

    ``model_uri``: a local path, ``file://`` URI, any fsspec URL (``s3://``, ``gs://`` …,
    downloaded once to a local cache), or ``runs:/`` / ``models:/`` (through MLflow's client when installed, else the tracking server's
    REST API at ``MLFLOW_TRACKING_URI``).
    ``model_config`` is passed to the flavor's loader (e.g. ``{"predict_fn": "predict_proba"}``
    for sklearn models). ``allow_code=False`` loads only formats that run no code from the model
    (see :mod:`spark_models.flavors.trust`); None means ``$SPARK_MODELS_ALLOW_CODE`` (default True).

    >>> import spark_models.pyfunc
    >>> model = spark_models.pyfunc.load_model("path/to/model")  # doctest: +SKIP
    >>> model.predict(df)  # doctest: +SKIP
    """
    context = open_model(model_uri, dst_path, model_config, allow_code=allow_code)
    conf = context.flavor_conf("python_function")
    if "loader_module" not in conf:
        raise MalformedModelError(f"{context.model_dir / 'MLmodel'}: python_function flavor has no 'loader_module'")
    if not suppress_warnings:
        _warn_python_mismatch(conf)
        from spark_models.envs.spec import warn_requirement_mismatches

        warn_requirement_mismatches(context.model_dir, model_uri=model_uri)
    if not context.allow_code:
        check_trusted(context)
    add_code_to_sys_path(context)
    if not context.data_path.exists():
        raise ArtifactNotFoundError(
            f"Model data {str(context.data_path)!r} named in {context.model_dir / 'MLmodel'} does not exist")
    flavor = pyfunc_flavor(context)
    with _naming_requirements(conf["loader_module"], context.model_dir):
        impl = flavor.load_pyfunc(context)
    return PyFuncModel(context.model, impl, model_uri=os.fspath(model_uri), local_path=context.model_dir)


def pyfunc_flavor(context: LoadContext) -> Flavor:
    """The flavor named by the model's ``loader_module``, with the model's requirements in the
    error when its library is missing."""
    loader = context.pyfunc_conf["loader_module"]
    try:
        with _naming_requirements(loader, context.model_dir):
            flavor = flavor_for_loader_module(loader, import_unregistered=context.allow_code)
    except UnsafeModelError as e:
        raise refusal(context.model_dir, str(e)) from None
    if flavor.load_pyfunc is None:
        raise MalformedModelError(f"Loader module {loader!r} (flavor {flavor.name!r}) has no python_function form")
    return flavor


def check_trusted(context: LoadContext) -> None:
    """What ``allow_code=False`` refuses (see :mod:`spark_models.flavors.trust`): shipped code, an
    unregistered loader module, a format that runs code, a flavor that does not say."""
    code = context.pyfunc_conf.get("code")
    if code:
        raise refusal(context.model_dir, f"it ships code ({code!r}) to put on sys.path")
    flavor = pyfunc_flavor(context)
    if flavor.runs_code is None:
        raise refusal(context.model_dir, f"the {flavor.name!r} flavor does not declare whether loading runs code")
    reason = flavor.runs_code(context)
    if reason:
        raise refusal(context.model_dir, f"loading it {reason}")


def _warn_python_mismatch(conf: dict[str, Any]) -> None:
    saved = str(conf.get("python_version") or "")
    if saved and saved.split(".")[:2] != python_version().split(".")[:2]:
        _logger.warning(
            "The model was saved with Python %s; this is Python %s. Loading may fail or behave differently.",
            saved,
            python_version(),
        )


def add_code_to_sys_path(context: LoadContext) -> None:
    """Put the model's ``code`` directory (and the code paths in it) on ``sys.path``."""
    code = context.pyfunc_conf.get("code")
    if not code:
        return
    code_dir = context.path(code, "code directory")
    if not code_dir.is_dir():
        raise ArtifactNotFoundError(f"Code directory {str(code_dir)!r} named in MLmodel does not exist")
    search = [code_dir, *(p for p in code_dir.iterdir() if p.is_dir() and not (p / "__init__.py").exists())]
    check_code_dir(code_dir, search)
    for path in map(str, search):
        if path not in sys.path:
            sys.path.insert(0, path)


@contextmanager
def _naming_requirements(loader: str, model_dir: Path) -> Iterator[None]:
    """A missing module becomes a MissingDependencyError naming the model's requirement for it."""
    try:
        yield
    except ModuleNotFoundError as e:
        raise MissingDependencyError(_missing_package_message(loader, e.name or loader, model_dir)) from e
    except MissingDependencyError as e:
        missing = getattr(e, "missing_module", None)
        if missing is None:
            raise
        raise MissingDependencyError(f"{_missing_package_message(loader, missing, model_dir)} ({e})") from e


def _missing_package_message(loader: str, missing: str, model_dir: Path) -> str:
    top = missing.split(".")[0]
    wanted = {requirement_name(d) for d in _DIST_OF_MODULE.get(top, (top,))}
    reqs = read_requirements(model_dir)
    match = [r for r in reqs if requirement_name(r) in wanted]
    head = f"Cannot load the model at {str(model_dir)!r}: its loader {loader!r} needs module {top!r}, which is not installed."
    if match:
        return f"{head} The model's requirements.txt lists {match[0]!r}; install it with: pip install '{match[0]}'"
    if reqs:
        return f"{head} The model's requirements.txt lists: {', '.join(reqs)}"
    return f"{head} The model has no requirements.txt; install the package that provides {top!r}."
