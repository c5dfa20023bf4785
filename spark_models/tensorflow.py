"""The tensorflow flavor (MLflow's ``mlflow.tensorflow``); implemented in ``spark_models.flavors.tensorflow``.

This module is the ``loader_module`` written in MLmodel; it exports the flavor's ``__all__``.
"""

from spark_models.flavors.tensorflow import *  # noqa: F401,F403
from spark_models.flavors.tensorflow import __all__  # noqa: F401
