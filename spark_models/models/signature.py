"""MLflow's ``mlflow.models.signature`` names."""

from spark_models.schema.inference import infer_signature
from spark_models.schema.signature import ModelSignature

__all__ = ["ModelSignature", "infer_signature"]
