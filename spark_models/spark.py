"""The spark flavor (MLflow's ``mlflow.spark``); implemented in ``spark_models.flavors.spark``."""

from spark_models.flavors.spark import (
    FLAVOR_NAME,
    _load_pyfunc,
    load_model,
    save_model,
    transform,
    udf_conversion,
    udf_unsupported_reason,
)

__all__ = ["FLAVOR_NAME", "load_model", "save_model", "transform", "_load_pyfunc", "udf_conversion", "udf_unsupported_reason"]
