"""Model output → the UDF's Spark type. Runs in the worker; imports stay light.

Which output columns a ``result_type`` takes is decided by each column's *type*, never by
its values, so every batch of a query takes the same columns (the reference doc's table):

- ``int``: the leftmost column of an integer dtype of at most 32 bits (not uint32);
- ``long``: the leftmost integer column of at most 64 bits (not uint64);
- ``float``/``double``: the leftmost numeric column (integer or floating, not boolean);
- ``boolean``: the leftmost boolean column; ``string``: the leftmost column;
- ``array<...>`` of each: every column that fits, in order;
- structs (output columns by field name), maps, ML vectors and arrays of them:
  :mod:`udf.nested_outputs`.

A column's type is the one the signature declares for it when there is one, else its dtype;
an object column counts as the type of its non-null values (Python ints fit int and long,
their values are range-checked). When the model returns a single column it is also taken
as an integer if it is floating (pandas holds integers with missing values as float64 with
NaN; the values must then be whole numbers) and as a number if it is boolean. An object
column that is null in every row of a batch has no type of its own: it is taken only when
nothing else fits (declare the outputs in the signature to pin such columns).

None, NaN, NaT and pd.NA become Spark nulls for every type, never the text "None"/"NaT".
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import pandas as pd
from pyspark.sql import types as T

from spark_models.exceptions import SchemaEnforcementError
from spark_models.schema.type_table import integer_fits, numpy_dtype
from udf.plan import Kind


NULL_KIND: Kind = ("null", 0)
_OBJECT_KINDS = {
    "integer": ("i", 0),  # Python ints have no width: they fit int and long, range-checked
    "boolean": ("b", 8),
    "floating": ("f", 64),
    "mixed-integer-float": ("f", 64),
    "string": ("s", 0),
    "empty": NULL_KIND,
}
_INTEGRAL = (T.IntegerType, T.LongType)
_FLOATING = (T.FloatType, T.DoubleType)


def column_kind(s: pd.Series) -> Kind:
    """The selection type of one output column, from its dtype (object: its non-null values)."""
    dtype = s.dtype
    if isinstance(dtype, pd.StringDtype):
        return ("s", 0)
    if isinstance(dtype, np.dtype) and dtype.kind == "O":
        return _object_kind(s)
    kind = getattr(dtype, "kind", "O")
    if kind in "iuf":
        return (kind, int(getattr(dtype, "itemsize", 8)) * 8)
    if kind == "b":
        return ("b", 8)
    return ("o", 0)


def _object_kind(s: pd.Series) -> Kind:
    # Only a column whose first non-null value is a number or bool can be numeric or boolean:
    # infer_dtype (a full scan) is needed only then, and text columns skip it.
    for value in s.array:
        if _is_null(value):
            continue
        if isinstance(value, (bool, int, float, np.number, np.bool_)):
            return _OBJECT_KINDS.get(pd.api.types.infer_dtype(s, skipna=True), ("o", 0))
        return ("s", 0) if isinstance(value, str) else ("o", 0)
    return NULL_KIND


def fits(kind: Kind, dt: T.DataType) -> bool:
    """Whether a column of ``kind`` converts to ``dt`` without loss, judged by type alone."""
    cat, bits = kind
    if isinstance(dt, _INTEGRAL):
        return cat in ("i", "u") and integer_fits(cat, bits, "integer" if isinstance(dt, T.IntegerType) else "long")
    if isinstance(dt, _FLOATING):
        return cat in ("i", "u", "f")
    if isinstance(dt, T.BooleanType):
        return cat == "b"
    return True  # string: everything has a text form


def declared_kind(type_name: str) -> Kind:
    """The selection type of an output the signature declares as ``type_name``."""
    if type_name == "string":
        return ("s", 0)
    dtype = numpy_dtype(type_name)
    return (dtype.kind, dtype.itemsize * 8) if dtype.kind in "iufb" else ("o", 0)


def _only_column_fits(kind: Kind, dt: T.DataType) -> bool:
    """What a model's single output column may also be taken as (its values are checked)."""
    return (kind[0] == "f" and isinstance(dt, _INTEGRAL)) or (kind[0] == "b" and isinstance(dt, _FLOATING))


def _error(s: pd.Series, dt: T.DataType, reason: str) -> SchemaEnforcementError:
    return SchemaEnforcementError(
        f"Model output column {s.name!r} ({s.dtype}) does not convert to {dt.simpleString()}: {reason}"
    )


# ---- one column → one Spark type ------------------------------------------------------

def convert(s: pd.Series, dt: T.DataType, kind: Kind | None = None) -> pd.Series:
    """One output column as ``dt`` (a leaf type), nulls as nulls; a clear error if it cannot."""
    s = s.reset_index(drop=True)
    if isinstance(dt, T.StringType):
        return _to_string(s)
    kind = column_kind(s) if kind is None else kind
    if isinstance(dt, _FLOATING):
        return _to_float(s, dt, kind)
    if isinstance(dt, _INTEGRAL):
        return _to_int(s, dt, kind)
    if isinstance(dt, T.BooleanType):
        return _to_bool(s, dt, kind)
    raise _error(s, dt, "unsupported result type")


def _is_null(v: Any) -> bool:
    if v is None or v is pd.NA or v is pd.NaT:
        return True
    if isinstance(v, (float, np.floating)):
        return v != v
    if isinstance(v, (np.datetime64, np.timedelta64)):
        return bool(np.isnat(v))
    return False


def _to_string(s: pd.Series) -> pd.Series:
    if isinstance(s.dtype, np.dtype) and s.dtype.kind in "iufb":
        return s.astype(str).where(s.notna(), None)
    return pd.Series([None if _is_null(v) else v if isinstance(v, str) else str(v) for v in s], dtype=object)


def _to_float(s: pd.Series, dt: T.DataType, kind: Kind) -> pd.Series:
    np_type = np.float32 if isinstance(dt, T.FloatType) else np.float64
    if isinstance(s.dtype, np.dtype) and s.dtype.kind in "iufb":
        return pd.Series(s.to_numpy().astype(np_type, copy=False))
    if kind[0] not in ("i", "u", "f", "b", "null"):
        raise _error(s, dt, "it does not hold numbers")
    try:
        return pd.Series(s.to_numpy(dtype=np_type, na_value=np.nan))
    except (TypeError, ValueError) as e:
        raise _error(s, dt, str(e)) from None


def _int_bounds(dt: T.DataType) -> tuple[int, int]:
    bits = 32 if isinstance(dt, T.IntegerType) else 64
    return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1


def _to_int(s: pd.Series, dt: T.DataType, kind: Kind) -> pd.Series:
    target = np.int32 if isinstance(dt, T.IntegerType) else np.int64
    if isinstance(s.dtype, np.dtype) and s.dtype.kind in "iub":  # numpy: no nulls possible
        values = s.to_numpy()
        if not fits(kind, dt) and len(values):
            _check_range(s, dt, values.min(), values.max())
        return pd.Series(values.astype(target, copy=False))
    if kind[0] == "f":
        values, mask = _whole_floats(s, dt)
    elif isinstance(s.dtype, pd.api.extensions.ExtensionDtype) and s.dtype.kind in "iub":
        values, mask = _extension_ints(s, dt)
    elif kind[0] in ("i", "u", "b", "null"):
        values, mask = _nullable_ints(s, dt)
    else:
        raise _error(s, dt, "it does not hold integers")
    if not mask.any():
        return pd.Series(values.astype(target, copy=False))
    return pd.Series(pd.arrays.IntegerArray(values.astype(target, copy=False), mask))


def _check_range(s: pd.Series, dt: T.DataType, low: Any, high: Any) -> None:
    lo, hi = _int_bounds(dt)
    if low < lo or high > hi:
        raise _error(s, dt, f"values from {low} to {high} do not fit in {dt.simpleString()}")


def _whole_floats(s: pd.Series, dt: T.DataType) -> tuple[np.ndarray, np.ndarray]:
    """Integer-valued floats with NaN (pandas' nullable integers): the ints and the null mask."""
    floats = s.to_numpy(dtype=np.float64, na_value=np.nan)
    mask = np.isnan(floats)
    present = floats[~mask]
    if present.size:
        if not np.all(present == np.floor(present)):
            example = present[present != np.floor(present)][0]
            raise _error(s, dt, f"it holds numbers that are not whole (e.g. {example})")
        _check_range(s, dt, present.min(), present.max())
    return np.where(mask, 0, floats).astype(np.int64), mask


def _extension_ints(s: pd.Series, dt: T.DataType) -> tuple[np.ndarray, np.ndarray]:
    """pandas' nullable Int*/UInt*/boolean columns: the ints and the null mask."""
    mask = s.isna().to_numpy()
    if not mask.all():
        _check_range(s, dt, int(s.min()), int(s.max()))
    return s.to_numpy(dtype=np.int64, na_value=0), mask


def _nullable_ints(s: pd.Series, dt: T.DataType) -> tuple[np.ndarray, np.ndarray]:
    """Integers (numpy, pandas' Int64 or Python objects) with missing values: ints and mask."""
    mask = s.isna().to_numpy()
    try:
        ints = pd.array(s.where(~mask, None).tolist(), dtype="Int64")
    except (TypeError, ValueError, OverflowError) as e:
        raise _error(s, dt, f"it does not hold integers that fit in 64 bits ({e})") from None
    present = ints[~mask]
    if len(present):
        _check_range(s, dt, present.min(), present.max())
    return ints.to_numpy(dtype=np.int64, na_value=0), mask


def _to_bool(s: pd.Series, dt: T.DataType, kind: Kind) -> pd.Series:
    if isinstance(s.dtype, np.dtype) and s.dtype.kind == "b":
        return s
    if kind[0] not in ("b", "null"):
        raise _error(s, dt, "it does not hold booleans")
    return s.astype(object).where(s.notna(), None)


def _python_values(s: pd.Series) -> list:
    """A converted column as Python values with None for every null (for array elements)."""
    mask = s.isna().to_numpy()
    if not mask.any():
        return s.tolist()
    return s.astype(object).where(~mask, None).tolist()


# ---- helpers of a model's whole output (udf.outputs) -----------------------------------

def check_rows(rows: int, expected_rows: int) -> None:
    if rows != expected_rows:
        raise SchemaEnforcementError(
            f"The model returned {rows} rows for a batch of {expected_rows}; scoring must keep one row per input"
        )


def fast_vector(output: Any, dt: T.DataType, expected_rows: int) -> pd.Series | None:
    """The common case without building a frame: one numeric vector whose dtype fits ``dt``."""
    if isinstance(output, pd.Series) and isinstance(output.dtype, np.dtype):
        output = output.to_numpy()
    if not (isinstance(output, np.ndarray) and output.ndim == 1 and len(output) == expected_rows):
        return None
    kind = output.dtype.kind
    if isinstance(dt, _FLOATING) and kind in "iufb":
        return pd.Series(output.astype(np.float32 if isinstance(dt, T.FloatType) else np.float64, copy=False))
    if isinstance(dt, _INTEGRAL) and kind in "iu" and fits((kind, output.dtype.itemsize * 8), dt):
        return pd.Series(output.astype(np.int32 if isinstance(dt, T.IntegerType) else np.int64, copy=False))
    if isinstance(dt, T.BooleanType) and kind == "b":
        return pd.Series(output)
    return None


def as_frame(output: Any) -> pd.DataFrame:
    if isinstance(output, pd.DataFrame):
        return output
    if isinstance(output, pd.Series):
        return output.to_frame()
    if isinstance(output, dict):
        return pd.DataFrame({k: _tensor_rows(v, k) for k, v in output.items()})
    if isinstance(output, list) and output and isinstance(output[0], dict):
        return pd.DataFrame.from_records(output)
    array = np.asarray(output)
    if array.ndim == 0:
        array = array.reshape(1)
    if array.ndim == 1:
        return pd.DataFrame({0: array})
    if array.ndim == 2:
        return pd.DataFrame(array)
    return pd.DataFrame({0: _tensor_rows(array, None)})


def check_dimensions(output: Any) -> None:
    """Refuse tensor outputs of more than 2 dimensions per row, naming the output."""
    tensors = output.items() if isinstance(output, dict) else [(None, output)]
    for name, value in tensors:
        if isinstance(value, np.ndarray) and value.ndim > 3:
            _tensor_rows(value, name)


def _tensor_rows(value: Any, name: Any) -> Any:
    """One output tensor as a column: numbers (1-D), arrays (2-D) or arrays of arrays (3-D)."""
    ndim = np.ndim(value)
    if ndim <= 1:
        return value
    if ndim > 3:
        what = "The model's output" if name is None else f"The model's output {name!r}"
        raise SchemaEnforcementError(
            f"{what} is a tensor of shape {np.shape(value)}: spark_udf returns at most 2 dimensions per row "
            "(array<array<...>>); reshape it in the model or return fewer dimensions")
    return list(value)


def select_columns(frame: pd.DataFrame, dt: T.DataType, declared: Mapping[Any, Kind] | None) -> tuple[list, bool]:
    """(name, dtype kind) of the columns a leaf type takes, left to right, by type alone.

    The flag says they are untyped all-null columns, taken because nothing else fits.
    """
    if isinstance(dt, T.StringType):
        return [(c, None) for c in frame.columns], False
    only = frame.shape[1] == 1
    picked, nulls = [], []
    for name in frame.columns:
        actual = column_kind(frame[name])
        kind = _declared_kind(declared, name, only) or actual
        if kind == NULL_KIND:
            nulls.append((name, actual))
        elif fits(kind, dt) or (only and _only_column_fits(kind, dt)):
            picked.append((name, actual))
    return (picked, False) if picked else (nulls, True)


def _declared_kind(declared: Mapping[Any, Kind] | None, name: Any, only: bool) -> Kind | None:
    if not declared:
        return None
    if only and len(declared) == 1:
        return next(iter(declared.values()))
    return declared.get(str(name))


def _kind_name(kind: Kind) -> str:
    name = {"i": "int", "u": "uint", "f": "float", "b": "boolean", "s": "string"}.get(kind[0], "other")
    return f"{name}{kind[1]}" if kind[0] in "iuf" and kind[1] else name


def no_fit(frame: pd.DataFrame, dt: T.DataType, declared: Mapping[Any, Kind] | None) -> SchemaEnforcementError:
    described = []
    for name in frame.columns:
        kind = _declared_kind(declared, name, frame.shape[1] == 1)
        note = f", declared {_kind_name(kind)}" if kind else ""
        described.append(f"{name} ({frame[name].dtype}{note})")
    return SchemaEnforcementError(
        f"No model output column fits result_type {dt.simpleString()}; the model returned: {', '.join(described)}"
    )


def coerce_array(frame: pd.DataFrame, dt: T.ArrayType, declared: Mapping[Any, Kind] | None) -> pd.Series:
    element = dt.elementType
    if frame.shape[1] == 1 and frame.dtypes.iloc[0] == object:
        column = frame.iloc[:, 0]
        if column.isna().all():
            return pd.Series([None] * len(column), dtype=object)
        if isinstance(column[column.first_valid_index()], (list, tuple, np.ndarray)):
            return _convert_lists(column, element)
    picked, untyped = select_columns(frame, element, declared)
    if not picked:
        raise no_fit(frame, dt, declared)
    if untyped:  # how many of them would fit is unknown: null arrays, never a guessed length
        return pd.Series([None] * len(frame), dtype=object)
    columns = [convert(frame[name], element, kind) for name, kind in picked]
    if all(isinstance(c.dtype, np.dtype) and c.dtype.kind in "iub" for c in columns) or (
            all(isinstance(c.dtype, np.dtype) and c.dtype.kind == "f" and not c.isna().any() for c in columns)):
        return pd.Series(np.column_stack([c.to_numpy() for c in columns]).tolist(), dtype=object)  # no nulls
    values = [_python_values(c) for c in columns]
    return pd.Series([list(row) for row in zip(*values)], dtype=object)


def _convert_lists(column: pd.Series, element: T.DataType) -> pd.Series:
    """A column of lists/arrays → lists of ``element``, converting all values in one go."""
    rows = column.tolist()
    present = [r for r in rows if isinstance(r, (list, tuple, np.ndarray))]
    if any(not isinstance(r, (list, tuple, np.ndarray)) and not _is_null(r) for r in rows):
        raise SchemaEnforcementError(f"Model output column {column.name!r} mixes arrays with single values")
    if present and all(isinstance(r, np.ndarray) and r.ndim == 1 for r in present):
        flat = pd.Series(np.concatenate(present), name=column.name)
    else:
        flat = pd.Series([x for r in present for x in r], name=column.name, dtype=None if present else object)
    values = _python_values(convert(flat, element))
    out, start = [], 0
    for row in rows:
        if isinstance(row, (list, tuple, np.ndarray)):
            out.append(values[start:start + len(row)])
            start += len(row)
        else:
            out.append(None)
    return pd.Series(out, dtype=object)
