"""The onnx flavor (MLflow's ``mlflow.onnx``); implemented in ``spark_models.flavors.onnx``.

This module is the ``loader_module`` written in MLmodel; it exports the flavor's ``__all__``.
"""

from spark_models.flavors.onnx import *  # noqa: F401,F403
from spark_models.flavors.onnx import __all__  # noqa: F401
