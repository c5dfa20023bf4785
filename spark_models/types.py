"""MLflow's ``mlflow.types`` names: the schema types of model signatures."""

from spark_models.schema.data_type import DataType
from spark_models.schema.nested import AnyType, Array, Map, Object, Property, SparkMLVector
from spark_models.schema.params import ParamSchema, ParamSpec
from spark_models.schema.types import ColSpec, Schema, TensorSpec

__all__ = ["AnyType", "Array", "ColSpec", "DataType", "Map", "Object", "ParamSchema", "ParamSpec", "Property", "Schema",
           "SparkMLVector", "TensorSpec"]
