"""Predictions → the JSON body MLflow 2+ clients expect: ``{"predictions": ...}``.

DataFrames become a list of records, Series and arrays a list, dicts of arrays a dict of
lists. NaN, infinities and None become ``null``, bytes base64, datetimes ISO 8601.
"""

from __future__ import annotations

import base64
import datetime as _dt
import json
from typing import Any

import numpy as np
import pandas as pd


def predictions_json(predictions: Any) -> bytes:
    """The response body for ``predictions``."""
    return b'{"predictions": ' + _encode(predictions) + b"}"


def error_json(message: str, error_code: str) -> bytes:
    """MLflow's error body: ``{"error_code": ..., "message": ...}``."""
    return json.dumps({"error_code": error_code, "message": message}).encode()


def _encode(value: Any) -> bytes:
    if isinstance(value, pd.DataFrame):
        return _frame_records(value)
    if isinstance(value, pd.Series):
        return _frame_records(value.to_frame("v"), column_only="v")
    if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
        return _frame_records(pd.DataFrame({"v": list(value) if value.ndim > 1 else value}), column_only="v")
    return json.dumps(_plain(value), allow_nan=False).encode()


def _frame_records(frame: pd.DataFrame, column_only: str | None = None) -> bytes:
    """pandas' C JSON writer when every column is plain (15 decimals, its most); Python otherwise."""
    plain = all(dtype.kind in "biufM" or dtype == object and _strings_or_null(frame[c]) for c, dtype in frame.dtypes.items())
    if plain and frame.columns.is_unique:
        if column_only is not None:
            return frame[column_only].to_json(orient="values", date_format="iso", double_precision=15).encode()
        return frame.to_json(orient="records", date_format="iso", double_precision=15).encode()
    if column_only is not None:
        return json.dumps([_plain(v) for v in frame[column_only]], allow_nan=False).encode()
    rows = [{str(k): _plain(v) for k, v in row.items()} for row in frame.to_dict(orient="records")]
    return json.dumps(rows, allow_nan=False).encode()


def _strings_or_null(column: pd.Series) -> bool:
    return bool(column.map(lambda v: v is None or isinstance(v, str)).all())


def _plain(value: Any) -> Any:
    """A JSON-ready copy of ``value``."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (pd.DataFrame, pd.Series, np.ndarray)):
        return json.loads(_encode(value))
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, (pd.Timestamp, _dt.datetime, _dt.date, np.datetime64)):
        return None if pd.isna(value) else pd.Timestamp(value).isoformat()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None  # JSON has no NaN or infinity; pandas' writer also emits null
    if value is pd.NA or value is pd.NaT:
        return None
    return value
