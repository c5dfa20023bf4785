"""MLeap's LeapFrame JSON (``{"schema": {"fields": [...]}, "rows": [[...]]}``) ⇄ pandas.

Field types are written by MLeap as:

- a basic type name — ``"double"``, ``"float"``, ``"long"``, ``"integer"``, ``"short"``,
  ``"byte"``, ``"boolean"``, ``"string"``, ``"byte_string"`` (base64) — for nullable fields;
- ``{"type": "basic", "base": "double", "isNullable": false}`` for non-nullable ones;
- ``{"type": "tensor", "base": "double", "dimensions": [n]}`` (values ``{"values", "dimensions"}``,
  sparse ones also ``"indices"``), ``{"type": "list", "base": …}``, ``{"type": "map", "key", "base"}``;
  each may carry ``"isNullable": false``.

Reading gives typed columns (float64 with NaN for null doubles; numpy ints/bools, or pandas'
nullable ``Int64``/``boolean`` when a column has nulls; 1-D arrays for tensors). The field
types are kept in ``df.attrs["leapframe_fields"]`` so writing the frame back keeps them.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from spark_models.exceptions import MalformedModelError

_NUMPY = {"double": "float64", "float": "float32", "long": "int64", "integer": "int32", "int": "int32",
          "short": "int16", "byte": "int8", "boolean": "bool"}
_WITH_NULLS = {"int64": "Int64", "int32": "Int32", "int16": "Int16", "int8": "Int8", "bool": "boolean"}
_BY_DTYPE = {"float64": "double", "float32": "float", "int64": "long", "int32": "integer", "int16": "short",
             "int8": "byte", "bool": "boolean", "Int64": "long", "Int32": "integer", "Int16": "short", "Int8": "byte",
             "boolean": "boolean"}
FIELDS_ATTR = "leapframe_fields"


def _parse_type(name: str, spec: Any) -> tuple[str, str, bool]:
    """(kind, base, nullable) of a field type: kind is basic, tensor, list or map."""
    if isinstance(spec, str):
        return "basic", spec, True
    if isinstance(spec, dict) and spec.get("type", "tensor") in ("basic", "tensor", "list", "map"):
        return spec.get("type", "tensor"), spec.get("base", "double"), bool(spec.get("isNullable", True))
    raise MalformedModelError(f"LeapFrame field {name!r}: unknown type {spec!r}")


def _tensor(value: Any, base: str) -> np.ndarray:
    if not isinstance(value, dict):
        return np.asarray(value, dtype=_NUMPY.get(base, object))
    values = np.asarray(value.get("values", []), dtype=_NUMPY.get(base, object))
    if "indices" not in value:
        return values
    dense = np.zeros([int(d) for d in value.get("dimensions", [])], dtype=values.dtype)
    for index, v in zip(value["indices"], values):  # sparse: one index list per value
        dense[tuple(index)] = v
    return dense


def _column(name: str, spec: Any, values: list[Any]) -> pd.Series:
    kind, base, _ = _parse_type(name, spec)
    if kind == "tensor":
        return pd.Series([None if v is None else _tensor(v, base) for v in values], dtype=object)
    if kind != "basic" or base == "string":
        return pd.Series(values, dtype=object)
    if base == "byte_string":
        return pd.Series([None if v is None else base64.b64decode(v) for v in values], dtype=object)
    if base not in _NUMPY:
        raise MalformedModelError(f"LeapFrame field {name!r}: unknown basic type {base!r}")
    dtype = _NUMPY[base]
    if dtype.startswith("float"):
        return pd.Series([np.nan if v is None else v for v in values], dtype=dtype)
    return pd.Series(values, dtype=_WITH_NULLS[dtype] if any(v is None for v in values) else dtype)


def read_leapframe(source: str | Path | dict) -> pd.DataFrame:
    """A LeapFrame (path, JSON text or parsed dict) as a DataFrame; tensors become arrays."""
    data = source if isinstance(source, dict) else json.loads(Path(source).read_text() if Path(str(source)).exists() else source)
    try:
        fields = data["schema"]["fields"]
        rows = data["rows"]
    except (KeyError, TypeError):
        raise MalformedModelError("A LeapFrame needs 'schema.fields' and 'rows'") from None
    for i, row in enumerate(rows):
        if len(row) != len(fields):
            raise MalformedModelError(f"LeapFrame row {i} has {len(row)} values for {len(fields)} fields")
    df = pd.DataFrame({f["name"]: _column(f["name"], f["type"], [row[i] for row in rows]) for i, f in enumerate(fields)})
    df.attrs[FIELDS_ATTR] = {f["name"]: f["type"] for f in fields}
    return df


def _inferred_type(s: pd.Series) -> tuple[Any, str]:
    """The field type of a column and how to write its values: scalar, tensor, list or bytes."""
    first = next((v for v in s if v is not None and not (isinstance(v, float) and np.isnan(v))), None)
    if isinstance(first, (np.ndarray, list, tuple)) and (len(first) == 0 or not isinstance(first[0], str)):
        return {"type": "tensor", "base": "double", "dimensions": [len(first)]}, "tensor"
    if isinstance(first, (list, tuple, np.ndarray)):
        return {"type": "list", "base": "string"}, "list"
    if isinstance(first, bytes):
        return "byte_string", "bytes"
    return _BY_DTYPE.get(str(s.dtype), "string"), "scalar"


def _json_value(v: Any, how: str) -> Any:
    if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA:
        return None
    if how == "tensor":
        values = np.asarray(v, dtype=float)
        return {"values": values.tolist(), "dimensions": list(values.shape)}
    if how == "list":
        return [str(x) for x in v]
    if how == "bytes":
        return base64.b64encode(v).decode("ascii")
    return v.item() if hasattr(v, "item") else v


def _declared(declared: Any, inferred: Any, has_nulls: bool) -> Any:
    """The frame's declared type when it agrees with the data (nullable again if nulls appeared)."""
    if declared is None:
        return inferred
    d_kind, d_base, d_nullable = _parse_type("?", declared)
    i_kind, i_base, _ = _parse_type("?", inferred)
    if (d_kind, d_base) != (i_kind, i_base):
        return inferred
    if has_nulls and not d_nullable:
        return d_base if d_kind == "basic" else {k: v for k, v in declared.items() if k != "isNullable"}
    return declared


def write_leapframe(df: pd.DataFrame, path: str | Path | None = None) -> dict[str, Any]:
    """The LeapFrame dict of ``df`` (written to ``path`` when given)."""
    declared_types = df.attrs.get(FIELDS_ATTR, {})
    fields, columns = [], []
    for name in df.columns:
        inferred, how = _inferred_type(df[name])
        values = [_json_value(v, how) for v in df[name]]
        field_type = _declared(declared_types.get(str(name)), inferred, any(v is None for v in values))
        fields.append({"name": str(name), "type": field_type})
        columns.append(values)
    frame = {"schema": {"fields": fields}, "rows": [list(r) for r in zip(*columns)] if columns else []}
    if path is not None:
        Path(path).write_text(json.dumps(frame, allow_nan=False))
    return frame
