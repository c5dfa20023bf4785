"""MLflow's ``mlflow.models`` names: ``Model``, ``ModelSignature``, ``infer_signature``."""

from spark_models.mlmodel import Model
from spark_models.schema_inference import infer_signature
from spark_models.signature import ModelSignature

__all__ = ["Model", "ModelSignature", "infer_signature"]
