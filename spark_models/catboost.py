"""The catboost flavor (MLflow's ``mlflow.catboost``); implemented in ``spark_models.flavors.catboost``.

This module is the ``loader_module`` written in MLmodel; it exports the flavor's ``__all__``.
"""

from spark_models.flavors.catboost import *  # noqa: F401,F403
from spark_models.flavors.catboost import FLAVOR
from spark_models.flavors.catboost import __all__ as _flavor_all
from spark_models.tracking.log import model_logger

log_model = model_logger(FLAVOR)
"""Log a catboost model with MLflow (training side; needs ``pip install mlflow``)."""

__all__ = [*_flavor_all, "log_model"]
