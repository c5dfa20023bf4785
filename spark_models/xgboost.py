"""The xgboost flavor (MLflow's ``mlflow.xgboost``); implemented in ``spark_models.flavors.xgboost``.

This module is the ``loader_module`` written in MLmodel; it exports the flavor's ``__all__``.
"""

from spark_models.flavors.xgboost import *  # noqa: F401,F403
from spark_models.flavors.xgboost import __all__  # noqa: F401
