"""Schema ↔ Spark StructType. Imported only when a Spark conversion is asked for."""

from __future__ import annotations

import numpy as np
from pyspark.sql import types as T

from spark_models.exceptions import SchemaError
from spark_models.types import ColSpec, DataType, Schema, TensorSpec

_FROM_SPARK = {
    T.BooleanType: DataType.boolean,
    T.ByteType: DataType.integer,
    T.ShortType: DataType.integer,
    T.IntegerType: DataType.integer,
    T.LongType: DataType.long,
    T.FloatType: DataType.float,
    T.DoubleType: DataType.double,
    T.StringType: DataType.string,
    T.BinaryType: DataType.binary,
    T.DateType: DataType.datetime,
    T.TimestampType: DataType.datetime,
    T.TimestampNTZType: DataType.datetime,
}
_NUMPY_OF_SPARK = {
    T.BooleanType: np.bool_,
    T.ByteType: np.int8,
    T.ShortType: np.int16,
    T.IntegerType: np.int32,
    T.LongType: np.int64,
    T.FloatType: np.float32,
    T.DoubleType: np.float64,
}
_SPARK_OF_NUMPY = {np.dtype(v): k for k, v in _NUMPY_OF_SPARK.items()}


def _array_depth_and_leaf(dt: T.DataType) -> tuple[int, T.DataType]:
    depth = 0
    while isinstance(dt, T.ArrayType):
        depth, dt = depth + 1, dt.elementType
    return depth, dt


def _field_spec(field: T.StructField) -> ColSpec | TensorSpec:
    depth, leaf = _array_depth_and_leaf(field.dataType)
    if depth:
        if type(leaf) not in _NUMPY_OF_SPARK:
            raise SchemaError(f"Column {field.name!r}: arrays of {leaf.simpleString()} have no tensor type")
        return TensorSpec(_NUMPY_OF_SPARK[type(leaf)], (-1,) * (depth + 1), field.name)
    if type(leaf) not in _FROM_SPARK:
        raise SchemaError(f"Column {field.name!r}: Spark type {leaf.simpleString()} has no model-signature type")
    return ColSpec(_FROM_SPARK[type(leaf)], field.name)


def schema_from_spark(struct: T.StructType) -> Schema:
    specs = [_field_spec(f) for f in struct.fields]
    kinds = {type(s) for s in specs}
    if len(kinds) > 1:
        arrays = [s.name for s in specs if isinstance(s, TensorSpec)]
        raise SchemaError(
            f"Columns {arrays} are arrays (tensor specs) but the others are scalars; a signature cannot mix them. "
            "Infer the signature from the scalar columns, or from the array columns alone."
        )
    return Schema(specs)


def _spec_to_spark(spec: ColSpec | TensorSpec) -> T.DataType:
    if isinstance(spec, ColSpec):
        return spec.type.to_spark()
    if spec.dtype not in _SPARK_OF_NUMPY:
        raise SchemaError(f"Tensor {spec.name!r} of dtype {spec.dtype} has no Spark type")
    dt: T.DataType = _SPARK_OF_NUMPY[spec.dtype]()
    for _ in range(max(len(spec.shape or (-1, -1)) - 1, 1)):
        dt = T.ArrayType(dt)
    return dt


def schema_to_spark(schema: Schema) -> T.StructType:
    if not schema.has_input_names():
        raise SchemaError("Only a schema with named inputs converts to a Spark StructType")
    return T.StructType([T.StructField(str(s.name), _spec_to_spark(s), nullable=True) for s in schema.inputs])
