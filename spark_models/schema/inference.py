"""``infer_signature``: schemas from example data (pandas, numpy, dicts, lists, Spark).

One deliberate difference from MLflow: a 1-D numeric *output* (what ``predict`` returns
for most classifiers and regressors) infers as a column, not a tensor, so that Spark UDF
result types are scalars rather than one-element arrays.

Columns of lists or tuples infer as MLflow 3's ``Array`` of their items' type and columns of
dicts as ``Object``, merged over all rows as MLflow does: a property absent from some dicts,
or None in some, is optional. Unlike MLflow, a missing cell or item says nothing about the
properties of the others (MLflow makes them all optional), an empty list is a present value,
integers mixed with floats infer as double (MLflow gives up and declares the whole input
``any``), datetimes and tuples infer, and anything else that does not infer is an error.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any

import numpy as np
import pandas as pd

from spark_models.exceptions import SchemaError
from spark_models.schema.params import ParamSchema, ParamSpec
from spark_models.schema.signature import ModelSignature
from spark_models.schema.type_table import signature_type_of_numpy
from spark_models.schema.data_type import DataType
from spark_models.schema.nested import AnyType, Array, NestedType, Object, Property
from spark_models.schema.types import ColSpec, Schema, TensorSpec


def _data_type_of_numpy(dtype: np.dtype, label: str) -> DataType:
    name = signature_type_of_numpy(dtype)
    if name is None:
        raise SchemaError(f"Cannot infer a column type for {label!r} of dtype {dtype}")
    return DataType(name)


def _data_type_of_values(values: pd.Series, label: str) -> DataType | NestedType:
    present = values.dropna()
    if present.empty:
        raise SchemaError(f"Cannot infer a type for column {label!r}: it has no non-null values")
    cells = present.tolist()
    if not any(isinstance(v, np.ndarray) for v in cells) and any(isinstance(v, (list, tuple, dict)) for v in cells):
        found = _nested_type(cells, f"column {label!r}")
        return AnyType() if found is None else found
    for kind, dtype in ((str, DataType.string), ((bytes, bytearray), DataType.binary), ((_dt.datetime, _dt.date), DataType.datetime), ((bool, np.bool_), DataType.boolean)):
        if present.map(lambda v: isinstance(v, kind)).all():
            return dtype
    inferred = present.infer_objects()
    if inferred.dtype != object:
        return _data_type_of_numpy(inferred.dtype, label)
    sample = present.iloc[0]
    raise SchemaError(
        f"Cannot infer a column type for {label!r}: it holds {type(sample).__name__} values. "
        "Columns of arrays are tensors: pass a numpy array or a dict of arrays instead (or lists, which infer "
        "as MLflow 3's array type)."
    )


# ---- MLflow 3's nested types: lists, tuples and dicts in object columns --------------

def _is_missing(v: Any) -> bool:
    if v is None or v is pd.NA or v is pd.NaT:
        return True
    return isinstance(v, (float, np.floating)) and bool(v != v)


def _nested_type(values: list, where: str) -> DataType | NestedType | None:
    """The type of all the values found at one place of the examples (None: all missing)."""
    present = [v for v in values if not _is_missing(v)]
    if not present:
        return None
    if all(isinstance(v, dict) for v in present):
        return _object_type(present, where)
    if all(isinstance(v, (list, tuple, np.ndarray)) for v in present):
        items = [x for v in present for x in (list(v) if isinstance(v, np.ndarray) else v)]
        if not items:
            return AnyType()  # only empty arrays, as MLflow
        inner = _nested_type(items, f"{where} items")
        return Array(AnyType() if inner is None else inner)
    if any(isinstance(v, (dict, list, tuple, np.ndarray)) for v in present):
        kinds = sorted({type(v).__name__ for v in present})
        raise SchemaError(f"Cannot infer a type for {where}: it mixes {', '.join(kinds)} values")
    return _scalar_type(present, where)


def _object_type(dicts: list[dict], where: str) -> DataType | NestedType:
    names: dict[str, None] = {}
    for d in dicts:
        for key in d:
            if not isinstance(key, str):
                raise SchemaError(f"Cannot infer a type for {where}: its dict keys must be strings, got {key!r}")
            names.setdefault(key)
    if not names:
        return AnyType()  # only empty dicts, as MLflow
    properties = []
    for name in names:
        values = [d[name] for d in dicts if name in d]
        found = _nested_type(values, f"{where} property {name!r}")
        required = found is not None and len(values) == len(dicts) and not any(map(_is_missing, values))
        properties.append(Property(name, AnyType() if found is None else found, required))
    return Object(properties)


_SCALARS = ((bool, DataType.boolean), (np.bool_, DataType.boolean), (int, DataType.long), (float, DataType.double),
            (str, DataType.string), ((bytes, bytearray), DataType.binary), ((_dt.datetime, _dt.date), DataType.datetime))
_NUMBERS = {DataType.integer, DataType.long, DataType.float, DataType.double}


def _scalar_of(kind: type, where: str) -> DataType:
    for base, found in _SCALARS:
        if issubclass(kind, base):
            return found
    name = signature_type_of_numpy(np.dtype(kind)) if issubclass(kind, np.generic) else None
    if name is None:
        raise SchemaError(f"Cannot infer a type for {where}: it holds {kind.__name__} values")
    return DataType(name)


def _scalar_type(values: list, where: str) -> DataType:
    found = {_scalar_of(kind, where) for kind in set(map(type, values))}
    if len(found) == 1:
        return found.pop()
    if found <= _NUMBERS:  # integers and floats: double holds them all (integers up to 2**53 exactly)
        return DataType.double if found & {DataType.float, DataType.double} else DataType.long
    raise SchemaError(f"Cannot infer a type for {where}: it mixes {', '.join(sorted(t.value for t in found))} values")


def _column_type(values: pd.Series, label: str) -> DataType | NestedType:
    dtype = values.dtype
    if isinstance(dtype, pd.StringDtype):
        return DataType.string
    if isinstance(dtype, pd.CategoricalDtype):
        return _data_type_of_values(values.astype(object), label)
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return DataType.datetime
    if isinstance(dtype, pd.api.extensions.ExtensionDtype) and getattr(dtype, "numpy_dtype", None) is not None:
        return _data_type_of_numpy(np.dtype(dtype.numpy_dtype), label)
    if dtype == object:
        return _data_type_of_values(values, label)
    return _data_type_of_numpy(dtype, label)


def _frame_schema(df: pd.DataFrame) -> Schema:
    named = not all(isinstance(c, int) for c in df.columns) or list(df.columns) != list(range(df.shape[1]))
    return Schema(ColSpec(_column_type(df[c], str(c)), str(c) if named else None) for c in df.columns)


def _tensor_spec(array: np.ndarray, name: str | None) -> TensorSpec:
    if array.dtype == object:
        raise SchemaError(f"Cannot infer a tensor spec for {name or 'input'!r}: object arrays have no tensor type")
    return TensorSpec(array.dtype, (-1, *array.shape[1:]), name)


def infer_schema(data: Any) -> Schema:
    """The schema of one piece of example data."""
    if isinstance(data, pd.DataFrame):
        return _frame_schema(data)
    if isinstance(data, pd.Series):
        return Schema([ColSpec(_column_type(data, str(data.name)), None if data.name is None else str(data.name))])
    if isinstance(data, np.ndarray):
        return Schema([_tensor_spec(data, None)])
    if isinstance(data, dict):
        if data and all(isinstance(v, np.ndarray) for v in data.values()):
            return Schema(_tensor_spec(v, str(k)) for k, v in data.items())
        scalar = all(np.ndim(v) == 0 for v in data.values())
        return _frame_schema(pd.DataFrame([data]) if scalar else pd.DataFrame(data))
    if isinstance(data, list):
        return _frame_schema(pd.DataFrame(data))
    if _is_spark_dataframe(data):
        return Schema.from_spark(data.schema)
    raise SchemaError(f"Cannot infer a schema from {type(data).__name__}")


def _is_spark_dataframe(data: Any) -> bool:
    return type(data).__name__ == "DataFrame" and type(data).__module__.startswith("pyspark.sql")


def infer_output_schema(output: Any) -> Schema:
    """Like :func:`infer_schema`, but a 1-D numeric/bool/string array is one unnamed column."""
    if isinstance(output, list) and output and not isinstance(output[0], (dict, list, tuple)):
        output = np.asarray(output)
    if isinstance(output, np.ndarray) and output.ndim == 1 and output.dtype != object:
        return Schema([ColSpec(_data_type_of_numpy(output.dtype, "output"))])
    if isinstance(output, np.ndarray) and output.ndim == 1:
        return Schema([ColSpec(_data_type_of_values(pd.Series(output), "output"))])
    return infer_schema(output)


def _param_type(value: Any, name: str) -> DataType:
    for kind, dtype in ((bool, DataType.boolean), (int, DataType.long), (float, DataType.double), (str, DataType.string), ((bytes, bytearray), DataType.binary), ((_dt.datetime, _dt.date), DataType.datetime)):
        if isinstance(value, kind):
            return dtype
    raise SchemaError(f"Cannot infer a type for param {name!r} from {type(value).__name__} {value!r}")


def infer_params_schema(params: dict[str, Any]) -> ParamSchema:
    specs = []
    for name, value in params.items():
        if isinstance(value, (list, tuple)):
            if not value:
                raise SchemaError(f"Cannot infer a type for param {name!r} from an empty list")
            specs.append(ParamSpec(name, _param_type(value[0], name), list(value), (-1,)))
        else:
            specs.append(ParamSpec(name, _param_type(value, name), value))
    return ParamSchema(specs)


def infer_signature(model_input: Any = None, model_output: Any = None, params: dict[str, Any] | None = None) -> ModelSignature:
    """A ``ModelSignature`` from example input, output and params.

    >>> import pandas as pd, numpy as np
    >>> sig = infer_signature(pd.DataFrame({"x": [1.0, 2.0]}), np.array([0, 1]))
    >>> sig.inputs, sig.outputs
    (['x': double], [long])
    """
    inputs = infer_schema(model_input) if model_input is not None else None
    outputs = infer_output_schema(model_output) if model_output is not None else None
    return ModelSignature(inputs, outputs, infer_params_schema(params) if params else None)
