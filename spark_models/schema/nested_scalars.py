"""Scalars inside nested values (array items, object properties, map values), for
:mod:`spark_models.schema.nested_values`: numbers convert losslessly judged by value, whatever
holds them; booleans are only booleans; strings, bytes and datetimes follow the column rules.
Also where a value sits (:class:`Where`, for errors naming row and path).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from spark_models.exceptions import SchemaEnforcementError
from spark_models.schema.columns import convert_column
from spark_models.schema.data_type import DataType
from spark_models.schema.type_table import lossless_numpy_cast
from spark_models.schema.types import ColSpec

_INT_RANGE = {DataType.integer: (-(2**31), 2**31 - 1), DataType.long: (-(2**63), 2**63 - 1)}
_FLOATS = (DataType.float, DataType.double)
_EXACT_DOUBLE = 2**53  # every integer up to this magnitude is exactly a double
_NO_FLOAT = "a 32-bit float cannot hold it exactly; declare double"
# numpy kinds each type takes (values then checked one by one), and how Python values count
_KINDS = {DataType.integer: "iu", DataType.long: "iu", DataType.float: "f", DataType.double: "iuf",
          DataType.boolean: "b", DataType.datetime: "M"}
_PYTHON_KINDS = (("b", (bool, np.bool_)), ("i", (int, np.integer)), ("f", (float, np.floating)))
_INFERRED = {"integer": ("i", np.int64), "floating": ("f", np.float64), "empty": ("f", np.float64), "boolean": ("b", bool)}



def is_missing(value: Any) -> bool:
    """None, NaN, pd.NA or NaT (never true for containers)."""
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    if isinstance(value, (float, np.floating)):
        return bool(value != value)
    return isinstance(value, np.datetime64) and bool(np.isnat(value))


class Where:
    """Where the values of one nesting level sit. Rows and paths are worked out only for an error."""

    def __init__(self, label: str, parent: Where | None = None, owner: Callable[[int], int] = int,
                 step: Callable[[int], str | None] = lambda i: None):
        self.label, self.parent, self.owner, self.step = label, parent, owner, step

    def child(self, owner: Callable[[int], int], step: Callable[[int], str | None] = lambda i: None) -> Where:
        return Where(self.label, self, owner, step)

    def flat_child(self, owners: Sequence[int], offsets: np.ndarray, step: Callable[[int, int], str]) -> Where:
        """Values flattened out of ``owners``: value ``i`` is in ``owners[k]`` for ``offsets[k] <= i <
        offsets[k + 1]``, named by ``step(i, i - offsets[k])``."""
        def at(i: int) -> int:
            return int(np.searchsorted(offsets, i, side="right")) - 1

        return self.child(lambda i: owners[at(i)], lambda i: step(i, i - int(offsets[at(i)])))

    def locate(self, i: int) -> tuple[int, list[str]]:
        if self.parent is None:
            return i, []
        row, path = self.parent.locate(self.owner(i))
        step = self.step(i)
        return row, (path + [step]) if step else path

    def error(self, i: int, message: str) -> SchemaEnforcementError:
        row, path = self.locate(i)
        return SchemaEnforcementError(", ".join([f"Column {self.label!r}", f"row {row}", *path]) + f": {message}")


def shown(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 80 else text[:77] + '...'}"


def scatter(out: list, positions: Sequence[int], values: Sequence[Any]) -> list:
    """``out`` with ``values`` written at ``positions``."""
    for i, value in zip(positions, values):
        out[i] = value
    return out


def object_array(values: list) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):
        out[i] = v
    return out


def kind_problem(kind: str, item: DataType) -> str | None:
    """Why values of numpy kind ``kind`` never fill ``item`` (None: they may, value by value)."""
    if kind in _KINDS.get(item, ""):
        return None
    if kind == "f" and item in _INT_RANGE:
        return "floats never convert to integers"
    return "integers never become 32-bit floats; declare double" if kind in "iu" and item == DataType.float else ""


def _bad_values(flat: np.ndarray, item: DataType) -> tuple[np.ndarray | None, str]:
    """Which numbers (of a kind ``item`` takes) it cannot hold exactly, and why (None: all fit)."""
    if item == DataType.datetime or lossless_numpy_cast(flat.dtype, item.to_numpy()):
        return None, ""
    if item in _INT_RANGE:
        low, high = _INT_RANGE[item]
        return (flat < low) | (flat > high), f"it does not fit in {item.value}"
    if flat.dtype.kind in "iu":  # integers as doubles
        return (flat < -_EXACT_DOUBLE) | (flat > _EXACT_DOUBLE), "beyond 2**53 not every integer is a double; declare long"
    with np.errstate(over="ignore"):  # float64 as float
        return (flat.astype(np.float32).astype(np.float64) != flat) & ~np.isnan(flat), _NO_FLOAT


def typed_items(flat: np.ndarray, item: DataType, where: Where | None) -> np.ndarray | None:
    """Numbers of a kind ``item`` takes as ``item``: by dtype when every value of it fits, else
    value by value (``where`` None: None instead of an error when one does not fit)."""
    bad, why = _bad_values(flat, item)
    if bad is not None and bad.any():
        if where is None:
            return None
        i = int(np.argmax(bad))
        raise where.error(i, f"expected {item.value}, got {flat.dtype} {flat[i].item()!r} ({why})")
    return flat.astype(np.dtype("datetime64[ns]") if item == DataType.datetime else item.to_numpy(), copy=False)


def _scalar_problem(value: Any, item: DataType) -> str | None:
    """None when one Python value fills ``item``; else a hint (maybe empty) for the error."""
    if is_missing(value):
        return None
    if item in _KINDS and item != DataType.datetime:
        kind = next((k for k, types in _PYTHON_KINDS if isinstance(value, types)), "O")
        why = kind_problem(kind, item)
        if why is not None or kind == "b":
            return why
        try:
            bad, why = _bad_values(np.array([value], dtype=np.int64 if kind == "i" else np.float64), item)
        except OverflowError:
            return f"it does not fit in {item.value}"
        return why if bad is not None and bad[0] else None
    try:  # string, binary, datetime: the column rules (datetime also takes ISO 8601 strings)
        convert_column(pd.Series([value], dtype=object), ColSpec(item), "item")
        return None
    except (SchemaEnforcementError, TypeError, ValueError):
        return "not an ISO 8601 datetime" if item == DataType.datetime and isinstance(value, str) else ""


def _fast_scalars(series: pd.Series, item: DataType) -> np.ndarray | None:
    """Python values (an object Series) as an array of ``item`` in vectorized steps; None when
    they are not all plainly of one kind that fits (the caller then checks them one by one)."""
    missing = series.isna().to_numpy()
    has_missing = bool(missing.any())
    present = series[~missing] if has_missing else series
    if item not in _KINDS or item == DataType.datetime:  # string, binary, datetime: the column rules
        try:
            return convert_column(series, ColSpec(item), "items").to_numpy()
        except (SchemaEnforcementError, TypeError, ValueError):
            return None
    kind, dtype = _INFERRED.get(pd.api.types.infer_dtype(present, skipna=False), ("O", None))
    if dtype is None or kind_problem(kind, item) is not None:
        return None
    try:
        array = typed_items(present.to_numpy(dtype=dtype), item, None)
    except (OverflowError, TypeError, ValueError):
        return None
    if array is None or not has_missing:
        return array
    out = np.full(len(missing), np.nan if array.dtype.kind == "f" else None, dtype=array.dtype if array.dtype.kind == "f" else object)
    out[~missing] = array
    return out


def _slow_scalars(values: Sequence[Any], item: DataType) -> np.ndarray:
    """Values that each fill ``item`` (checked) but not in one vectorized step."""
    if item in _FLOATS:
        return np.array([np.nan if is_missing(v) else float(v) for v in values], dtype=item.to_numpy())
    if item == DataType.datetime:
        return object_array([pd.NaT if is_missing(v) else pd.Timestamp(v) for v in values])
    if item in _INT_RANGE or item == DataType.boolean:
        return object_array([None if is_missing(v) else bool(v) if item == DataType.boolean else int(v) for v in values])
    return object_array([None if is_missing(v) else v for v in values])


def item_array(values: Sequence[Any], item: DataType, where: Where) -> np.ndarray:
    """Python values of one level (array items, or present property/map values) as one array."""
    if len(values) == 0:
        return np.empty(0, dtype=item.to_numpy())
    fast = _fast_scalars(pd.Series(values, dtype=object), item)
    if fast is not None:
        return fast
    for i, value in enumerate(values):
        problem = _scalar_problem(value, item)
        if problem is not None:
            raise where.error(i, f"expected {item.value}, got {shown(value)}" + (f" ({problem})" if problem else ""))
    return _slow_scalars(values, item)


def python_list(array: np.ndarray) -> list:
    return list(pd.Series(array)) if array.dtype.kind == "M" else array.tolist()


def held_scalars(values: list, item: DataType, where: Where) -> list:
    """Property or map values of a scalar type: missing ones are kept, the others converted."""
    present = [i for i, v in enumerate(values) if not is_missing(v)]
    if len(present) == len(values):
        return python_list(item_array(values, item, where))
    converted = item_array([values[i] for i in present], item, where.child(lambda i: present[i]))
    return scatter(list(values), present, python_list(converted))
