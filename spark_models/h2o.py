"""The h2o flavor (MLflow's ``mlflow.h2o``); implemented in ``spark_models.flavors.h2o``.

This module is the ``loader_module`` written in MLmodel; it exports the flavor's ``__all__``.
"""

from spark_models.flavors.h2o import *  # noqa: F401,F403
from spark_models.flavors.h2o import __all__  # noqa: F401
