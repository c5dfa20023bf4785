"""The onnx flavor (MLflow's ``mlflow.onnx``); implemented in ``spark_models.flavors.onnx``.

This module is the ``loader_module`` written in MLmodel; it exports the flavor's ``__all__``.
"""

from spark_models.flavors.onnx import *  # noqa: F401,F403
from spark_models.flavors.onnx import FLAVOR
from spark_models.flavors.onnx import __all__ as _flavor_all
from spark_models.tracking.log import model_logger

log_model = model_logger(FLAVOR)
"""Log a onnx model with MLflow (training side; needs ``pip install mlflow``)."""

__all__ = [*_flavor_all, "log_model"]
