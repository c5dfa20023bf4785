"""The sklearn flavor (MLflow's ``mlflow.sklearn``); implemented in ``spark_models.flavors.sklearn``.

This module is the ``loader_module`` written in MLmodel; everything it exports comes from the
flavor's ``__all__`` (``FLAVOR``, ``save_model``, ``load_model`` and MLflow's ``_load_pyfunc``).
"""

from spark_models.flavors.sklearn import *  # noqa: F401,F403
from spark_models.flavors.sklearn import __all__  # noqa: F401
