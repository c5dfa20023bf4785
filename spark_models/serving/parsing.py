"""Request bodies of ``POST /invocations`` → model input and params.

Accepted, as in the reference doc and MLflow 2+:

- ``application/json`` (or ``; format=pandas-split``): a split-oriented DataFrame
  ``{"columns": [...], "data": [[...]]}``, or a dict with exactly one of the keys
  ``dataframe_split``, ``dataframe_records``, ``instances``, ``inputs`` (plus optional ``params``);
- ``application/json; format=pandas-records``: a list of records;
- ``text/csv``: a CSV table with a header row.

Columns are decoded per the signature (base64 binary, ISO 8601 datetimes, JSON numbers cast
to the declared type). Every problem raises :class:`RequestError` with the HTTP status to send,
naming the column and row where it can: ``NaN``/``Infinity`` tokens (not JSON, though Python's
parser reads them), ``null`` or an empty CSV cell in an ``integer``/``long`` column, a record
without a key the signature requires, and JSON nested too deeply to parse.
"""

from __future__ import annotations

import io
import json
import sys
from typing import Any

import numpy as np
import pandas as pd

from spark_models.schema.json_decoding import decode_json_columns
from spark_models.schema.signature import ModelSignature
from spark_models.schema.data_type import DataType
from spark_models.types import Schema

CSV = "text/csv"
JSON = "application/json"
WRAPPER_KEYS = ("dataframe_split", "dataframe_records", "instances", "inputs")
_FORMATS = {"pandas-split": "split", "pandas-records": "records"}
_INTEGER_TYPES = (DataType.integer, DataType.long)
_ROWS_SHOWN = 5


class RequestError(Exception):
    """A request the server refuses, with its HTTP status and MLflow-style error code."""

    def __init__(self, message: str, status: int = 400, error_code: str = "BAD_REQUEST"):
        super().__init__(message)
        self.status = status
        self.error_code = error_code


def parse_request(body: bytes, content_type: str | None, signature: ModelSignature | None) -> tuple[Any, dict | None]:
    """(model input, params) from a request body and its Content-Type header."""
    mime, options = _content_type(content_type)
    inputs = signature.inputs if signature is not None else None
    text = _utf8(body)
    if mime == CSV:
        return _csv_frame(text, inputs), None
    if mime == JSON:
        return _json_input(text, options.get("format"), inputs)
    raise RequestError(
        f"Unsupported Content-Type {content_type!r}: use application/json, "
        "application/json; format=pandas-records or text/csv",
        status=415,
        error_code="UNSUPPORTED_MEDIA_TYPE",
    )


def _content_type(header: str | None) -> tuple[str, dict[str, str]]:
    if not header:
        raise RequestError("Missing Content-Type header", status=415, error_code="UNSUPPORTED_MEDIA_TYPE")
    mime, *parts = [p.strip() for p in header.split(";")]
    options = {k.strip().lower(): v.strip() for k, _, v in (p.partition("=") for p in parts if p)}
    charset = options.pop("charset", "utf-8").lower()
    if charset not in ("utf-8", "utf8"):
        raise RequestError(f"Unsupported charset {charset!r}; send UTF-8", status=415, error_code="UNSUPPORTED_MEDIA_TYPE")
    fmt = options.get("format")
    if fmt is not None and fmt not in _FORMATS:
        raise RequestError(f"Unknown format {fmt!r} in Content-Type; use pandas-split or pandas-records")
    return mime.lower(), options


def _utf8(body: bytes) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise RequestError(f"The request body is not valid UTF-8 ({e})") from None


def _csv_frame(text: str, inputs: Schema | None) -> pd.DataFrame:
    if not text.strip():
        raise RequestError("The CSV body is empty; send a header row and data rows")
    try:
        frame = _read_csv(text, inputs)
    except (pd.errors.ParserError, ValueError) as e:
        raise RequestError(f"Cannot parse the body as CSV: {e}") from None
    return _decode(frame, inputs)


def _read_csv(text: str, inputs: Schema | None) -> pd.DataFrame:
    """The CSV, with declared integer columns read as nullable Int64 (exact, empty cells as NA)."""
    ints = {}
    if inputs is not None and not inputs.is_tensor_spec() and inputs.has_input_names():
        ints = {spec.name: "Int64" for spec in inputs.inputs if spec.type in _INTEGER_TYPES}
    try:
        return pd.read_csv(io.StringIO(text), dtype=ints or None)
    except (TypeError, ValueError):  # a value that is not an integer: decoding and enforcement explain
        return pd.read_csv(io.StringIO(text))


def _json_input(text: str, fmt: str | None, inputs: Schema | None) -> tuple[Any, dict | None]:
    doc = _load_json(text)
    if fmt == "pandas-records":
        return _records_frame(doc, inputs), None
    if isinstance(doc, list):
        raise RequestError(
            "A JSON list is records-oriented: send Content-Type 'application/json; format=pandas-records', "
            "or wrap it as {\"dataframe_records\": [...]}"
        )
    if not isinstance(doc, dict):
        raise RequestError(f"Expected a JSON object, got {type(doc).__name__}")
    params = _params(doc)
    keys = [k for k in WRAPPER_KEYS if k in doc]
    if len(keys) > 1:
        raise RequestError(f"Send exactly one of {list(WRAPPER_KEYS)}; got {keys}")
    if not keys:
        if "columns" in doc or "data" in doc:
            return _split_frame(doc, inputs), params
        raise RequestError(
            f"Unrecognized JSON input with keys {sorted(doc)}: send a split-oriented DataFrame "
            f"({{\"columns\": [...], \"data\": [...]}}) or one of {list(WRAPPER_KEYS)}"
        )
    key = keys[0]
    if key == "dataframe_split":
        return _split_frame(doc[key], inputs), params
    if key == "dataframe_records":
        return _records_frame(doc[key], inputs), params
    return _tensor_input(doc[key], key, inputs), params


def _params(doc: dict[str, Any]) -> dict | None:
    params = doc.get("params")
    if params is not None and not isinstance(params, dict):
        raise RequestError(f"'params' must be a JSON object, got {type(params).__name__}")
    return params


def _split_frame(doc: Any, inputs: Schema | None) -> pd.DataFrame:
    if not isinstance(doc, dict) or "data" not in doc:
        raise RequestError("A split-oriented DataFrame needs 'data' (and usually 'columns')")
    data = doc["data"]
    if not isinstance(data, list):
        raise RequestError(f"'data' must be a list of rows, got {type(data).__name__}")
    try:
        frame = pd.DataFrame(data, columns=doc.get("columns"), dtype=object)  # integers stay exact
    except (ValueError, TypeError) as e:
        raise RequestError(f"Cannot build a DataFrame from 'columns' and 'data': {e}") from None
    return _decode(frame, inputs)


def _records_frame(doc: Any, inputs: Schema | None) -> pd.DataFrame:
    if not isinstance(doc, list) or not all(isinstance(r, dict) for r in doc):
        raise RequestError("Records-oriented input must be a JSON list of objects")
    frame = pd.DataFrame(doc, dtype=object) if doc else pd.DataFrame()  # integers stay exact
    _check_required_keys(doc, frame, inputs)
    return _decode(frame, inputs)


def _tensor_input(value: Any, key: str, inputs: Schema | None) -> Any:
    """TF-serving ``instances``/``inputs``: arrays for tensor signatures, a DataFrame for column ones."""
    records = isinstance(value, list) and bool(value) and all(isinstance(r, dict) for r in value)
    if inputs is not None and not inputs.is_tensor_spec():
        return _records_frame(value, inputs) if records else _columns_from_tensor_json(value, inputs)
    if key == "instances" and records:
        value = {k: [r.get(k) for r in value] for k in value[0]}
    dtypes = {spec.name: spec.type for spec in inputs.inputs} if inputs is not None else {}
    if isinstance(value, dict):
        return {k: _array(v, dtypes.get(k), k) for k, v in value.items()}
    only = next(iter(dtypes.values()), None) if len(dtypes) == 1 else None
    return _array(value, only, key)


def _columns_from_tensor_json(value: Any, inputs: Schema) -> pd.DataFrame:
    if isinstance(value, dict):
        lengths = {len(v) if isinstance(v, list) else 1 for v in value.values()}
        if len(lengths) > 1:
            raise RequestError(f"All inputs must have the same number of rows; got lengths {sorted(lengths)}")
        frame = pd.DataFrame({k: v if isinstance(v, list) else [v] for k, v in value.items()})
    elif isinstance(value, list):
        frame = pd.DataFrame(value)
        if not inputs.has_input_names() or frame.shape[1] != len(inputs.inputs):
            return _decode(frame, inputs)
        frame.columns = inputs.input_names()
    else:
        raise RequestError(f"Expected a list or an object of columns, got {type(value).__name__}")
    return _decode(frame, inputs)


def _array(value: Any, dtype: np.dtype | None, name: str) -> np.ndarray:
    try:
        return np.asarray(value, dtype=dtype)
    except (ValueError, TypeError, OverflowError) as e:
        raise RequestError(f"Input {name!r} cannot be read as an array of {dtype or 'numbers'}: {e}") from None


class _NonFinite:
    """Stands for a ``NaN``/``Infinity``/``-Infinity`` token while the body is parsed, to say where it was."""

    __slots__ = ("token",)

    def __init__(self, token: str):
        self.token = token


def _load_json(text: str) -> Any:
    """Strict JSON: refuses ``NaN`` and ±``Infinity`` (naming where they are) and too-deep nesting, with 400."""
    found: list[_NonFinite] = []

    def constant(token: str) -> _NonFinite:
        marker = _NonFinite(token)
        found.append(marker)
        return marker

    try:
        doc = json.loads(text, parse_constant=constant)
    except json.JSONDecodeError as e:
        raise RequestError(f"The body is not valid JSON: {e}") from None
    except RecursionError:
        raise RequestError(
            "The JSON body is nested too deeply to parse (arrays or objects inside each other more than "
            f"about {sys.getrecursionlimit()} levels); model input needs at most a few levels"
        ) from None
    if found:
        path = _path_to(doc, found[0])
        raise RequestError(
            f"The body contains {found[0].token} ({_describe(doc, path)}), which is not JSON (it has no NaN "
            "or infinity): send null for a missing value, or a finite number"
        )
    return doc


def _path_to(doc: Any, target: object) -> list[str | int]:
    """Keys and indexes from ``doc`` down to ``target`` (found by identity), without recursion."""
    stack: list[tuple[Any, list[str | int]]] = [(doc, [])]
    while stack:
        node, path = stack.pop()
        if node is target:
            return path
        if isinstance(node, dict):
            stack.extend((v, [*path, k]) for k, v in reversed(list(node.items())))
        elif isinstance(node, list):
            stack.extend((v, [*path, i]) for i, v in reversed(list(enumerate(node))))
    return []


def _describe(doc: Any, path: list[str | int]) -> str:
    """``column 'x', row 3 at $.data[3][0]``: the column and row where the common layouts tell them."""
    where = "at $" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)
    body, rest = doc, list(path)
    if isinstance(doc, dict) and rest and rest[0] in WRAPPER_KEYS:
        body = doc[rest.pop(0)]
    if isinstance(body, dict) and len(rest) >= 3 and rest[0] == "data" and isinstance(rest[1], int) \
            and isinstance(rest[2], int):
        columns = body.get("columns")
        column = columns[rest[2]] if isinstance(columns, list) and rest[2] < len(columns) else f"#{rest[2]}"
        return f"column {column!r}, row {rest[1]} {where}"
    if len(rest) >= 2 and isinstance(rest[0], int) and isinstance(rest[1], str):  # records
        return f"column {rest[1]!r}, row {rest[0]} {where}"
    if len(rest) >= 2 and isinstance(rest[0], str) and isinstance(rest[1], int):  # an object of columns
        return f"column {rest[0]!r}, row {rest[1]} {where}"
    if rest and isinstance(rest[0], int):
        return f"row {rest[0]} {where}"
    return where


def _decode(frame: pd.DataFrame, inputs: Schema | None) -> pd.DataFrame:
    """Signature decoding (missing values are kept: integers become nullable Int64), after
    refusing duplicate columns; columns the signature does not declare get their natural dtype."""
    if not frame.columns.is_unique:
        duplicated = sorted({str(c) for c in frame.columns[frame.columns.duplicated()]})
        raise RequestError(f"The input has duplicate column names {duplicated}; each column must appear once")
    return decode_json_columns(frame, inputs).infer_objects()


def _check_required_keys(records: list[dict], frame: pd.DataFrame, inputs: Schema | None) -> None:
    """A record that lacks a key the signature requires is refused, naming the key and the record."""
    if inputs is None or inputs.is_tensor_spec() or not inputs.has_input_names():
        return
    for name in inputs.required_input_names():
        if name in frame.columns and frame[name].isna().any():
            lacking = np.array([name not in r for r in records])
            if lacking.any():
                raise RequestError(f"Required key {name!r} is missing from {_rows(lacking, 'record')}")


def _rows(mask: np.ndarray, what: str = "row") -> str:
    """``row 3`` / ``rows 0, 4 and 7 more``: rows (counted from 0) where ``mask`` is set."""
    rows = np.flatnonzero(mask)
    shown = ", ".join(str(r) for r in rows[:_ROWS_SHOWN])
    more = f" and {len(rows) - _ROWS_SHOWN} more" if len(rows) > _ROWS_SHOWN else ""
    return f"{what}{'s' if len(rows) > 1 else ''} {shown}{more} (counting from 0)"
