"""The gluon flavor (MLflow 2.x's ``mlflow.gluon``); implemented in ``spark_models.flavors.gluon``.

This module is the ``loader_module`` written in MLmodel; it exports the flavor's ``__all__``.
"""

from spark_models.flavors.gluon import *  # noqa: F401,F403
from spark_models.flavors.gluon import __all__  # noqa: F401
