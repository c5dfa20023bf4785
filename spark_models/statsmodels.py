"""The statsmodels flavor (MLflow's ``mlflow.statsmodels``); implemented in ``spark_models.flavors.statsmodels``.

This module is the ``loader_module`` written in MLmodel; it exports the flavor's ``__all__``.
"""

from spark_models.flavors.statsmodels import *  # noqa: F401,F403
from spark_models.flavors.statsmodels import __all__  # noqa: F401
