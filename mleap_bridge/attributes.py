"""Bundle.ML attribute values (JSON format) ⇄ Python values.

Scalars are ``{"double": 1.5}``; lists ``{"type": "list", "double": [...]}``; tensors
``{"type": "tensor", "double": [flat row-major values], "shape": {"dimensions": [...]}}``.
MLeap's writer omits a scalar's field when it holds the default (0, false, ""), so an empty
object decodes to the default of the kind the op expects (see :func:`get`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from spark_models.exceptions import MalformedModelError

SCALAR_KINDS = ("boolean", "int", "long", "float", "double", "string", "byte_string", "data_shape", "basic_type")
_DEFAULTS = {"boolean": False, "int": 0, "long": 0, "float": 0.0, "double": 0.0, "string": ""}
_NUMPY = {"double": np.float64, "float": np.float32, "long": np.int64, "int": np.int32, "boolean": np.bool_}


def decode(value: dict[str, Any]) -> Any:
    """The Python value of one attribute (tensors become numpy arrays)."""
    kind = value.get("type")
    if kind == "tensor":
        base = next((k for k in _NUMPY if k in value), "double")
        dims = [d.get("size", 0) for d in value.get("shape", {}).get("dimensions", [])]
        flat = np.asarray(value.get(base, []), dtype=_NUMPY[base])
        return flat.reshape(dims) if dims and int(np.prod(dims)) == flat.size else flat
    if kind == "list":
        base = next((k for k in value if k != "type"), None)
        return list(value[base]) if base else []
    for k in SCALAR_KINDS:
        if k in value:
            return value[k]
    return None  # a default-valued scalar; get() supplies the default of the expected kind


UNSET = object()


def get(attributes: dict[str, Any], name: str, kind: str, default: Any = UNSET, node: str = "?") -> Any:
    """Attribute ``name`` of the expected ``kind`` ('double', 'list', 'tensor' …).

    A missing attribute gives ``default``, else the kind's default (0, False, "")."""
    if name not in attributes:
        return _DEFAULTS.get(kind) if default is UNSET else default
    value = decode(attributes[name])
    if value is None:
        if kind not in _DEFAULTS:
            raise MalformedModelError(f"node {node!r}: attribute {name!r} has no value")
        return _DEFAULTS[kind]
    return value


def scalar(kind: str, value: Any) -> dict[str, Any]:
    return {kind: value}


def listed(kind: str, values: Any) -> dict[str, Any]:
    return {"type": "list", kind: [v.item() if hasattr(v, "item") else v for v in values]}


def tensor(values: Any, kind: str = "double") -> dict[str, Any]:
    array = np.asarray(values, dtype=_NUMPY[kind])
    return {
        "type": "tensor",
        kind: array.ravel().tolist(),
        "shape": {"dimensions": [{"size": int(n), "name": ""} for n in array.shape]},
    }
