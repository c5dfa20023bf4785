"""The crate flavor (R functions, MLflow R's ``crate``); implemented in ``spark_models.flavors.crate``.

This module is the ``loader_module`` written in MLmodel; it exports the flavor's ``__all__``.
"""

from spark_models.flavors.crate import *  # noqa: F401,F403
from spark_models.flavors.crate import FLAVOR
from spark_models.flavors.crate import __all__ as _flavor_all
from spark_models.tracking.log import model_logger

log_model = model_logger(FLAVOR)
"""Log a crate model with MLflow (training side; needs ``pip install mlflow``)."""

__all__ = [*_flavor_all, "log_model"]
