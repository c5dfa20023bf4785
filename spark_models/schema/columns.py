"""One column (or param) against one declared type: accept, convert losslessly, or explain.

Numbers convert only losslessly (:func:`spark_models.schema.type_table.lossless_numpy_cast`).
"""

from __future__ import annotations

import datetime as _dt
import decimal
from typing import Any

import numpy as np
import pandas as pd

from spark_models.exceptions import SchemaEnforcementError
from spark_models.schema.params import ParamSpec
from spark_models.schema.type_table import lossless_numpy_cast
from spark_models.schema.data_type import DataType
from spark_models.schema.types import ColSpec

_NUMERIC = {DataType.integer, DataType.long, DataType.float, DataType.double}


def _fail(label: str, spec: ColSpec, actual: Any, why: str = "") -> SchemaEnforcementError:
    msg = f"Column {label!r}: expected {spec.type.value}, got {actual}"
    return SchemaEnforcementError(msg + (f". {why}" if why else ""))


def _missing_ints_hint(label: str) -> str:
    return (
        f"Column {label!r} is float with NaN for missing values; integers with missing values are accepted as "
        "pandas' nullable Int64 (df[col].astype('Int64')), or declare the column as double in the signature"
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


def _nullable(target: np.dtype) -> str:
    """pandas' nullable dtype for an integer or boolean spec's missing values."""
    return "boolean" if target.kind == "b" else "Int32" if target.itemsize <= 4 else "Int64"


def _objects_as_numbers(values: pd.Series, spec: ColSpec, label: str) -> pd.Series:
    """An object column (Python numbers, booleans or Decimals, with None/NaN for missing) as a
    typed column: floats with NaN, or pandas' nullable Int64/boolean where values are missing."""
    target = spec.type.to_numpy()
    missing = values.isna().to_numpy()
    present = values[~missing]
    kinds = {type(v) for v in present}
    if not kinds:  # only missing values: they reach the model in a dtype that can hold them
        dtype = target if target.kind == "f" else _nullable(target)
        return pd.Series(pd.array([None] * len(values), dtype="Float64" if target.kind == "f" else dtype),
                         index=values.index, name=values.name).astype(dtype)
    if kinds <= {bool, np.bool_}:
        return pd.Series(pd.array(values.where(~values.isna(), None).tolist(), dtype="boolean"),
                         index=values.index, name=values.name)
    if kinds <= {decimal.Decimal}:
        return _decimals(values, present, spec, label)
    whole = all(issubclass(k, (int, np.integer)) and not issubclass(k, (bool, np.bool_)) for k in kinds)
    if whole and target.kind in "iu":  # exact, and nullable where values are missing
        try:
            ints = pd.array(values.where(~values.isna(), None).tolist(), dtype="Int64")
        except (TypeError, OverflowError) as e:
            raise _fail(label, spec, "integers beyond 64 bits", str(e)) from None
        return pd.Series(ints, index=values.index, name=values.name)
    inferred = values.infer_objects()
    if inferred.dtype == object:
        example = next(v for v in present if not isinstance(v, (int, float, np.number)))
        what = "non-boolean" if spec.type == DataType.boolean else "non-numeric"
        raise _fail(label, spec, f"object column holding {type(example).__name__} values (e.g. {example!r})",
                    f"The column holds {what} values")
    return inferred


def _decimals(values: pd.Series, present: pd.Series, spec: ColSpec, label: str) -> pd.Series:
    """Decimal values (Spark's DecimalType in pandas): doubles (rounded to the nearest double, as
    Spark's cast does), or integers when each one is whole."""
    target = spec.type.to_numpy()
    if target.kind == "f":
        return pd.Series(values.to_numpy(dtype=np.float64, na_value=np.nan), index=values.index, name=values.name)
    fractional = [d for d in present if d != d.to_integral_value()]
    if target.kind != "i" or fractional:
        raise _fail(label, spec, "decimals", f"e.g. {fractional[0]} is not a whole number" if fractional else "")
    ints = pd.array([None if pd.isna(d) else int(d) for d in values], dtype="Int64")
    return pd.Series(ints, index=values.index, name=values.name)


def _convert_numeric(values: pd.Series, spec: ColSpec, label: str) -> pd.Series:
    """Numbers and booleans converted losslessly; missing values reach the model as NaN (float
    specs) or pandas' nullable ``Int32``/``Int64``/``boolean`` with ``pd.NA``."""
    target = spec.type.to_numpy()
    if values.dtype == object:
        values = _objects_as_numbers(values, spec, label)
    src, has_na = _numpy_view(values)
    if spec.type == DataType.boolean:
        if src.kind != "b":
            raise _fail(label, spec, values.dtype)
        return values.astype("boolean") if has_na else values.astype(bool)
    if src.kind == "f" and target.kind in "iu":
        why = _missing_ints_hint(label) if values.isna().any() else "Floats never convert to integers implicitly"
        raise _fail(label, spec, values.dtype, why)
    if not lossless_numpy_cast(src, target):
        why = ""
        if src.kind in "iu" and target.kind == "f":
            why = f"{src} to {target} can lose precision; declare the column as {'double' if src.itemsize < 8 else 'long'} or convert it"
        raise _fail(label, spec, values.dtype, why)
    if has_na:
        if target.kind == "f":
            return pd.Series(values.to_numpy(dtype=target, na_value=np.nan), index=values.index, name=values.name)
        return values.astype(_nullable(target))
    return values.astype(target) if values.dtype != target else values


def _convert_datetime(values: pd.Series, spec: ColSpec, label: str) -> pd.Series:
    # Precision (datetime64[D] vs [ns]) is ignored for column specs, as the reference doc says.
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        # Normalized to nanoseconds, as MLflow does; tz-aware columns keep their zone.
        return values if isinstance(values.dtype, pd.DatetimeTZDtype) else values.astype("datetime64[ns]")
    if values.dtype == object or isinstance(values.dtype, pd.StringDtype):
        present = values[values.notna()]
        if all(isinstance(v, (_dt.datetime, _dt.date, np.datetime64)) for v in present):
            return pd.to_datetime(values)
        if all(isinstance(v, str) for v in present):
            return _parse_iso(values, present, spec, label)
    raise _fail(label, spec, values.dtype, "Pass datetime64 values, datetime objects or ISO 8601 strings")


def _parse_iso(values: pd.Series, present: pd.Series, spec: ColSpec, label: str) -> pd.Series:
    """ISO 8601 strings as datetimes (as MLflow 3 parses them); the first bad value is named."""
    try:
        return pd.to_datetime(values, format="ISO8601")
    except (ValueError, TypeError):
        for value in present:
            try:
                pd.to_datetime(value, format="ISO8601")
            except (ValueError, TypeError):
                raise _fail(label, spec, f"the string {value!r}", "It is not an ISO 8601 datetime") from None
        raise


def _convert_object(values: pd.Series, spec: ColSpec, label: str) -> pd.Series:
    kind = str if spec.type == DataType.string else (bytes, bytearray)
    if isinstance(values.dtype, pd.StringDtype) and spec.type == DataType.string:
        return values.astype(object).where(values.notna(), None)
    if isinstance(values.dtype, pd.CategoricalDtype):  # its values, as infer_signature saw them
        values = values.astype(object).where(values.notna(), None)
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
