"""``result_type`` on the driver: parse it, or derive it from the signature, and check it.

Scalar types take the leftmost output column that fits, array types every column that
fits, struct types their fields by name (the reference doc's table, plus boolean, struct and
DDL strings). The worker-side conversion lives in :mod:`udf.coercion`.

Derived from the signature, MLflow 3's nested outputs become Spark's nested types (``Array``
→ array, ``Object`` → struct, ``Map`` → map, ``sparkml_vector`` → vector, all nullable) as
long as every leaf is one spark_udf returns; an explicit ``result_type`` stays limited to
leaves, arrays of leaves and structs of those.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pyspark.sql import types as T

from spark_models.exceptions import InvalidArgumentError, SchemaError
from spark_models.schema.data_type import DataType
from spark_models.schema.nested import type_name
from spark_models.schema.type_table import spark_leaf_of_numpy
from udf.coercion import declared_kind
from udf.nested_outputs import nullable, unreturnable

_SIMPLE = {
    "int": T.IntegerType(),
    "integer": T.IntegerType(),
    "long": T.LongType(),
    "bigint": T.LongType(),
    "float": T.FloatType(),
    "double": T.DoubleType(),
    "string": T.StringType(),
    "boolean": T.BooleanType(),
    "bool": T.BooleanType(),
}
_SUPPORTED_LEAVES = (T.IntegerType, T.LongType, T.FloatType, T.DoubleType, T.StringType, T.BooleanType)
_SUPPORTED = "int, long, float, double, string, boolean, arrays of those, or a struct of those and arrays"


def parse_result_type(result_type: Any, signature: Any = None) -> T.DataType:
    """A Spark DataType from a name, DDL string, DataType, or (None) the signature outputs."""
    if result_type is None:
        return _from_signature(signature)
    if isinstance(result_type, T.DataType):
        dt = result_type
    elif isinstance(result_type, str):
        dt = _SIMPLE.get(result_type.strip().lower()) or _parse_ddl(result_type)
    else:
        raise InvalidArgumentError(f"result_type must be a Spark DataType or a type string, got {result_type!r}")
    problem = _unsupported(dt)
    if problem:
        raise InvalidArgumentError(f"Unsupported result_type {result_type!r}: {problem}; use {_SUPPORTED}")
    return dt


def _parse_ddl(text: str) -> T.DataType:
    from pyspark.sql.types import _parse_datatype_string

    try:
        return _parse_datatype_string(text)
    except Exception as e:
        raise InvalidArgumentError(f"Cannot parse result_type {text!r}: {e}") from None


def _unsupported(dt: T.DataType, in_struct: bool = False) -> str | None:
    """What spark_udf cannot return in ``dt`` (None when it can return all of it)."""
    if isinstance(dt, T.ArrayType):
        leaf = dt.elementType
        if isinstance(leaf, T.ArrayType) and isinstance(leaf.elementType, _SUPPORTED_LEAVES):
            return None  # a 2-D tensor per row
        return None if isinstance(leaf, _SUPPORTED_LEAVES) else f"arrays of {leaf.simpleString()}"
    if isinstance(dt, T.StructType):
        if in_struct:
            return f"a struct inside a struct ({dt.simpleString()})"
        for field in dt.fields:
            problem = _unsupported(field.dataType, in_struct=True)
            if problem:
                return f"field {field.name!r}: {problem}"
        return None
    return None if isinstance(dt, _SUPPORTED_LEAVES) else dt.simpleString()


# ---- result_type=None: the signature's outputs ----------------------------------------

def _from_signature(signature: Any) -> T.DataType:
    outputs = getattr(signature, "outputs", None)
    if outputs is None or not outputs.inputs:
        return T.DoubleType()
    specs = outputs.inputs
    leaves = [_output_type(spec, i) for i, spec in enumerate(specs)]
    if len(specs) == 1:
        return leaves[0]
    if outputs.has_input_names():
        return T.StructType([T.StructField(str(s.name), dt) for s, dt in zip(specs, leaves)])
    return T.ArrayType(_common_leaf(leaves, specs))


def _label(spec: Any, index: int) -> str:
    return repr(spec.name) if spec.name is not None else f"#{index}"


def _output_type(spec: Any, index: int) -> T.DataType:
    """The Spark type of one signature output, or an error naming the output."""
    if hasattr(spec, "shape"):  # TensorSpec
        dt = _tensor_type(spec, index)
    elif not isinstance(spec.type, DataType):  # MLflow 3's array / object / map / sparkml_vector
        return _nested_type(spec, index)
    else:
        dt = spec.type.to_spark()
    if not isinstance(dt, T.ArrayType) and not isinstance(dt, _SUPPORTED_LEAVES):
        raise InvalidArgumentError(
            f"The model's output {_label(spec, index)} has type {getattr(spec.type, 'value', spec.type)}, which "
            f"spark_udf cannot return; pass result_type (e.g. result_type='string', or a struct naming other outputs)"
        )
    return dt


def _nested_type(spec: Any, index: int) -> T.DataType:
    """An array / object / map / vector output as Spark's array / struct / map / vector type,
    everything nullable; an error naming the output when a part of it cannot be returned."""
    try:
        dt = spec.type.to_spark()
        problem = unreturnable(dt)
    except SchemaError:
        problem = "the type 'any' has no Spark type"
    if problem:
        raise InvalidArgumentError(
            f"The model's output {_label(spec, index)} has type {type_name(spec.type)}, which spark_udf cannot "
            f"return ({problem}); pass result_type (e.g. result_type='string', or a struct naming other outputs)"
        )
    return nullable(dt)


def _tensor_type(spec: Any, index: int) -> T.DataType:
    leaf = spark_leaf_of_numpy(np.dtype(spec.dtype))
    dims = len(spec.shape or (-1,))
    if leaf is None or dims > 3:
        what = f"dtype {spec.dtype}" if leaf is None else f"{dims - 1} dimensions per row (at most 2: array<array<...>>)"
        raise InvalidArgumentError(
            f"The model's output {_label(spec, index)} is a tensor of shape {tuple(spec.shape)}, dtype {spec.dtype}: "
            f"spark_udf cannot return {what}; reshape it in the model"
            + ("" if leaf is not None else ", or pass result_type (e.g. 'array<double>')")
        )
    for _ in range(dims - 1):
        leaf = T.ArrayType(leaf)
    return leaf


def _common_leaf(leaves: list, specs: list) -> T.DataType:
    """The element type of an array of unnamed outputs: their shared type, else double/string."""
    if any(not isinstance(dt, _SUPPORTED_LEAVES) for dt in leaves):
        raise InvalidArgumentError(
            f"The model has {len(specs)} unnamed outputs and some are tensors, arrays, objects or maps; pass "
            "result_type (e.g. 'array<double>')"
        )
    if all(dt == leaves[0] for dt in leaves):
        return leaves[0]
    numeric = (T.IntegerType, T.LongType, T.FloatType, T.DoubleType, T.BooleanType)
    return T.DoubleType() if all(isinstance(dt, numeric) for dt in leaves) else T.StringType()


def declared_kinds(signature: Any) -> dict | None:
    """Output name (None: the single unnamed output) → the selection type the signature declares."""
    outputs = getattr(signature, "outputs", None)
    if outputs is None or not outputs.inputs or outputs.is_tensor_spec():
        return None
    specs = outputs.inputs
    if len(specs) > 1 and not outputs.has_input_names():
        return None
    kinds = {}
    for spec in specs:
        name = None if len(specs) == 1 and spec.name is None else str(spec.name)
        kinds[name] = declared_kind(spec.type.value) if isinstance(spec.type, DataType) else ("o", 0)
    return kinds
