"""The sklearn flavor (MLflow's ``mlflow.sklearn``); implemented in ``spark_models.flavors.sklearn``.

This module is the ``loader_module`` written in MLmodel; everything it exports comes from the
flavor's ``__all__`` (``FLAVOR``, ``save_model``, ``load_model`` and MLflow's ``_load_pyfunc``).
"""

from spark_models.flavors.sklearn import *  # noqa: F401,F403
from spark_models.flavors.sklearn import FLAVOR
from spark_models.flavors.sklearn import __all__ as _flavor_all
from spark_models.tracking.log import model_logger

log_model = model_logger(FLAVOR)
"""Log a sklearn model with MLflow (training side; needs ``pip install mlflow``)."""

__all__ = [*_flavor_all, "log_model"]
