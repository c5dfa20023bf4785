"""Model output → the UDF's struct, map, nested-array and ML vector types. Runs in the worker.

Structs take the model's output columns by field name (unnamed outputs fill them by position),
or, when the model returns a single column of dicts that are not one field's values (one
MLflow 3 ``Object`` output), that column's dicts. Struct fields and nested values convert with
the leaf rules of :mod:`udf.coercion`, one vectorized conversion per place in the structure:

- an array: a list, tuple or numpy array;
- a struct (inside a struct, an array or a map): a dict or a ``Row``; absent keys are nulls;
- a map: a dict with string keys;
- an ML vector: a ``DenseVector``/``SparseVector``, or an array of numbers (a dense vector).

None, NaN, NaT and pd.NA become Spark nulls at every level.
"""

from __future__ import annotations

from itertools import chain
from typing import Any, Mapping

import numpy as np
import pandas as pd
from pyspark.sql import types as T

from spark_models.exceptions import SchemaEnforcementError
from udf.coercion import _is_null, _python_values, as_frame, check_rows, coerce_array, convert

LEAVES = (T.IntegerType, T.LongType, T.FloatType, T.DoubleType, T.StringType, T.BooleanType)


def is_vector_type(dt: T.DataType) -> bool:
    return type(dt).__name__ == "VectorUDT"


def _is_simple(dt: T.DataType) -> bool:
    """A leaf, or an array of leaves: what :mod:`udf.coercion` converts on its own."""
    return isinstance(dt, LEAVES) or (isinstance(dt, T.ArrayType) and isinstance(dt.elementType, LEAVES))


def handles(dt: T.DataType) -> bool:
    """Whether the result type is converted here (structs, maps, vectors, arrays of those)."""
    return isinstance(dt, (T.StructType, T.MapType)) or is_vector_type(dt) or (
        isinstance(dt, T.ArrayType) and not isinstance(dt.elementType, LEAVES))


def unreturnable(dt: T.DataType, where: str = "") -> str | None:
    """What spark_udf cannot return inside ``dt`` (None: it can return all of it)."""
    if isinstance(dt, LEAVES) or is_vector_type(dt):
        return None
    if isinstance(dt, T.ArrayType):
        return unreturnable(dt.elementType, f"{where} items".strip())
    if isinstance(dt, T.StructType):
        found = (unreturnable(f.dataType, f"{where} field {f.name!r}".strip()) for f in dt.fields)
        return next((problem for problem in found if problem), None)
    if isinstance(dt, T.MapType) and isinstance(dt.keyType, T.StringType):
        return unreturnable(dt.valueType, f"{where} values".strip())
    return f"{where + ': ' if where else ''}{dt.simpleString()}"


def nullable(dt: T.DataType) -> T.DataType:
    """``dt`` with every field, item and value nullable (a model may return nulls anywhere)."""
    if isinstance(dt, T.ArrayType):
        return T.ArrayType(nullable(dt.elementType), containsNull=True)
    if isinstance(dt, T.StructType):
        return T.StructType([T.StructField(f.name, nullable(f.dataType), nullable=True) for f in dt.fields])
    if isinstance(dt, T.MapType):
        return T.MapType(dt.keyType, nullable(dt.valueType), valueContainsNull=True)
    return dt


def coerce_nested(output: Any, dt: T.DataType, expected_rows: int,
                  declared: Mapping[Any, Any] | None = None) -> pd.Series | pd.DataFrame:
    """Model output → a DataFrame (structs) or Series of ``dt`` with ``expected_rows`` rows."""
    if isinstance(dt, T.StructType):
        frame = _struct_frame(output, dt)
        check_rows(len(frame), expected_rows)
        return pd.DataFrame({f.name: column(frame[f.name], f.dataType) for f in dt.fields})
    values = _single_column(output, dt, declared)
    check_rows(len(values), expected_rows)
    return column(values, dt)


def column(values: pd.Series, dt: T.DataType) -> pd.Series:
    """One output column (a struct field, or the whole result) as ``dt``."""
    values = values.reset_index(drop=True)
    if isinstance(dt, LEAVES):
        return convert(values, dt)
    if _is_simple(dt):
        return coerce_array(values.to_frame(), dt, None)
    name = str(values.name) if values.name is not None else "output"
    return pd.Series(_convert(values.tolist(), dt, name), dtype=object)


def _record(value: Any) -> dict | None:
    if isinstance(value, dict):
        return value
    if type(value).__name__ == "Row" and hasattr(value, "asDict"):
        return value.asDict()
    return None


def _struct_frame(output: Any, dt: T.StructType) -> pd.DataFrame:
    """The output's columns named as the struct's fields (see the module docstring)."""
    wanted = [f.name for f in dt.fields]
    if isinstance(output, (list, tuple)) and output and all(_record(v) is not None or _is_null(v) for v in output):
        output = pd.Series(list(output), dtype=object)  # records: expanded below
    frame = as_frame(output).reset_index(drop=True)
    returned = [str(c) for c in frame.columns]
    frame.columns = returned
    if len(returned) == 1 and returned[0] not in wanted and _holds_records(frame.iloc[:, 0], dt):
        records = [_record(v) or {} for v in frame.iloc[:, 0]]
        return pd.DataFrame({name: pd.Series([r.get(name) for r in records], dtype=object) for name in wanted})
    if len(wanted) == len(returned) and not set(wanted) & set(returned):
        frame.columns = wanted  # unnamed outputs fill the struct by position
    missing = [n for n in wanted if n not in frame.columns]
    if missing:
        raise SchemaEnforcementError(f"result_type struct fields {missing} are not among the model's outputs: {returned}")
    return frame


def _holds_records(values: pd.Series, dt: T.StructType) -> bool:
    """Whether a single output column holds the struct's records (not one field's values)."""
    if values.dtype != object or (len(dt.fields) == 1 and isinstance(dt.fields[0].dataType, (T.StructType, T.MapType))):
        return False
    present = [v for v in values if not _is_null(v)]
    return bool(present) and all(_record(v) is not None for v in present)


def _single_column(output: Any, dt: T.DataType, declared: Mapping[Any, Any] | None) -> pd.Series:
    """The one output column a map, vector or nested-array result takes."""
    if isinstance(output, pd.Series):
        return output
    if isinstance(output, (list, tuple)):
        return pd.Series(list(output), dtype=object)
    if isinstance(output, np.ndarray) and output.ndim >= 1:
        return pd.Series(list(output), dtype=object)
    frame = as_frame(output)
    if frame.shape[1] == 1:
        return frame.iloc[:, 0]
    names = [str(c) for c in frame.columns]
    chosen = [n for n in (declared or {}) if n in names]
    if len(chosen) == 1:
        return frame.iloc[:, names.index(chosen[0])]
    raise SchemaEnforcementError(
        f"result type {dt.simpleString()} takes one model output column; the model returned {names}")


# ---- Python values at one place of the structure → Spark's Python values ---------------

def _fail(where: str, dt: T.DataType, row: int | None, value: Any, what: str) -> SchemaEnforcementError:
    at = f" (row {row})" if row is not None else ""
    shown = repr(value)
    shown = shown if len(shown) <= 80 else shown[:77] + "..."
    return SchemaEnforcementError(
        f"Model output {where!r}{at} does not convert to {dt.simpleString()}: expected {what}, got "
        f"{type(value).__name__} {shown}")


def _convert(values: list, dt: T.DataType, where: str) -> list:
    """``values`` (all at one place: a field, the items of arrays …) converted to ``dt``."""
    if isinstance(dt, LEAVES):
        return _python_values(convert(pd.Series(values, dtype=object, name=where), dt))
    if isinstance(dt, T.ArrayType):
        return _arrays(values, dt, where)
    if isinstance(dt, T.StructType):
        return _structs(values, dt, where)
    if isinstance(dt, T.MapType):
        return _maps(values, dt, where)
    if is_vector_type(dt):
        return _vectors(values, dt, where)
    raise SchemaEnforcementError(f"Model output {where!r}: spark_udf cannot return {dt.simpleString()}")


def _present(values: list, dt: T.DataType, where: str, check: Any, what: str) -> list[int]:
    """Positions of the non-null values; each must pass ``check``."""
    positions = []
    for i, value in enumerate(values):
        if _is_null(value):
            continue
        if not check(value):
            raise _fail(where, dt, i, value, what)
        positions.append(i)
    return positions


def _is_array(value: Any) -> bool:
    return isinstance(value, (list, tuple)) or (isinstance(value, np.ndarray) and value.ndim >= 1)


def _arrays(values: list, dt: T.ArrayType, where: str) -> list:
    at = _present(values, dt, where, _is_array, "an array (list, tuple or numpy array)")
    cells = [values[i] for i in at]
    items = _convert(list(chain.from_iterable(cells)), dt.elementType, f"{where}[]")
    out: list = [None] * len(values)
    start = 0
    for i, cell in zip(at, cells):
        out[i], start = items[start:start + len(cell)], start + len(cell)
    return out


def _structs(values: list, dt: T.StructType, where: str) -> list:
    at = _present(values, dt, where, lambda v: _record(v) is not None, "a dict or Row")
    records = [_record(values[i]) or {} for i in at]
    fields = {f.name: _convert([r.get(f.name) for r in records], f.dataType, f"{where}.{f.name}") for f in dt.fields}
    out: list = [None] * len(values)
    for k, i in enumerate(at):
        out[i] = {name: converted[k] for name, converted in fields.items()}
    return out


def _maps(values: list, dt: T.MapType, where: str) -> list:
    def string_keys(value: Any) -> bool:
        return isinstance(value, dict) and all(isinstance(k, str) for k in value)

    at = _present(values, dt, where, string_keys, "a dict with string keys")
    cells = [values[i] for i in at]
    converted = _convert(list(chain.from_iterable(c.values() for c in cells)), dt.valueType, f"{where}{{}}")
    out: list = [None] * len(values)
    start = 0
    for i, cell in zip(at, cells):
        out[i], start = dict(zip(cell.keys(), converted[start:start + len(cell)])), start + len(cell)
    return out


def _vectors(values: list, dt: T.DataType, where: str) -> list:
    from pyspark.ml.linalg import DenseVector, Vector

    def vector_like(value: Any) -> bool:
        return isinstance(value, Vector) or _is_array(value)

    at = _present(values, dt, where, vector_like, "an ML vector or an array of numbers")
    out: list = [None] * len(values)
    for i in at:
        value = values[i]
        try:
            out[i] = value if isinstance(value, Vector) else DenseVector(np.asarray(value, dtype=np.float64))
        except (TypeError, ValueError):
            raise _fail(where, dt, i, value, "an ML vector or an array of numbers") from None
    return out
