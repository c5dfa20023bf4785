"""Flavor name → :class:`~spark_models.flavors.contract.Flavor`, as fsspec maps protocols to
filesystems; this is the only way spark-models finds a flavor.

Each entry says where the flavor object lives (``"module:attribute"``, imported on first
use), which ``loader_module`` values in an MLmodel load through it (ours, MLflow's
``mlflow.<flavor>`` names), and which package it needs, with the pip extra that installs it.
Third-party flavors plug in through the entry-point group ``spark_models.flavors``
(``name = "package.module"``, a module defining ``FLAVOR``) or :func:`register_flavor`.
A ``loader_module`` nobody registered (``pyfunc.save_model(loader_module=...)``) is imported
and used through its ``_load_pyfunc``, as MLflow does.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from importlib import metadata
from types import ModuleType
from typing import Any

from spark_models.exceptions import InvalidArgumentError, MissingDependencyError, UnknownFlavorError, UnsafeModelError
from spark_models.flavors.contract import PYFUNC, Flavor, LoadContext

_logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "spark_models.flavors"


@dataclass(frozen=True)
class FlavorSource:
    """Where a flavor is and what it needs; importing it is deferred to first use."""

    target: str
    loader_modules: tuple[str, ...]
    requires: str | None = None
    install: str | None = None

    def missing(self, name: str, error: ImportError) -> MissingDependencyError:
        hint = self.install or "install the package that provides it"
        err = MissingDependencyError(f"The {name} flavor needs {error.name or self.requires!r}, which is not installed: {hint}")
        err.missing_module = error.name or self.requires
        return err


def _builtin(name: str, target: str, requires: str | None = None, extra: str | None = None,
             loader_modules: tuple[str, ...] | None = None) -> FlavorSource:
    install = f"pip install 'spark-models[{extra}]'" if extra else (f"pip install {requires}" if requires else None)
    return FlavorSource(target, loader_modules or (f"spark_models.{name}", f"mlflow.{name}"), requires, install)


known_flavors: dict[str, FlavorSource] = {
    PYFUNC: _builtin(PYFUNC, "spark_models.pyfunc.model:FLAVOR",
                     loader_modules=("spark_models.pyfunc.model", "mlflow.pyfunc.model")),
    "sklearn": _builtin("sklearn", "spark_models.flavors.sklearn:FLAVOR", "sklearn", "sklearn"),
    "mleap": _builtin("mleap", "spark_models.flavors.mleap:FLAVOR"),
    "spark": _builtin("spark", "spark_models.flavors.spark:FLAVOR", "pyspark"),
    "xgboost": _builtin("xgboost", "spark_models.flavors.xgboost:FLAVOR", "xgboost", "xgboost"),
    "lightgbm": _builtin("lightgbm", "spark_models.flavors.lightgbm:FLAVOR", "lightgbm", "lightgbm"),
    "catboost": _builtin("catboost", "spark_models.flavors.catboost:FLAVOR", "catboost", "catboost"),
    "statsmodels": _builtin("statsmodels", "spark_models.flavors.statsmodels:FLAVOR", "statsmodels", "statsmodels"),
    "prophet": _builtin("prophet", "spark_models.flavors.prophet:FLAVOR", "prophet", "prophet"),
    "h2o": _builtin("h2o", "spark_models.flavors.h2o:FLAVOR", "h2o", "h2o"),
    "onnx": _builtin("onnx", "spark_models.flavors.onnx:FLAVOR", "onnxruntime", "onnx"),
    "pytorch": _builtin("pytorch", "spark_models.flavors.pytorch:FLAVOR", "torch", "pytorch"),
    "tensorflow": _builtin("tensorflow", "spark_models.flavors.tensorflow:FLAVOR", "tensorflow", "tensorflow"),
    "keras": _builtin("keras", "spark_models.flavors.keras:FLAVOR", "keras", "keras"),
    "spacy": _builtin("spacy", "spark_models.flavors.spacy:FLAVOR", "spacy", "spacy"),
    "fastai": _builtin("fastai", "spark_models.flavors.fastai:FLAVOR", "fastai", "fastai"),
    "crate": _builtin("crate", "spark_models.flavors.crate:FLAVOR"),
    "gluon": _builtin("gluon", "spark_models.flavors.gluon:FLAVOR"),
}

# Built-in flavors whose models may come without a python_function entry that they imply.
_IMPLYING_PYFUNC = ("crate",)

_registered: dict[str, FlavorSource] = {}
_loaded: dict[str, Flavor] = {}
_entry_points_read = False


def register_flavor(name: str, target: str, *, loader_modules: tuple[str, ...] | None = None,
                    requires: str | None = None, install: str | None = None, clobber: bool = False) -> None:
    """Register flavor ``name`` at ``target`` (``"module"`` or ``"module:attribute"``).

    ``loader_modules`` are the MLmodel ``loader_module`` values it loads (default: the module);
    ``requires`` is an import name checked first, ``install`` the hint shown when it is missing.
    """
    module = target.split(":")[0]
    source = FlavorSource(target, loader_modules or (module,), requires, install)
    current = _all_sources().get(name)
    if current is not None and current.target != target and not clobber:
        raise InvalidArgumentError(f"Flavor {name!r} is already registered to {current.target!r}")
    _registered[name] = source
    _loaded.pop(name, None)


def _read_entry_points() -> None:
    global _entry_points_read
    if _entry_points_read:
        return
    _entry_points_read = True
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in known_flavors:
            _logger.warning("Entry point %s=%s ignored: %r is a built-in flavor", ep.name, ep.value, ep.name)
            continue
        _registered.setdefault(ep.name, FlavorSource(ep.value, (ep.value.split(":")[0],)))


def _all_sources() -> dict[str, FlavorSource]:
    _read_entry_points()
    return {**known_flavors, **_registered}


def available_flavors() -> list[str]:
    """Names of every registered flavor (built-in, entry point, or registered at run time)."""
    return sorted(_all_sources())


def get_flavor(name: str) -> Flavor:
    """The flavor registered as ``name``; a missing library is named with what to install."""
    if name in _loaded:
        return _loaded[name]
    source = _all_sources().get(name)
    if source is None:
        raise UnknownFlavorError(
            f"No implementation registered for flavor {name!r}. Known flavors: {', '.join(available_flavors())}. "
            f"Third-party flavors register through the {ENTRY_POINT_GROUP!r} entry-point group."
        )
    try:
        if source.requires:
            importlib.import_module(source.requires)
        flavor = _resolve_target(source.target)
    except ImportError as e:
        if isinstance(e, MissingDependencyError):
            raise
        raise source.missing(name, e) from e
    _loaded[name] = flavor
    return flavor


def implied_pyfunc(flavors: dict[str, Any]) -> dict[str, Any] | None:
    """The ``python_function`` entry implied by the first registered flavor among ``flavors``
    that declares one (see ``Flavor.implied_pyfunc``); None when none does. Only flavors that
    import without their library are asked, so this never imports a model library."""
    for name, conf in flavors.items():
        if name not in _IMPLYING_PYFUNC:
            continue
        flavor = get_flavor(name)
        entry = flavor.implied_pyfunc(conf or {}) if flavor.implied_pyfunc else None
        if entry is not None:
            return entry
    return None


def flavor_for_loader_module(loader_module: str, *, import_unregistered: bool = True) -> Flavor:
    """The flavor that loads models whose ``python_function.loader_module`` is ``loader_module``.

    A module no flavor registered is imported and adapted only with ``import_unregistered``;
    without it that is an UnsafeModelError (importing it runs the model's code).
    """
    for name, source in _all_sources().items():
        if loader_module in source.loader_modules:
            return get_flavor(name)
    if not import_unregistered:
        raise UnsafeModelError(f"its loader_module {loader_module!r} is not a registered flavor (importing it runs its code)")
    return flavor_from_module(importlib.import_module(loader_module))


def _resolve_target(target: str) -> Flavor:
    module_name, _, attribute = target.partition(":")
    module = importlib.import_module(module_name)
    if attribute:
        flavor = getattr(module, attribute, None)
        if not isinstance(flavor, Flavor):
            raise InvalidArgumentError(f"{target!r} is not a spark_models Flavor (got {type(flavor).__name__})")
        return flavor
    return flavor_from_module(module)


def flavor_from_module(module: ModuleType) -> Flavor:
    """A module's ``FLAVOR``; a module with only MLflow's ``_load_pyfunc(path)`` is adapted."""
    flavor = getattr(module, "FLAVOR", None)
    if isinstance(flavor, Flavor):
        return flavor
    load = getattr(module, "_load_pyfunc", None)
    if not callable(load):
        raise InvalidArgumentError(
            f"Loader module {module.__name__!r} defines neither FLAVOR (a spark_models Flavor) nor _load_pyfunc(path)"
        )
    return Flavor(
        name=str(getattr(module, "FLAVOR_NAME", module.__name__)),
        save_model=getattr(module, "save_model", _not_provided(module, "save_model")),
        load_model=getattr(module, "load_model", _not_provided(module, "load_model")),
        load_pyfunc=_legacy_loader(module),
        default_pip_requirements=lambda: [],
        module=module.__name__,
        mlflow_module=None,
    )


def _not_provided(module: ModuleType, attr: str):
    def missing(*args, **kwargs):
        raise InvalidArgumentError(f"Loader module {module.__name__!r} has no {attr}()")

    return missing


def _legacy_loader(module: ModuleType):
    import inspect

    load = module._load_pyfunc
    try:
        takes_config = "model_config" in inspect.signature(load).parameters
    except (TypeError, ValueError):
        takes_config = False

    def load_pyfunc(context: LoadContext):
        if takes_config:
            return load(str(context.data_path), model_config=dict(context.model_config))
        if context.model_config:
            _logger.warning("Loader %s takes no model_config; ignoring it", module.__name__)
        return load(str(context.data_path))

    return load_pyfunc
