"""The prophet flavor (MLflow's ``mlflow.prophet``); implemented in ``spark_models.flavors.prophet``.

This module is the ``loader_module`` written in MLmodel; it exports the flavor's ``__all__``.
"""

from spark_models.flavors.prophet import *  # noqa: F401,F403
from spark_models.flavors.prophet import __all__  # noqa: F401
