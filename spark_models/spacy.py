"""The spacy flavor (MLflow's ``mlflow.spacy``); implemented in ``spark_models.flavors.spacy``.

This module is the ``loader_module`` written in MLmodel; it exports the flavor's ``__all__``.
"""

from spark_models.flavors.spacy import *  # noqa: F401,F403
from spark_models.flavors.spacy import FLAVOR
from spark_models.flavors.spacy import __all__ as _flavor_all
from spark_models.tracking.log import model_logger

log_model = model_logger(FLAVOR)
"""Log a spacy model with MLflow (training side; needs ``pip install mlflow``)."""

__all__ = [*_flavor_all, "log_model"]
