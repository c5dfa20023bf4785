"""One column (or param) against one declared type: accept, convert losslessly, or explain.

Numbers convert only losslessly (:func:`spark_models.schema.type_table.lossless_numpy_cast`).
"""

from __future__ import annotations

import datetime as _dt
from typing import Any

import numpy as np
import pandas as pd

from spark_models.exceptions import SchemaEnforcementError
from spark_models.schema.params import ParamSpec
from spark_models.schema.type_table import lossless_numpy_cast
from spark_models.schema.types import ColSpec, DataType

_NUMERIC = {DataType.integer, DataType.long, DataType.float, DataType.double}


def _fail(label: str, spec: ColSpec, actual: Any, why: str = "") -> SchemaEnforcementError:
    msg = f"Column {label!r}: expected {spec.type.value}, got {actual}"
    return SchemaEnforcementError(msg + (f". {why}" if why else ""))


def _missing_ints_hint(label: str) -> str:
    return (
        f"Column {label!r} has missing values, which integer types cannot hold (pandas stores them as "
        "float NaN). Declare the column as double in the signature, or fill the missing values before scoring."
    )


def convert_column(values: pd.Series, spec: ColSpec, label: str) -> pd.Series:
    """``values`` converted to ``spec.type``, or a SchemaEnforcementError that names the column."""
    t = spec.type
    if t in _NUMERIC or t == DataType.boolean:
        return _convert_numeric(values, spec, label)
    if t == DataType.datetime:
        return _convert_datetime(values, spec, label)
    return _convert_object(values, spec, label)


def _numpy_view(values: pd.Series) -> tuple[np.dtype, bool]:
    """(underlying numpy dtype, has missing values) for numpy and pandas nullable dtypes."""
    dtype = values.dtype
    if isinstance(dtype, pd.api.extensions.ExtensionDtype):
        numpy_dtype = getattr(dtype, "numpy_dtype", None)
        if numpy_dtype is None:
            return np.dtype(object), bool(values.isna().any())
        return np.dtype(numpy_dtype), bool(values.isna().any())
    return dtype, False


def _convert_numeric(values: pd.Series, spec: ColSpec, label: str) -> pd.Series:
    target = spec.type.to_numpy()
    src, has_na = _numpy_view(values)
    if src == object and len(values) and bool(values.isna().all()):
        if spec.type in (DataType.float, DataType.double):
            return pd.Series(np.full(len(values), np.nan, dtype=target), index=values.index, name=values.name)
        raise _fail(label, spec, "a column of only missing values", _missing_ints_hint(label) if target.kind in "iu"
                    else "The column holds only missing values, which boolean cannot hold; fill them before scoring")
    if src == object:
        inferred = values.infer_objects()
        if inferred.dtype == object:
            raise _fail(label, spec, "object", "The column holds non-numeric values" if spec.type != DataType.boolean else "The column holds non-boolean values")
        values, (src, has_na) = inferred, _numpy_view(inferred)
    if spec.type == DataType.boolean:
        if src.kind != "b":
            raise _fail(label, spec, values.dtype)
        if has_na:
            raise _fail(label, spec, values.dtype, "The column has missing values; fill them before scoring")
        return values.astype(bool)
    if src.kind == "f" and target.kind in "iu":
        why = _missing_ints_hint(label) if values.isna().any() else "Floats never convert to integers implicitly"
        raise _fail(label, spec, values.dtype, why)
    if not lossless_numpy_cast(src, target):
        why = ""
        if src.kind in "iu" and target.kind == "f":
            why = f"{src} to {target} can lose precision; declare the column as {'double' if src.itemsize < 8 else 'long'} or convert it"
        raise _fail(label, spec, values.dtype, why)
    if has_na:
        if target.kind != "f":
            raise _fail(label, spec, values.dtype, _missing_ints_hint(label))
        return pd.Series(values.to_numpy(dtype=target, na_value=np.nan), index=values.index, name=values.name)
    return values.astype(target) if values.dtype != target else values


def _convert_datetime(values: pd.Series, spec: ColSpec, label: str) -> pd.Series:
    # Precision (datetime64[D] vs [ns]) is ignored for column specs, as the reference doc says.
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        # Normalized to nanoseconds, as MLflow does; tz-aware columns keep their zone.
        return values if isinstance(values.dtype, pd.DatetimeTZDtype) else values.astype("datetime64[ns]")
    if values.dtype == object:
        ok = values.map(lambda v: v is None or isinstance(v, (_dt.datetime, _dt.date, np.datetime64)) or pd.isna(v))
        if bool(ok.all()):
            return pd.to_datetime(values)
    raise _fail(label, spec, values.dtype, "Pass datetime64 values or datetime objects")


def _convert_object(values: pd.Series, spec: ColSpec, label: str) -> pd.Series:
    kind = str if spec.type == DataType.string else (bytes, bytearray)
    if isinstance(values.dtype, pd.StringDtype) and spec.type == DataType.string:
        return values.astype(object).where(values.notna(), None)
    if values.dtype != object:
        raise _fail(label, spec, values.dtype)
    bad = values.map(lambda v: not (isinstance(v, kind) or v is None or (isinstance(v, float) and np.isnan(v))))
    if bool(bad.any()):
        first = values[bad].iloc[0]
        raise _fail(label, spec, f"object column holding {type(first).__name__} values (e.g. {first!r})")
    return values


def convert_param(value: Any, spec: ParamSpec) -> Any:
    """A param value converted to its declared type (a list when ``shape`` is (-1,))."""
    if spec.shape is not None:
        if not isinstance(value, (list, tuple, np.ndarray)):
            raise SchemaEnforcementError(f"Param {spec.name!r}: expected a list of {spec.dtype.value}, got {value!r}")
        return [_convert_scalar_param(v, spec) for v in value]
    return _convert_scalar_param(value, spec)


def _convert_scalar_param(value: Any, spec: ParamSpec) -> Any:
    t = spec.dtype
    ok = {
        DataType.boolean: lambda v: isinstance(v, (bool, np.bool_)),
        DataType.integer: lambda v: isinstance(v, (int, np.integer)) and not isinstance(v, bool) and -(2**31) <= v < 2**31,
        DataType.long: lambda v: isinstance(v, (int, np.integer)) and not isinstance(v, bool),
        DataType.float: lambda v: isinstance(v, (int, float, np.number)) and not isinstance(v, bool),
        DataType.double: lambda v: isinstance(v, (int, float, np.number)) and not isinstance(v, bool),
        DataType.string: lambda v: isinstance(v, str),
        DataType.binary: lambda v: isinstance(v, (bytes, bytearray)),
        DataType.datetime: lambda v: isinstance(v, (_dt.datetime, _dt.date, np.datetime64, str)),
    }[t](value)
    if not ok:
        raise SchemaEnforcementError(f"Param {spec.name!r}: expected {t.value}, got {type(value).__name__} {value!r}")
    if t in (DataType.float, DataType.double):
        return float(value)
    if t in (DataType.integer, DataType.long):
        return int(value)
    if t == DataType.datetime and isinstance(value, str):
        try:
            return _dt.datetime.fromisoformat(value)
        except ValueError:
            raise SchemaEnforcementError(f"Param {spec.name!r}: {value!r} is not an ISO 8601 datetime") from None
    return value
