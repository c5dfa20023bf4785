"""MLflow's ``mlflow.types`` names: the schema types of model signatures."""

from spark_models.schema.params import ParamSchema, ParamSpec
from spark_models.schema.types import ColSpec, DataType, Schema, TensorSpec

__all__ = ["ColSpec", "DataType", "ParamSchema", "ParamSpec", "Schema", "TensorSpec"]
