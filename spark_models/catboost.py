"""The catboost flavor (MLflow's ``mlflow.catboost``); implemented in ``spark_models.flavors.catboost``.

This module is the ``loader_module`` written in MLmodel; it exports the flavor's ``__all__``.
"""

from spark_models.flavors.catboost import *  # noqa: F401,F403
from spark_models.flavors.catboost import __all__  # noqa: F401
