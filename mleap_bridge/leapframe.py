"""MLeap's LeapFrame JSON (``{"schema": {"fields": [...]}, "rows": [[...]]}``) ⇄ pandas."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from spark_models.exceptions import MalformedModelError

_BASIC = {"double": "float64", "float": "float32", "long": "int64", "integer": "int32", "int": "int32",
          "short": "int16", "byte": "int8", "boolean": "bool", "string": "object"}


def _field_type(field: dict[str, Any]) -> Any:
    t = field.get("type")
    return t.get("type", "tensor") if isinstance(t, dict) else t


def read_leapframe(source: str | Path | dict) -> pd.DataFrame:
    """A LeapFrame (path, JSON text or parsed dict) as a DataFrame; tensors become arrays."""
    data = source if isinstance(source, dict) else json.loads(Path(source).read_text() if Path(str(source)).exists() else source)
    try:
        fields = data["schema"]["fields"]
        rows = data["rows"]
    except (KeyError, TypeError):
        raise MalformedModelError("A LeapFrame needs 'schema.fields' and 'rows'") from None
    columns = {}
    for i, field in enumerate(fields):
        values = [row[i] for row in rows]
        kind = _field_type(field)
        if kind == "tensor":
            columns[field["name"]] = pd.Series([None if v is None else np.asarray(_tensor_values(v), dtype=np.float64)
                                                for v in values], dtype=object)
        elif kind in _BASIC and kind != "string" and not any(v is None for v in values):
            columns[field["name"]] = pd.Series(values, dtype=_BASIC[kind])
        else:
            columns[field["name"]] = pd.Series(values, dtype="float64" if kind in ("double", "float") else object)
    return pd.DataFrame(columns)


def _tensor_values(value: Any) -> Any:
    return value.get("values", value) if isinstance(value, dict) else value


def write_leapframe(df: pd.DataFrame, path: str | Path | None = None) -> dict[str, Any]:
    """The LeapFrame dict of ``df`` (written to ``path`` when given)."""
    fields, columns = [], []
    for name in df.columns:
        s = df[name]
        first = next((v for v in s if v is not None), None)
        if isinstance(first, (np.ndarray, list)):
            size = len(first)
            fields.append({"name": str(name), "type": {"type": "tensor", "base": "double", "dimensions": [size]}})
            columns.append([None if v is None else {"values": np.asarray(v, dtype=float).tolist(), "dimensions": [size]} for v in s])
        else:
            kind = {"f": "double", "i": "long", "u": "long", "b": "boolean"}.get(s.dtype.kind, "string")
            fields.append({"name": str(name), "type": kind})
            columns.append([None if (v is None or (isinstance(v, float) and np.isnan(v))) else
                            (v.item() if hasattr(v, "item") else v) for v in s])
    frame = {"schema": {"fields": fields}, "rows": [list(r) for r in zip(*columns)] if columns else []}
    if path is not None:
        Path(path).write_text(json.dumps(frame))
    return frame
