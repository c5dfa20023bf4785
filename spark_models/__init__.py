"""spark-models: the MLflow Models format, done right for Spark.

Submodules follow MLflow's names so that switching is an import change:
``spark_models.pyfunc``, ``spark_models.sklearn``, ``spark_models.models`` ...
Importing this package is cheap; submodules are imported on first attribute access.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY_SUBMODULES = {"pyfunc", "sklearn", "models", "types", "exceptions", "flavors"}


def __getattr__(name: str) -> Any:
    if name == "spark_native":
        from spark_models.native.scoring import spark_native

        return spark_native
    if name == "build_env":
        from spark_models.envs.provision import build_env

        return build_env
    if name in _LAZY_SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
