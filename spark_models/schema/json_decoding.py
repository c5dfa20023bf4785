"""Undo what JSON does to typed columns, guided by the signature.

JSON has no bytes, no datetimes and one number type. The reference doc's rules: binary
columns arrive base64-encoded, datetime columns as ISO 8601 strings, and numbers are cast
to the declared type (JSON ``1`` for a ``double`` column is 1.0, not an int64 that
enforcement would refuse). Values that cannot be decoded raise an error naming the column.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import numpy as np
import pandas as pd

from spark_models.exceptions import SchemaEnforcementError
from spark_models.schema.data_type import DataType
from spark_models.schema.types import Schema

_FLOATS = {DataType.float, DataType.double}
_INTS = {DataType.integer, DataType.long}


def decode_json_columns(df: pd.DataFrame, schema: Schema | None, cast_numbers: bool = True) -> pd.DataFrame:
    """``df`` (parsed from JSON or CSV) with each signature column decoded to its declared type."""
    if schema is None or schema.is_tensor_spec() or not schema.has_input_names():
        return df
    decoded = {}
    for spec in schema.inputs:
        if spec.name not in df.columns:
            continue
        column = df[spec.name]
        if spec.type == DataType.binary:
            decoded[spec.name] = _base64_column(column, spec.name)
        elif spec.type == DataType.datetime:
            decoded[spec.name] = _datetime_column(column, spec.name)
        elif cast_numbers and (spec.type in _FLOATS or spec.type in _INTS) and column.dtype != spec.type.to_numpy():
            decoded[spec.name] = _number_column(column, spec.type)
    changed = {name: col for name, col in decoded.items() if col is not df[name]}
    return df.assign(**changed) if changed else df


def _base64_column(column: pd.Series, name: str) -> pd.Series:
    def decode(value: Any) -> Any:
        if not isinstance(value, str):
            return value
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise SchemaEnforcementError(
                f"Column {name!r}: binary values must be base64-encoded; {value[:40]!r} is not"
            ) from None

    return pd.Series([decode(v) for v in column], index=column.index, name=column.name, dtype=object)


def _datetime_column(column: pd.Series, name: str) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(column.dtype):
        return column
    try:
        return pd.to_datetime(column, format="ISO8601")
    except (ValueError, TypeError) as e:
        raise SchemaEnforcementError(f"Column {name!r}: expected ISO 8601 datetime strings ({e})") from None


_EXACT_IN_FLOAT = 2 ** 53  # every integer up to this magnitude is exact in a float64


def _number_column(column: pd.Series, target: DataType) -> pd.Series:
    """Numbers cast to the declared type when that loses nothing; integers with missing values
    become pandas' nullable Int32/Int64. Anything else is left for enforcement to explain."""
    if target in _INTS and column.dtype == object:
        present = column[column.notna()]
        if all(isinstance(v, int) and not isinstance(v, bool) for v in present):  # JSON integers, exactly
            return _checked_ints(pd.Series(pd.array(column.where(column.notna(), None).tolist(), dtype="Int64"),
                                           index=column.index, name=column.name), column, target)
    values = column.infer_objects() if column.dtype == object else column
    kind = values.dtype.kind
    if kind not in "iuf":
        return column
    if target in _FLOATS:
        return values.astype(target.to_numpy())
    missing = values.isna()
    if kind == "f":
        present = values[~missing]
        if not np.array_equal(present, np.floor(present)) or (np.abs(present) > _EXACT_IN_FLOAT).any():
            return column  # fractional, or too large to have been read exactly: enforcement explains
    if missing.any():
        return _checked_ints(values.astype("Int64"), column, target)
    return _checked_ints(values, column, target).astype(target.to_numpy())


def _checked_ints(values: pd.Series, original: pd.Series, target: DataType) -> pd.Series:
    """``values`` as the declared integer type (nullable when values are missing); out of range:
    the original column, for enforcement to explain."""
    info = np.iinfo(target.to_numpy())
    present = values.dropna()
    if len(present) and (present.min() < info.min or present.max() > info.max):
        return original
    if values.isna().any():
        return values.astype("Int32" if target == DataType.integer else "Int64")
    return values
