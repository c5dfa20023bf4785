"""The keras flavor (MLflow's ``mlflow.keras``); implemented in ``spark_models.flavors.keras``.

This module is the ``loader_module`` written in MLmodel; it exports the flavor's ``__all__``.
"""

from spark_models.flavors.keras import *  # noqa: F401,F403
from spark_models.flavors.keras import __all__  # noqa: F401
