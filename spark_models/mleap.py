"""The mleap flavor (MLflow 1.x's ``mlflow.mleap``); implemented in ``spark_models.flavors.mleap``.

This module is the ``loader_module`` written in MLmodel; it exports the flavor's ``__all__``.
"""

from spark_models.flavors.mleap import *  # noqa: F401,F403
from spark_models.flavors.mleap import __all__  # noqa: F401
