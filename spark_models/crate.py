"""The crate flavor (R functions, MLflow R's ``crate``); implemented in ``spark_models.flavors.crate``.

This module is the ``loader_module`` written in MLmodel; it exports the flavor's ``__all__``.
"""

from spark_models.flavors.crate import *  # noqa: F401,F403
from spark_models.flavors.crate import __all__  # noqa: F401
