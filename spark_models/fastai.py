"""The fastai flavor (MLflow 2.x's ``mlflow.fastai``); implemented in ``spark_models.flavors.fastai``.

This module is the ``loader_module`` written in MLmodel; it exports the flavor's ``__all__``.
"""

from spark_models.flavors.fastai import *  # noqa: F401,F403
from spark_models.flavors.fastai import FLAVOR
from spark_models.flavors.fastai import __all__ as _flavor_all
from spark_models.tracking.log import model_logger

log_model = model_logger(FLAVOR)
"""Log a fastai model with MLflow (training side; needs ``pip install mlflow``)."""

__all__ = [*_flavor_all, "log_model"]
