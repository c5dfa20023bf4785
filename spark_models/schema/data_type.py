"""``DataType``: the scalar column types of a signature (MLflow's set)."""

from __future__ import annotations

from enum import Enum

import numpy as np

import spark_models.schema.type_table as type_table
from spark_models.exceptions import SchemaError


class DataType(Enum):
    """Column types of a column-based schema (the MLflow set)."""

    boolean = "boolean"
    integer = "integer"
    long = "long"
    float = "float"
    double = "double"
    string = "string"
    binary = "binary"
    datetime = "datetime"

    def __repr__(self) -> str:
        return self.name

    def to_numpy(self) -> np.dtype:
        """The numpy dtype a column of this type is held in."""
        return type_table.numpy_dtype(self.value)

    def to_pandas(self) -> np.dtype:
        """The pandas dtype a column of this type is held in (object for strings/bytes)."""
        return self.to_numpy()

    def to_python(self) -> type:
        """The Python type of one value."""
        return type_table.python_type(self.value)

    def to_spark(self):  # -> pyspark.sql.types.DataType
        """The Spark SQL type of this column type."""
        return type_table.spark_type(self.value)

    def to_arrow(self):  # -> pyarrow.DataType
        """The Arrow type of this column type."""
        return type_table.arrow_type(self.value)

    @classmethod
    def from_name(cls, name: str, where: str = "") -> "DataType":
        """Parse a type name, with an error that says where the name came from."""
        try:
            return cls(name)
        except ValueError:
            place = f" ({where})" if where else ""
            raise SchemaError(
                f"Unsupported column type {name!r}{place}. spark-models supports: "
                f"{', '.join(t.value for t in cls)}."
            ) from None
