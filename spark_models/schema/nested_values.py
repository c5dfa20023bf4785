"""Signature enforcement of MLflow 3's nested column types (``Array``, ``Object``, ``Map``,
``AnyType``, ``SparkMLVector``), called by :func:`spark_models.schema.columns.convert_column`.

Containers: an array is a list, tuple or numpy array (PySpark's form); an object a dict or a
pyspark ``Row``, with every required property and none the signature lacks; a map a dict with
string keys (PySpark's form); a Spark ML vector a ``DenseVector``/``SparseVector``, the record
PySpark hands for a vector column, or an array of numbers.

Numbers convert losslessly, judged by value whatever holds them (PySpark hands one Spark array
column as typed numpy arrays, or as object arrays of Python numbers when the batch has nulls,
so a rule by dtype would accept one batch and refuse the next): integers fill ``integer`` and
``long`` when in range and ``double`` up to 2**53; floats fill ``double``, and ``float`` when
exact; never float → integer nor integer → ``float``; booleans are only booleans. Numpy arrays
take one ``np.concatenate`` and a vectorized check. Strings, bytes and datetimes (also ISO 8601
strings) follow the column rules.

Missing values (None, NaN, ``pd.NA``, ``NaT``) are accepted at every level: ``required`` is
about a property being present, not about its value. Missing cells, objects and maps become
None, float items NaN, datetime items NaT; other missing values stay. Errors name the column,
the row (position in the batch) and the path inside the value.
"""

from __future__ import annotations

from itertools import chain
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from spark_models.exceptions import SchemaEnforcementError
from spark_models.schema.columns import convert_column
from spark_models.schema.data_type import DataType
from spark_models.schema.type_table import lossless_numpy_cast
from spark_models.schema.nested import AnyType, Array, Map, NestedType, Object, SparkMLVector, type_name
from spark_models.schema.types import ColSpec

_INT_RANGE = {DataType.integer: (-(2**31), 2**31 - 1), DataType.long: (-(2**63), 2**63 - 1)}
_FLOATS = (DataType.float, DataType.double)
_EXACT_DOUBLE = 2**53  # every integer up to this magnitude is exactly a double
_VECTOR_FIELDS = ("type", "size", "indices", "values")
Type = DataType | NestedType
_NO_FLOAT = "a 32-bit float cannot hold it exactly; declare double"
# numpy kinds each type takes (values then checked one by one), and how Python values count
_KINDS = {DataType.integer: "iu", DataType.long: "iu", DataType.float: "f", DataType.double: "iuf",
          DataType.boolean: "b", DataType.datetime: "M"}
_PYTHON_KINDS = (("b", (bool, np.bool_)), ("i", (int, np.integer)), ("f", (float, np.floating)))
_INFERRED = {"integer": ("i", np.int64), "floating": ("f", np.float64), "empty": ("f", np.float64), "boolean": ("b", bool)}


def convert_nested(values: pd.Series, spec: ColSpec, label: str) -> pd.Series:
    """``values`` checked and converted to the nested ``spec.type`` (missing cells become None)."""
    if isinstance(spec.type, AnyType):
        return values
    converted = _convert(values.tolist(), spec.type, _Where(label))
    return pd.Series(_object_array(converted), index=values.index, name=values.name)


def is_missing(value: Any) -> bool:
    """None, NaN, pd.NA or NaT (never true for containers)."""
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    if isinstance(value, (float, np.floating)):
        return bool(value != value)
    return isinstance(value, np.datetime64) and bool(np.isnat(value))


class _Where:
    """Where the values of one nesting level sit. Rows and paths are worked out only for an error."""

    def __init__(self, label: str, parent: _Where | None = None, owner: Callable[[int], int] = int,
                 step: Callable[[int], str | None] = lambda i: None):
        self.label, self.parent, self.owner, self.step = label, parent, owner, step

    def child(self, owner: Callable[[int], int], step: Callable[[int], str | None] = lambda i: None) -> _Where:
        return _Where(self.label, self, owner, step)

    def flat_child(self, owners: Sequence[int], offsets: np.ndarray, step: Callable[[int, int], str]) -> _Where:
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


def _got(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 80 else text[:77] + '...'}"


def _scatter(out: list, positions: Sequence[int], values: Sequence[Any]) -> list:
    """``out`` with ``values`` written at ``positions``."""
    for i, value in zip(positions, values):
        out[i] = value
    return out


def _object_array(values: list) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):
        out[i] = v
    return out


def _offsets(cells: Sequence[Any]) -> np.ndarray:
    lengths = np.fromiter((len(c) for c in cells), dtype=np.int64, count=len(cells))
    return np.concatenate(([0], np.cumsum(lengths)))


def _convert(values: list, t: Type, where: _Where) -> list:
    """One nesting level: ``values`` converted to ``t`` (missing nested values become None)."""
    if isinstance(t, AnyType):
        return values
    if isinstance(t, DataType):
        return _held_scalars(values, t, where)
    if isinstance(t, SparkMLVector):
        return _vectors(values, where)
    if isinstance(t, Array):
        return _arrays(values, t, where)
    if isinstance(t, Object):
        return _objects(values, t, where)
    if isinstance(t, Map):
        return _maps(values, t, where)
    raise SchemaEnforcementError(f"Column {where.label!r}: unknown signature type {t!r}")


# ---- scalars -------------------------------------------------------------------------

def _kind_problem(kind: str, item: DataType) -> str | None:
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


def _typed_items(flat: np.ndarray, item: DataType, where: _Where | None) -> np.ndarray | None:
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
        why = _kind_problem(kind, item)
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
    if dtype is None or _kind_problem(kind, item) is not None:
        return None
    try:
        array = _typed_items(present.to_numpy(dtype=dtype), item, None)
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
        return _object_array([pd.NaT if is_missing(v) else pd.Timestamp(v) for v in values])
    if item in _INT_RANGE or item == DataType.boolean:
        return _object_array([None if is_missing(v) else bool(v) if item == DataType.boolean else int(v) for v in values])
    return _object_array([None if is_missing(v) else v for v in values])


def _item_array(values: Sequence[Any], item: DataType, where: _Where) -> np.ndarray:
    """Python values of one level (array items, or present property/map values) as one array."""
    if len(values) == 0:
        return np.empty(0, dtype=item.to_numpy())
    fast = _fast_scalars(pd.Series(values, dtype=object), item)
    if fast is not None:
        return fast
    for i, value in enumerate(values):
        problem = _scalar_problem(value, item)
        if problem is not None:
            raise where.error(i, f"expected {item.value}, got {_got(value)}" + (f" ({problem})" if problem else ""))
    return _slow_scalars(values, item)


def _python_list(array: np.ndarray) -> list:
    return list(pd.Series(array)) if array.dtype.kind == "M" else array.tolist()


def _held_scalars(values: list, item: DataType, where: _Where) -> list:
    """Property or map values of a scalar type: missing ones are kept, the others converted."""
    present = [i for i, v in enumerate(values) if not is_missing(v)]
    if len(present) == len(values):
        return _python_list(_item_array(values, item, where))
    converted = _item_array([values[i] for i in present], item, where.child(lambda i: present[i]))
    return _scatter(list(values), present, _python_list(converted))


# ---- arrays --------------------------------------------------------------------------

def _is_array(value: Any) -> bool:
    return isinstance(value, (list, tuple)) or (isinstance(value, np.ndarray) and value.ndim >= 1)


def _gather(values: list, accepts: Callable[[Any], bool], where: _Where, expected: str) -> tuple[list[int], list]:
    """The positions and values of the non-missing containers; anything else is an error."""
    owners, cells = [], []
    for i, value in enumerate(values):
        if accepts(value):
            owners.append(i)
            cells.append(value)
        elif not is_missing(value):
            raise where.error(i, f"expected {expected}, got {_got(value)}")
    return owners, cells


def _arrays(values: list, t: Array, where: _Where, expected: str | None = None) -> list:
    owners, cells = _gather(values, _is_array, where, expected or f"{type_name(t)} (a list, tuple or numpy array)")
    convert = _scalar_items if isinstance(t.dtype, DataType) else _nested_items
    return _scatter([None] * len(values), owners, convert(cells, owners, t, where) if cells else [])


def _typed(cell: Any) -> bool:
    return isinstance(cell, np.ndarray) and cell.ndim == 1 and cell.dtype.kind not in "OUS" and len(cell) > 0


def _check_kinds(cells: list, owners: list[int], t: Array, where: _Where) -> None:
    seen: set = set()
    for k, cell in enumerate(cells):
        if not _typed(cell) or cell.dtype in seen:
            continue
        seen.add(cell.dtype)
        why = _kind_problem(cell.dtype.kind, t.dtype)
        if why is not None:
            raise where.error(owners[k], f"expected {type_name(t)}, got a numpy array of {cell.dtype}" + (f" ({why})" if why else ""))


def _scalar_items(cells: list, owners: list[int], t: Array, where: _Where) -> list:
    item = t.dtype
    _check_kinds(cells, owners, t, where)
    offsets = _offsets(cells)
    child = where.flat_child(owners, offsets, lambda i, j: f"element {j}")
    typed = [c for c in cells if len(c)]
    if all(_typed(c) for c in typed) and len({c.dtype for c in typed}) <= 1:  # one concatenate, one cast
        flat = _typed_items(np.concatenate(typed), item, child) if typed else np.empty(0, dtype=item.to_numpy())
    else:
        if all(isinstance(c, np.ndarray) and c.ndim == 1 for c in cells):  # e.g. PySpark's, with nulls
            items: Any = np.concatenate([c.astype(object, copy=False) for c in cells])
        else:
            items = list(chain.from_iterable(c.tolist() if isinstance(c, np.ndarray) else c for c in cells))
        flat = _item_array(items, item, child)
    bounds, as_list = offsets.tolist(), None
    out = []
    for k, cell in enumerate(cells):
        start, end = bounds[k], bounds[k + 1]
        if isinstance(cell, np.ndarray):
            out.append(flat[start:end])
        else:
            as_list = _python_list(flat) if as_list is None else as_list
            out.append(as_list[start:end])
    return out


def _nested_items(cells: list, owners: list[int], t: Array, where: _Where) -> list:
    offsets = _offsets(cells)
    items = list(chain.from_iterable(cells))
    converted = _convert(items, t.dtype, where.flat_child(owners, offsets, lambda i, j: f"element {j}"))
    bounds = offsets.tolist()
    out = []
    for k, cell in enumerate(cells):
        part = converted[bounds[k]:bounds[k + 1]]
        out.append(_as_ndarray(part, cell) if isinstance(cell, np.ndarray) else part)
    return out


def _as_ndarray(items: list, original: np.ndarray) -> np.ndarray:
    """Converted items of a numpy array cell, as a numpy array again (n-D numeric stays n-D)."""
    same = items and all(isinstance(x, np.ndarray) for x in items) and len({x.shape for x in items}) == 1
    return np.stack(items) if original.ndim > 1 and same else _object_array(items)


# ---- objects, maps, vectors ----------------------------------------------------------

def _record(value: Any) -> dict | None:
    if isinstance(value, dict):
        return value
    if type(value).__name__ == "Row" and hasattr(value, "asDict"):  # pyspark.sql.Row
        return value.asDict()
    return None


def _record_problem(record: dict | None, value: Any, t: Object, names: set, required: set) -> str | None:
    if record is None:
        return f"expected {type_name(t)} (a dict), got {_got(value)}"
    if not record.keys() <= names:
        return f"property {next(k for k in record if k not in names)!r} is not in the signature's {type_name(t)}"
    if not required <= record.keys():
        missing = next(p.name for p in t.properties if p.required and p.name not in record)
        return f"required property {missing!r} of {type_name(t)} is missing (present: {sorted(map(str, record))})"
    return None


def _objects(values: list, t: Object, where: _Where) -> list:
    names, required = {p.name for p in t.properties}, {p.name for p in t.properties if p.required}
    rows, records = [], []
    for i, value in enumerate(values):
        if is_missing(value):
            continue
        record = _record(value)
        problem = _record_problem(record, value, t, names, required)
        if problem:
            raise where.error(i, problem)
        rows.append(i)
        records.append(record)
    results: list[dict] = [{} for _ in records]
    for prop in t.properties:
        have = [k for k, r in enumerate(records) if prop.name in r]
        child = where.child(lambda j, have=have: rows[have[j]], lambda j, name=prop.name: f"property {name!r}")
        for k, value in zip(have, _convert([records[k][prop.name] for k in have], prop.dtype, child) if have else []):
            results[k][prop.name] = value
    return _scatter([None] * len(values), rows, results)


def _maps(values: list, t: Map, where: _Where) -> list:
    owners, cells = _gather(values, lambda v: isinstance(v, dict), where, f"{type_name(t)} (a dict with string keys)")
    offsets = _offsets(cells)
    keys = list(chain.from_iterable(cells))
    if keys and pd.api.types.infer_dtype(keys, skipna=False) != "string":
        bad = next(i for i, k in enumerate(keys) if not isinstance(k, str))
        k = int(np.searchsorted(offsets, bad, side="right")) - 1
        raise where.error(owners[k], f"map keys must be strings, got {_got(keys[bad])}")
    child = where.flat_child(owners, offsets, lambda i, j: f"key {keys[i]!r}")
    converted = _convert(list(chain.from_iterable(c.values() for c in cells)), t.value_type, child)
    bounds = offsets.tolist()
    maps = [dict(zip(keys[bounds[k]:bounds[k + 1]], converted[bounds[k]:bounds[k + 1]])) for k in range(len(cells))]
    return _scatter([None] * len(values), owners, maps)


def _is_vector(value: Any) -> bool:
    return type(value).__name__ in ("DenseVector", "SparseVector") and type(value).__module__ == "pyspark.ml.linalg"


def _vectors(values: list, where: _Where) -> list:
    """ML vectors as they are; PySpark's vector records as vectors; arrays as arrays of double."""
    out, arrays = list(values), []
    for i, value in enumerate(values):
        if isinstance(value, dict) and tuple(value) == _VECTOR_FIELDS:
            from pyspark.ml.linalg import VectorUDT

            missing = value["type"] is None or is_missing(value["type"])
            out[i] = None if missing else VectorUDT().deserialize((int(value["type"]), *list(value.values())[1:]))
        elif not _is_vector(value):
            arrays.append(i)
    converted = _arrays([values[i] for i in arrays], Array(DataType.double), where.child(lambda j: arrays[j]),
                        expected="sparkml_vector (an ML vector or an array of doubles)")
    return _scatter(out, arrays, converted)
