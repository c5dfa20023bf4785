"""The flavor contract: what every flavor declares (:class:`Flavor`) and what its loaders get
(:class:`LoadContext`, the model directory with its MLmodel parsed once).

A flavor module defines one ``FLAVOR = Flavor(...)``; models are opened with
:func:`spark_models.flavors.opening.open_model`; the registry
(:mod:`spark_models.flavors.registry`) finds it by flavor name or by the ``loader_module``
an MLmodel names, and every caller (pyfunc, spark_udf, the CLI) goes through it.
:func:`spark_models.flavors.testing.check_flavor` checks a flavor against this contract.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from spark_models.exceptions import MalformedModelError, ModelNotFoundError
from spark_models.mlmodel import MLMODEL_FILE_NAME, Model

PYFUNC = "python_function"

UdfBuild = Callable[[Path], None]
"""Writes a converted copy of a model into a new directory (for ``prepare_for_udf``)."""


@dataclass(frozen=True)
class LoadContext:
    """One model being loaded: its directory, its MLmodel (parsed once) and the caller's config."""

    model_dir: Path
    model: Model
    model_config: Mapping[str, Any] = field(default_factory=dict)
    allow_code: bool = True  # see spark_models.flavors.trust

    @property
    def pyfunc_conf(self) -> dict[str, Any]:
        """The ``python_function`` entry ({} when the model has none)."""
        return self.model.flavors.get(PYFUNC, {})

    @property
    def signature(self) -> Any:
        return self.model.signature

    def flavor_conf(self, name: str) -> dict[str, Any]:
        """The entry of flavor ``name``, or FlavorNotFoundError listing the flavors present."""
        return self.model.get_flavor(name)

    def path(self, relative: str | os.PathLike, what: str = "file") -> Path:
        """``model_dir / relative``, refused when it leaves the model directory."""
        root = self.model_dir.resolve()
        target = (root / relative).resolve()
        if target != root and root not in target.parents:
            raise MalformedModelError(
                f"{self.model_dir / MLMODEL_FILE_NAME}: {what} {str(relative)!r} lies outside the model directory"
            )
        return target

    @property
    def data_path(self) -> Path:
        """The ``python_function`` ``data`` path (the model directory when it names none)."""
        data = self.pyfunc_conf.get("data")
        return self.path(data, "data path") if data else self.model_dir


def context_from_path(path: str | os.PathLike, model_config: Mapping[str, Any] | None = None) -> LoadContext:
    """The context of a path MLflow hands a loader (the model directory, or its data path:
    ``sparkml``, ``mleap/model``, ``model.pkl``): the nearest directory above with an MLmodel."""
    start = Path(path).resolve()
    from spark_models.flavors.trust import resolve_allow_code

    for candidate in (start, *list(start.parents)[:2]):
        if (candidate / MLMODEL_FILE_NAME).is_file():
            return LoadContext(candidate, Model.load(candidate), dict(model_config or {}), resolve_allow_code(None))
    raise ModelNotFoundError(f"No {MLMODEL_FILE_NAME} at or above {str(start)!r}")


def runs_no_code(context: LoadContext) -> None:
    """``Flavor.runs_code`` of a format that is data only (JSON, Parquet, skops, ONNX …)."""
    return None


@dataclass(frozen=True)
class Flavor:
    """What a flavor is. Built-in flavors and third-party ones declare the same fields.

    - ``name``: its key under ``flavors:`` in MLmodel.
    - ``save_model(model, path, ...)`` / ``load_model(model_uri, ...)``: the public functions.
    - ``load_pyfunc(context) -> object with predict(data, params=None)``; None when the flavor
      has no ``python_function`` form.
    - ``default_pip_requirements() -> list[str]``: pinned to the installed versions.
    - ``module``: the public module, written as ``loader_module`` (default ``spark_models.<name>``);
      ``mlflow_module``: MLflow's name for it (default ``mlflow.<name>``); both load through it.
    - ``extra``: the ``spark-models[extra]`` that installs its library.
    - ``prepare_for_udf(spark, context, model_uri) -> UdfBuild | None``: how spark_udf gets a copy
      its workers can score (None: ship as it is); raises NotSupportedError saying why it cannot.
    - ``runs_code(context) -> str | None``: what loading this model runs from the model itself
      (e.g. ``"unpickles model.pkl"``), None when nothing; use :func:`runs_no_code` to declare
      that. Left unset, ``allow_code=False`` refuses the flavor (see :mod:`spark_models.flavors.trust`).
    - ``implied_pyfunc(flavor_conf) -> dict | None``: the ``python_function`` entry a model of
      this flavor written without one stands for (MLflow R writes none for crates); applied in
      memory when the model is opened, never written back.
    - ``compile_native``: reserved for flavors that compile to Spark expressions (None: none do).
    """

    name: str
    save_model: Callable[..., Model]
    load_model: Callable[..., Any]
    load_pyfunc: Callable[[LoadContext], Any] | None
    default_pip_requirements: Callable[[], list[str]]
    module: str = ""
    mlflow_module: str | None = ""
    extra: str | None = None
    prepare_for_udf: Callable[[Any, LoadContext, str], UdfBuild | None] | None = None
    runs_code: Callable[[LoadContext], str | None] | None = None
    compile_native: Callable[..., Any] | None = None
    implied_pyfunc: Callable[[dict[str, Any]], dict[str, Any] | None] | None = None

    def __post_init__(self) -> None:
        if not self.module:
            object.__setattr__(self, "module", f"spark_models.{self.name}")
        if self.mlflow_module == "":
            object.__setattr__(self, "mlflow_module", f"mlflow.{self.name}")

    @property
    def loader_modules(self) -> tuple[str, ...]:
        """Every ``loader_module`` value that loads through this flavor."""
        return tuple(m for m in (self.module, self.mlflow_module) if m)

    def mlflow_loader(self) -> Callable[..., Any]:
        """The module-level ``_load_pyfunc(path, model_config=None)`` MLflow calls on our models."""

        def _load_pyfunc(path: str, model_config: Mapping[str, Any] | None = None) -> Any:
            if self.load_pyfunc is None:
                raise MalformedModelError(f"The {self.name} flavor has no python_function form")
            return self.load_pyfunc(context_from_path(path, model_config))

        _load_pyfunc.__doc__ = f"MLflow's loader entry point for {self.name} models (``path``: model or data path)."
        return _load_pyfunc
