"""MLflow's ``mlflow.models.signature`` names."""

from spark_models.schema_inference import infer_signature
from spark_models.signature import ModelSignature

__all__ = ["ModelSignature", "infer_signature"]
