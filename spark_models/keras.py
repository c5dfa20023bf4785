"""The keras flavor (MLflow's ``mlflow.keras``); implemented in ``spark_models.flavors.keras``.

This module is the ``loader_module`` written in MLmodel; it exports the flavor's ``__all__``.
"""

from spark_models.flavors.keras import *  # noqa: F401,F403
from spark_models.flavors.keras import FLAVOR
from spark_models.flavors.keras import __all__ as _flavor_all
from spark_models.tracking.log import model_logger

log_model = model_logger(FLAVOR)
"""Log a keras model with MLflow (training side; needs ``pip install mlflow``)."""

__all__ = [*_flavor_all, "log_model"]
