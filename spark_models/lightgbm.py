"""The lightgbm flavor (MLflow's ``mlflow.lightgbm``); implemented in ``spark_models.flavors.lightgbm``.

This module is the ``loader_module`` written in MLmodel; it exports the flavor's ``__all__``.
"""

from spark_models.flavors.lightgbm import *  # noqa: F401,F403
from spark_models.flavors.lightgbm import __all__  # noqa: F401
