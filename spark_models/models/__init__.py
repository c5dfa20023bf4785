"""MLflow's ``mlflow.models`` names: ``Model``, ``ModelSignature``, ``infer_signature``."""

from spark_models.mlmodel import Model
from spark_models.schema.inference import infer_signature
from spark_models.schema.signature import ModelSignature

__all__ = ["Model", "ModelSignature", "infer_signature"]
