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
from spark_models.schema.data_type import DataType
from spark_models.schema.nested import AnyType, Array, Map, NestedType, Object, SparkMLVector, type_name
from spark_models.schema.nested_scalars import (
    Where,
    held_scalars,
    is_missing,
    item_array,
    kind_problem,
    object_array,
    python_list,
    scatter,
    shown,
    typed_items,
)
from spark_models.schema.types import ColSpec

_VECTOR_FIELDS = ("type", "size", "indices", "values")
Type = DataType | NestedType


def convert_nested(values: pd.Series, spec: ColSpec, label: str) -> pd.Series:
    """``values`` checked and converted to the nested ``spec.type`` (missing cells become None)."""
    if isinstance(spec.type, AnyType):
        return values
    converted = _convert(values.tolist(), spec.type, Where(label))
    return pd.Series(object_array(converted), index=values.index, name=values.name)


def _offsets(cells: Sequence[Any]) -> np.ndarray:
    lengths = np.fromiter((len(c) for c in cells), dtype=np.int64, count=len(cells))
    return np.concatenate(([0], np.cumsum(lengths)))


def _convert(values: list, t: Type, where: Where) -> list:
    """One nesting level: ``values`` converted to ``t`` (missing nested values become None)."""
    if isinstance(t, AnyType):
        return values
    if isinstance(t, DataType):
        return held_scalars(values, t, where)
    if isinstance(t, SparkMLVector):
        return _vectors(values, where)
    if isinstance(t, Array):
        return _arrays(values, t, where)
    if isinstance(t, Object):
        return _objects(values, t, where)
    if isinstance(t, Map):
        return _maps(values, t, where)
    raise SchemaEnforcementError(f"Column {where.label!r}: unknown signature type {t!r}")


# ---- arrays --------------------------------------------------------------------------

def _is_array(value: Any) -> bool:
    return isinstance(value, (list, tuple)) or (isinstance(value, np.ndarray) and value.ndim >= 1)


def _gather(values: list, accepts: Callable[[Any], bool], where: Where, expected: str) -> tuple[list[int], list]:
    """The positions and values of the non-missing containers; anything else is an error."""
    owners, cells = [], []
    for i, value in enumerate(values):
        if accepts(value):
            owners.append(i)
            cells.append(value)
        elif not is_missing(value):
            raise where.error(i, f"expected {expected}, got {shown(value)}")
    return owners, cells


def _arrays(values: list, t: Array, where: Where, expected: str | None = None) -> list:
    owners, cells = _gather(values, _is_array, where, expected or f"{type_name(t)} (a list, tuple or numpy array)")
    convert = _scalar_items if isinstance(t.dtype, DataType) else _nested_items
    return scatter([None] * len(values), owners, convert(cells, owners, t, where) if cells else [])


def _typed(cell: Any) -> bool:
    return isinstance(cell, np.ndarray) and cell.ndim == 1 and cell.dtype.kind not in "OUS" and len(cell) > 0


def _check_kinds(cells: list, owners: list[int], t: Array, where: Where) -> None:
    seen: set = set()
    for k, cell in enumerate(cells):
        if not _typed(cell) or cell.dtype in seen:
            continue
        seen.add(cell.dtype)
        why = kind_problem(cell.dtype.kind, t.dtype)
        if why is not None:
            raise where.error(owners[k], f"expected {type_name(t)}, got a numpy array of {cell.dtype}" + (f" ({why})" if why else ""))


def _scalar_items(cells: list, owners: list[int], t: Array, where: Where) -> list:
    item = t.dtype
    _check_kinds(cells, owners, t, where)
    offsets = _offsets(cells)
    child = where.flat_child(owners, offsets, lambda i, j: f"element {j}")
    typed = [c for c in cells if len(c)]
    if all(_typed(c) for c in typed) and len({c.dtype for c in typed}) <= 1:  # one concatenate, one cast
        flat = typed_items(np.concatenate(typed), item, child) if typed else np.empty(0, dtype=item.to_numpy())
    else:
        if all(isinstance(c, np.ndarray) and c.ndim == 1 for c in cells):  # e.g. PySpark's, with nulls
            items: Any = np.concatenate([c.astype(object, copy=False) for c in cells])
        else:
            items = list(chain.from_iterable(c.tolist() if isinstance(c, np.ndarray) else c for c in cells))
        flat = item_array(items, item, child)
    bounds, as_list = offsets.tolist(), None
    out = []
    for k, cell in enumerate(cells):
        start, end = bounds[k], bounds[k + 1]
        if isinstance(cell, np.ndarray):
            out.append(flat[start:end])
        else:
            as_list = python_list(flat) if as_list is None else as_list
            out.append(as_list[start:end])
    return out


def _nested_items(cells: list, owners: list[int], t: Array, where: Where) -> list:
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
    return np.stack(items) if original.ndim > 1 and same else object_array(items)


# ---- objects, maps, vectors ----------------------------------------------------------

def _record(value: Any) -> dict | None:
    if isinstance(value, dict):
        return value
    if type(value).__name__ == "Row" and hasattr(value, "asDict"):  # pyspark.sql.Row
        return value.asDict()
    return None


def _record_problem(record: dict | None, value: Any, t: Object, names: set, required: set) -> str | None:
    if record is None:
        return f"expected {type_name(t)} (a dict), got {shown(value)}"
    if not record.keys() <= names:
        return f"property {next(k for k in record if k not in names)!r} is not in the signature's {type_name(t)}"
    if not required <= record.keys():
        missing = next(p.name for p in t.properties if p.required and p.name not in record)
        return f"required property {missing!r} of {type_name(t)} is missing (present: {sorted(map(str, record))})"
    return None


def _objects(values: list, t: Object, where: Where) -> list:
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
    return scatter([None] * len(values), rows, results)


def _maps(values: list, t: Map, where: Where) -> list:
    owners, cells = _gather(values, lambda v: isinstance(v, dict), where, f"{type_name(t)} (a dict with string keys)")
    offsets = _offsets(cells)
    keys = list(chain.from_iterable(cells))
    if keys and pd.api.types.infer_dtype(keys, skipna=False) != "string":
        bad = next(i for i, k in enumerate(keys) if not isinstance(k, str))
        k = int(np.searchsorted(offsets, bad, side="right")) - 1
        raise where.error(owners[k], f"map keys must be strings, got {shown(keys[bad])}")
    child = where.flat_child(owners, offsets, lambda i, j: f"key {keys[i]!r}")
    converted = _convert(list(chain.from_iterable(c.values() for c in cells)), t.value_type, child)
    bounds = offsets.tolist()
    maps = [dict(zip(keys[bounds[k]:bounds[k + 1]], converted[bounds[k]:bounds[k + 1]])) for k in range(len(cells))]
    return scatter([None] * len(values), owners, maps)


def _is_vector(value: Any) -> bool:
    return type(value).__name__ in ("DenseVector", "SparseVector") and type(value).__module__ == "pyspark.ml.linalg"


def _vectors(values: list, where: Where) -> list:
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
    return scatter(out, arrays, converted)
