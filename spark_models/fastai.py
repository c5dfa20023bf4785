"""The fastai flavor (MLflow 2.x's ``mlflow.fastai``); implemented in ``spark_models.flavors.fastai``.

This module is the ``loader_module`` written in MLmodel; it exports the flavor's ``__all__``.
"""

from spark_models.flavors.fastai import *  # noqa: F401,F403
from spark_models.flavors.fastai import __all__  # noqa: F401
