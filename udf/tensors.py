"""Spark array columns → the tensors a signature declares, and tensor outputs → Spark values.

A tensor input ``TensorSpec(float32, (-1, 3, 8, 8))`` takes, per row, either the flattened
values (``array<float>`` of 3·8·8 = 192) or the nested form (``array<array<array<float>>>``,
3 × 8 × 8), in C order; an ML vector also works for a 2-D spec ``(-1, n)``. The nesting of a
column's Spark type is checked on the driver by ``u.validate(df)``; the lengths are checked
per batch, and a row of another shape fails the task naming the column, the row, its shape
and the spec's. Values are cast to the spec's dtype (Spark's ``double`` arrays feed float32
models). A null array fails too: a tensor has no missing rows.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from spark_models.exceptions import SchemaEnforcementError
from udf.plan import UNNAMED_TENSOR, TensorInput


def _shape_text(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def _label(tensor: TensorInput, column: Any) -> str:
    return f"column {column!r}" if column == tensor.column or tensor.column == UNNAMED_TENSOR else (
        f"column {column!r} (model input {tensor.column!r})")


def accepted_depths(shape: tuple[int, ...]) -> tuple[int, ...]:
    """How deep the Spark arrays of a tensor input may nest: flattened (1) or one level per
    dimension after the batch dimension; a 1-D tensor ``(-1,)`` is a column of numbers."""
    return (0,) if len(shape) <= 1 else tuple(sorted({1, len(shape) - 1}))


def depth_problem(spark_type: Any, shape: tuple[int, ...], label: str) -> str | None:
    """Why a column of ``spark_type`` cannot carry the tensor ``shape`` (None: it can)."""
    from pyspark.sql import types as T

    depth, element = 0, spark_type
    while isinstance(element, T.ArrayType):
        depth, element = depth + 1, element.elementType
    if spark_type.typeName() == "vector" or getattr(spark_type, "simpleString", lambda: "")() == "vector":
        depth, element = (1, T.DoubleType()) if len(shape) == 2 else (0, spark_type)
    numeric = isinstance(element, (T.ByteType, T.ShortType, T.IntegerType, T.LongType, T.FloatType, T.DoubleType,
                                   T.BooleanType))
    if depth in accepted_depths(shape) and numeric:
        return None
    forms = [_nested_type(d, shape) for d in accepted_depths(shape)]
    return (f"{label} is {spark_type.simpleString()}, but the signature's tensor has shape {_shape_text(shape)}: "
            f"pass {' or '.join(forms)} (per row, in C order)")


def _nested_type(depth: int, shape: tuple[int, ...]) -> str:
    rows = math.prod(d for d in shape[1:] if d > 0) if all(d > 0 for d in shape[1:]) else None
    if depth == 0:
        return "a numeric column"
    text = "array<" * depth + "float" + ">" * depth
    return f"{text} of {rows} values" if depth == 1 and rows and len(shape) > 2 else text


def _row_shape(value: Any) -> tuple[int, ...] | None:
    """The shape of one nested row (None when it is ragged)."""
    array = np.asarray(value)
    if array.dtype != object:
        return array.shape
    inner = {_row_shape(v) for v in array}
    if len(inner) != 1 or None in inner:
        return None
    return (len(array), *next(iter(inner)))


def _dense(value: Any) -> np.ndarray:
    """A nested row (object arrays of arrays, as Arrow hands them) as one numeric array."""
    if isinstance(value, np.ndarray) and value.dtype == object:
        return np.stack([_dense(v) for v in value])
    return np.asarray(value)


def _fail(tensor: TensorInput, column: Any, row: int, got: str) -> SchemaEnforcementError:
    return SchemaEnforcementError(
        f"spark_udf: {_label(tensor, column)} row {row} has {got}, but the signature's tensor takes "
        f"{_shape_text(tensor.shape[1:])} per row (shape {_shape_text(tensor.shape)}, flattened or nested)")


def _check_row(tensor: TensorInput, column: Any, row: int, value: Any) -> None:
    want = tensor.shape[1:]
    if value is None:
        raise _fail(tensor, column, row, "a null")
    shape = _row_shape(value)
    if shape is None:
        raise _fail(tensor, column, row, "ragged nested arrays")
    if len(shape) == 1 and len(want) != 1:
        size = math.prod(want) if all(d > 0 for d in want) else None
        if size is not None and shape[0] != size:
            raise _fail(tensor, column, row, f"{shape[0]} values")
        return
    if len(shape) != len(want) or any(w > 0 and w != s for w, s in zip(want, shape)):
        raise _fail(tensor, column, row, f"shape {_shape_text(shape)}")


def _stacked(tensor: TensorInput, column: pd.Series) -> np.ndarray:
    """One column's rows as one array of shape (rows, ...)."""
    want = tensor.shape[1:]
    if not want:  # (-1,): one number per row
        if column.isna().any():
            raise _fail(tensor, column.name, int(np.flatnonzero(column.isna().to_numpy())[0]), "a null")
        return column.to_numpy().astype(tensor.dtype, copy=False)
    values = column.tolist()
    flat_width = {len(v) if isinstance(v, np.ndarray) and v.dtype != object else -1 for v in values}
    if len(flat_width) == 1 and -1 not in flat_width:  # all flat numeric rows of one width: one copy
        stacked = np.stack(values)
    else:
        for row, value in enumerate(values):
            _check_row(tensor, column.name, row, value)
        stacked = np.stack([_dense(v) for v in values]) if values else np.empty((0,))
    if len(values) and stacked.ndim == 2 and len(want) != 1:
        width = math.prod(want) if all(d > 0 for d in want) else None
        if width is not None and stacked.shape[1] != width:
            raise _fail(tensor, column.name, 0, f"{stacked.shape[1]} values")
    try:
        return stacked.reshape((len(values), *want)).astype(tensor.dtype, copy=False)
    except ValueError:
        for row, value in enumerate(values):
            _check_row(tensor, column.name, row, value)
        raise


def reshape_tensors(frame: pd.DataFrame, tensors: tuple[TensorInput, ...]) -> Any:
    """Array columns → ndarrays shaped per their TensorSpec and cast to its dtype: one array for
    a single tensor input (whatever its column is called), else a dict by input name."""
    if len(tensors) == 1 and frame.shape[1] == 1:
        return _stacked(tensors[0], frame.iloc[:, 0])
    return {tensor.column: _stacked(tensor, frame[tensor.column]) for tensor in tensors}
