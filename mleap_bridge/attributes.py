"""Bundle.ML attribute values (JSON format) ⇄ Python values.

Scalars are ``{"double": 1.5}``; lists ``{"type": "list", "double": [...]}``; tensors
``{"type": "tensor", "double": [flat values], "shape": {"dimensions": [...]}}``.
MLeap's writer omits a scalar's field when it holds the default (0, false, ""), so an empty
object decodes to the default of the kind the op expects (see :func:`get`).

Non-finite doubles: MLeap's JSON library writes NaN and ±infinity as ``null`` and reads
``null`` back as NaN, so a ``null`` double is NaN here too (ops that know better, like the
bucketizer's outer splits, restore infinities themselves). The encoders below write
``null`` the same way, so bundles stay strict JSON.

Matrices (logistic regression, naive Bayes, PCA) are stored as MLeap's JVM serializers
store Spark's ``Matrix``: ``Matrix.toArray`` — column-major — with dimensions
``[rows, cols]``; :func:`matrix` and :func:`matrix_tensor` read and write that layout.

Declared tensor dimensions must match the number of values and stay within
``SPARK_MODELS_MAX_VECTOR_SIZE`` (:mod:`spark_models.limits`); anything else is an error
naming the node and the attribute.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from spark_models.exceptions import MalformedModelError

from mleap_bridge.safety import check_width

SCALAR_KINDS = ("boolean", "int", "long", "float", "double", "string", "byte_string", "data_shape", "basic_type")
_DEFAULTS = {"boolean": False, "int": 0, "long": 0, "float": 0.0, "double": 0.0, "string": ""}
_NUMPY = {"double": np.float64, "float": np.float32, "long": np.int64, "int": np.int32, "boolean": np.bool_}
_FLOATING = ("double", "float")


def _nan_for_null(values: list[Any]) -> list[Any]:
    return [math.nan if v is None else v for v in values]


def _dims(value: dict[str, Any], name: str, node: str) -> list[int]:
    """A tensor's declared dimensions, each a whole number within the vector-size limit."""
    shape = value.get("shape") or {}
    raw = shape.get("dimensions", []) if isinstance(shape, dict) else None
    if not isinstance(raw, list) or not all(isinstance(d, dict) for d in raw):
        raise MalformedModelError(f"node {node!r}: tensor attribute {name!r} has a malformed shape {shape!r}")
    return [check_width(node, f"{name} (dimension {i})", d.get("size", 0)) for i, d in enumerate(raw)]


def _flat(value: dict[str, Any], base: str, name: str, node: str) -> np.ndarray:
    raw = value.get(base) or []
    if not isinstance(raw, list):
        raise MalformedModelError(f"node {node!r}: tensor attribute {name!r} holds {type(raw).__name__}, not a list")
    try:
        return np.asarray(_nan_for_null(raw) if base in _FLOATING else raw, dtype=_NUMPY[base])
    except (TypeError, ValueError) as e:
        raise MalformedModelError(f"node {node!r}: tensor attribute {name!r} holds non-{base} values ({e})") from None


def decode(value: dict[str, Any], name: str = "?", node: str = "?") -> Any:
    """The Python value of one attribute (tensors become numpy arrays; null doubles NaN).

    A tensor whose declared dimensions do not match its number of values is an error
    naming ``node`` and the attribute ``name``."""
    if not isinstance(value, dict):
        raise MalformedModelError(f"node {node!r}: attribute {name!r} is {value!r}, not a JSON object")
    kind = value.get("type")
    if kind == "tensor":
        base = next((k for k in _NUMPY if k in value), "double")
        flat, dims = _flat(value, base, name, node), _dims(value, name, node)
        if dims and math.prod(dims) != flat.size:
            raise MalformedModelError(f"node {node!r}: tensor attribute {name!r} has {flat.size} values but "
                                      f"dimensions {dims}")
        return flat.reshape(dims) if dims else flat
    if kind == "list":
        base = next((k for k in value if k != "type"), None)
        if base is None:
            return []
        if not isinstance(value[base], list):
            raise MalformedModelError(f"node {node!r}: list attribute {name!r} holds {value[base]!r}, not a list")
        return _nan_for_null(value[base]) if base in _FLOATING else list(value[base])
    for k in SCALAR_KINDS:
        if k in value:
            return math.nan if value[k] is None and k in _FLOATING else value[k]
    return None  # a default-valued scalar; get() supplies the default of the expected kind


UNSET = object()


def get(attributes: dict[str, Any], name: str, kind: str, default: Any = UNSET, node: str = "?") -> Any:
    """Attribute ``name`` of the expected ``kind`` ('double', 'list', 'tensor' …).

    A missing attribute gives ``default``, else the kind's default (0, False, "")."""
    if name not in attributes:
        return _DEFAULTS.get(kind) if default is UNSET else default
    value = decode(attributes[name], name, node)
    if value is None:
        if kind not in _DEFAULTS:
            raise MalformedModelError(f"node {node!r}: attribute {name!r} has no value")
        return _DEFAULTS[kind]
    return value


def _json_number(kind: str, value: Any) -> Any:
    """A JSON-safe number: NaN and ±infinity become ``null``, as MLeap writes them."""
    value = value.item() if hasattr(value, "item") else value
    if kind in _FLOATING:
        value = float(value)
        return value if math.isfinite(value) else None
    return value


def scalar(kind: str, value: Any) -> dict[str, Any]:
    return {kind: _json_number(kind, value)}


def listed(kind: str, values: Any) -> dict[str, Any]:
    return {"type": "list", kind: [_json_number(kind, v) for v in values]}


def _tensor_json(flat: np.ndarray, shape: tuple[int, ...], kind: str) -> dict[str, Any]:
    values = flat.tolist()
    if kind in _FLOATING and not np.isfinite(flat).all():
        values = [v if math.isfinite(v) else None for v in values]
    return {"type": "tensor", kind: values,
            "shape": {"dimensions": [{"size": int(n), "name": ""} for n in shape]}}


def tensor(values: Any, kind: str = "double") -> dict[str, Any]:
    """A tensor attribute: row-major values (vectors, or matrices our own ops define)."""
    array = np.asarray(values, dtype=_NUMPY[kind])
    return _tensor_json(array.ravel(), array.shape, kind)


def matrix_tensor(m: Any) -> dict[str, Any]:
    """A Spark matrix as MLeap stores it: column-major values, dimensions ``[rows, cols]``."""
    array = np.atleast_2d(np.asarray(m, dtype=np.float64))
    return _tensor_json(array.ravel(order="F"), array.shape, "double")


def matrix(value: dict[str, Any], name: str = "?", node: str = "?") -> np.ndarray:
    """The ``[rows, cols]`` matrix of a tensor attribute in MLeap's column-major layout."""
    flat = np.ravel(decode(value, name, node)).astype(np.float64)
    dims = _dims(value, name, node)
    if len(dims) == 1:
        dims = [1, dims[0]]
    if len(dims) != 2 or dims[0] * dims[1] != flat.size:
        raise MalformedModelError(f"node {node!r}: matrix attribute {name!r} has {flat.size} values "
                                  f"but dimensions {dims}")
    return flat.reshape(dims, order="F")
