"""The pytorch flavor (MLflow's ``mlflow.pytorch``); implemented in ``spark_models.flavors.pytorch``.

This module is the ``loader_module`` written in MLmodel; it exports the flavor's ``__all__``.
"""

from spark_models.flavors.pytorch import *  # noqa: F401,F403
from spark_models.flavors.pytorch import __all__  # noqa: F401
