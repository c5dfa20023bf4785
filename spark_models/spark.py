"""The spark flavor (MLflow's ``mlflow.spark``); implemented in ``spark_models.flavors.spark``.

This module is the ``loader_module`` written in MLmodel; it exports the flavor's ``__all__``.
"""

from spark_models.flavors.spark import *  # noqa: F401,F403
from spark_models.flavors.spark import __all__  # noqa: F401
