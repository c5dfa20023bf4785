"""The spacy flavor (MLflow's ``mlflow.spacy``); implemented in ``spark_models.flavors.spacy``.

This module is the ``loader_module`` written in MLmodel; it exports the flavor's ``__all__``.
"""

from spark_models.flavors.spacy import *  # noqa: F401,F403
from spark_models.flavors.spacy import __all__  # noqa: F401
