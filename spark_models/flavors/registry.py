"""Flavor name → implementing module, as fsspec maps protocols to filesystems.

Built-in flavors are listed in :data:`known_flavors` with the package each needs and the
message shown when it is missing. Third-party flavors plug in through the entry-point
group ``spark_models.flavors`` (``name = "package.module"``) or :func:`register_flavor`.

MLflow's loader module names (``mlflow.sklearn``, ``mlflow.pyfunc.model`` …) map to ours
so models written by MLflow load with no MLflow installed.
"""

from __future__ import annotations

import importlib
import logging
from importlib import metadata
from types import ModuleType
from typing import Any

from spark_models.exceptions import InvalidArgumentError, MissingDependencyError, UnknownFlavorError

_logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "spark_models.flavors"

known_flavors: dict[str, dict[str, Any]] = {
    "python_function": {"module": "spark_models.pyfunc"},
    "sklearn": {
        "module": "spark_models.sklearn",
        "requires": "sklearn",
        "err": "The sklearn flavor needs scikit-learn: pip install 'spark-models[sklearn]'",
    },
    "mleap": {"module": "spark_models.mleap"},
    "spark": {
        "module": "spark_models.spark",
        "requires": "pyspark",
        "err": "The spark flavor needs PySpark: pip install pyspark",
    },
}

# MLflow loader modules we implement ourselves (python_function.loader_module values).
mlflow_loader_modules: dict[str, str] = {
    "mlflow.sklearn": "spark_models.sklearn",
    "mlflow.spark": "spark_models.spark",
    "mlflow.mleap": "spark_models.mleap",
    "mlflow.pyfunc.model": "spark_models.pyfunc.model",
}

_registry: dict[str, dict[str, Any]] = {}
_entry_points_loaded = False


def register_flavor(name: str, module: str, requires: str | None = None, err: str | None = None, clobber: bool = False) -> None:
    """Register the module implementing flavor ``name``.

    ``requires`` is an import name checked before loading; ``err`` is the message shown
    when it is missing.
    """
    if not clobber and name in _all_flavors() and _all_flavors()[name]["module"] != module:
        raise InvalidArgumentError(f"Flavor {name!r} is already registered to {_all_flavors()[name]['module']!r}")
    _registry[name] = {"module": module, "requires": requires, "err": err}


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in known_flavors:
            _logger.warning("Entry point %s=%s ignored: %r is a built-in flavor", ep.name, ep.value, ep.name)
            continue
        _registry.setdefault(ep.name, {"module": ep.value.split(":")[0]})


def _all_flavors() -> dict[str, dict[str, Any]]:
    _load_entry_points()
    return {**known_flavors, **_registry}


def available_flavors() -> list[str]:
    """Names of every registered flavor (built-in, entry point, or registered at run time)."""
    return sorted(_all_flavors())


def _missing_message(spec: dict[str, Any], name: str, error: ImportError) -> str:
    if spec.get("err"):
        return f"{spec['err']} ({error})"
    return f"Flavor {name!r} needs a package that is not installed: {error}"


def get_flavor_module(name: str) -> ModuleType:
    """Import and return the module implementing flavor ``name``."""
    spec = _all_flavors().get(name)
    if spec is None:
        raise UnknownFlavorError(
            f"No implementation registered for flavor {name!r}. Known flavors: {', '.join(available_flavors())}. "
            f"Third-party flavors register through the {ENTRY_POINT_GROUP!r} entry-point group."
        )
    if spec.get("requires"):
        try:
            importlib.import_module(spec["requires"])
        except ImportError as e:
            raise MissingDependencyError(_missing_message(spec, name, e)) from e
    try:
        return importlib.import_module(spec["module"])
    except ImportError as e:
        raise MissingDependencyError(_missing_message(spec, name, e)) from e


def loader_module_name(loader_module: str) -> str:
    """The module that actually loads a ``python_function.loader_module`` value."""
    return mlflow_loader_modules.get(loader_module, loader_module)
