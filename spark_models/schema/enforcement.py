"""Signature enforcement: check and convert model input before the model runs.

The rules are the reference doc's. Named columns are matched by name and reordered to the
signature; unnamed ones by position. Only lossless conversions happen (``int32 → int64``,
``int32 → float64``; never ``int64 → float64``). Tensors are checked strictly. Beyond
MLflow: pandas nullable dtypes are accepted, optional columns may be absent, and every
error names the column, the expected type and the actual dtype.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from spark_models.schema.columns import convert_column as convert_scalar_column
from spark_models.schema.columns import convert_param
from spark_models.exceptions import SchemaEnforcementError
from spark_models.schema.params import ParamSchema
from spark_models.schema.data_type import DataType
from spark_models.schema.nested import type_name
from spark_models.schema.nested_values import convert_nested
from spark_models.schema.types import ColSpec, Schema, TensorSpec

_logger = logging.getLogger(__name__)
_warned_extra: set[tuple[str, ...]] = set()


def enforce_schema(data: Any, schema: Schema | None) -> Any:
    """``data`` checked and converted to ``schema``; untouched when there is no schema."""
    if schema is None or not schema.inputs:
        return data
    if schema.is_tensor_spec():
        return _enforce_tensors(data, schema)
    frame = _as_frame(data, schema)
    duplicated = sorted({str(c) for c in frame.columns[frame.columns.duplicated()]})
    if duplicated:
        raise SchemaEnforcementError(f"The input has duplicate column names {duplicated}; each column must appear once")
    return _enforce_columns(frame, schema)


def _as_frame(data: Any, schema: Schema) -> pd.DataFrame:
    if isinstance(data, pd.DataFrame):
        return data
    if isinstance(data, pd.Series):
        return data.to_frame() if data.name is not None or not schema.has_input_names() else data.to_frame(schema.input_names()[0])
    if isinstance(data, dict):
        nested = any(not isinstance(spec.type, DataType) for spec in schema.inputs if isinstance(spec, ColSpec))
        if nested or all(np.ndim(v) == 0 for v in data.values()):  # one record (its lists are array values)
            return pd.DataFrame([data])
        return pd.DataFrame({k: list(v) if np.ndim(v) > 1 else v for k, v in data.items()})
    if isinstance(data, list):
        if data and all(isinstance(r, dict) for r in data):
            return pd.DataFrame(data)
        return _positional_frame(pd.DataFrame(data), schema, "list")
    if isinstance(data, np.ndarray):
        frame = pd.DataFrame(data if data.ndim == 2 else data.reshape(len(data), -1))
        return _positional_frame(frame, schema, "numpy array")
    raise SchemaEnforcementError(
        f"Cannot use {type(data).__name__} as input to a column-based signature; "
        "pass a pandas DataFrame, dict of columns, list of records or 2-D numpy array"
    )


def _positional_frame(frame: pd.DataFrame, schema: Schema, what: str) -> pd.DataFrame:
    """A frame built from unlabeled data: named schemas get their names only by exact count."""
    if not schema.has_input_names():
        return frame
    names = schema.input_names()
    if frame.shape[1] != len(names):
        raise SchemaEnforcementError(
            f"A {what} input has {frame.shape[1]} columns but the signature has {len(names)} named columns "
            f"{names}; pass a DataFrame or dict with those column names"
        )
    frame.columns = names
    return frame


def convert_column(values: pd.Series, spec: ColSpec, label: str) -> pd.Series:
    """One column converted to its spec: scalar types (:mod:`.columns`) or MLflow 3's nested ones."""
    if isinstance(spec.type, DataType):
        return convert_scalar_column(values, spec, label)
    return convert_nested(values, spec, label)


def _enforce_columns(df: pd.DataFrame, schema: Schema) -> pd.DataFrame:
    if not schema.has_input_names():
        if df.shape[1] != len(schema.inputs):
            raise SchemaEnforcementError(
                f"The signature has {len(schema.inputs)} unnamed input columns but the input has {df.shape[1]}"
            )
        out = {i: convert_column(df.iloc[:, i], spec, f"#{i}") for i, spec in enumerate(schema.inputs)}
        result = pd.DataFrame(out, index=df.index)
        result.columns = df.columns
        return result
    present = set(map(str, df.columns))
    missing = [n for n in schema.required_input_names() if n not in present]
    if missing:
        raise SchemaEnforcementError(
            f"Model is missing inputs {missing}. Input columns: {list(df.columns)}. "
            "Required by the signature: " + ", ".join(f"{s.name} ({type_name(s.type)})" for s in schema.inputs if s.required)
        )
    _log_extra_columns(df, schema)
    columns = {}
    for spec in schema.inputs:
        if spec.name in present:
            columns[spec.name] = convert_column(df[spec.name], spec, spec.name)
    return pd.DataFrame(columns, index=df.index)


def _log_extra_columns(df: pd.DataFrame, schema: Schema) -> None:
    extra = tuple(sorted(str(c) for c in df.columns if c not in set(schema.input_names())))
    if extra and extra not in _warned_extra:
        _warned_extra.add(extra)
        _logger.info("Ignoring input columns not in the model signature: %s", list(extra))


def _enforce_tensors(data: Any, schema: Schema) -> Any:
    specs = schema.inputs
    if isinstance(data, dict):
        if not schema.has_input_names():
            raise SchemaEnforcementError("A dict input needs a tensor signature with named inputs")
        missing = [s.name for s in specs if s.name not in data]
        if missing:
            raise SchemaEnforcementError(f"Model is missing tensor inputs {missing}; got {sorted(data)}")
        return {s.name: _check_tensor(np.asarray(data[s.name]), s) for s in specs}
    if isinstance(data, pd.DataFrame):
        if len(specs) == 1:
            return _check_tensor(_frame_to_array(data), specs[0])
        return {s.name: _check_tensor(np.stack(data[s.name].to_numpy()), s) for s in specs}
    if len(specs) != 1:
        raise SchemaEnforcementError(
            f"The signature has {len(specs)} tensor inputs {schema.input_names()}; pass a dict of arrays"
        )
    array = data if isinstance(data, np.ndarray) else np.asarray(data)
    return _check_tensor(array, specs[0])


def _frame_to_array(df: pd.DataFrame) -> np.ndarray:
    if df.shape[1] == 1 and df.dtypes.iloc[0] == object:
        return np.stack(df.iloc[:, 0].to_numpy())
    return df.to_numpy()


def _check_tensor(array: np.ndarray, spec: TensorSpec) -> np.ndarray:
    name = spec.name if spec.name is not None else "input"
    if array.dtype != spec.dtype:
        raise SchemaEnforcementError(
            f"Tensor {name!r}: expected dtype {spec.dtype}, got {array.dtype}. Tensor types are checked "
            f"strictly; convert with .astype({str(spec.dtype)!r})"
        )
    shape = spec.shape
    if shape is not None:
        ok = len(array.shape) == len(shape) and all(s == -1 or s == a for s, a in zip(shape, array.shape))
        if not ok:
            raise SchemaEnforcementError(f"Tensor {name!r}: expected shape {shape} (-1 = any), got {array.shape}")
    return array


def enforce_params(params: dict[str, Any] | None, schema: ParamSchema | None) -> dict[str, Any] | None:
    """Params filled with defaults and converted to their declared types."""
    if params is not None and not isinstance(params, dict):
        raise SchemaEnforcementError(f"params must be a dict, got {type(params).__name__}")
    if schema is None:
        if params:
            _logger.warning("The model's signature declares no params; ignoring %s", sorted(params))
        return None
    params = dict(params or {})
    unknown = sorted(set(params) - {p.name for p in schema.params})
    if unknown:
        _logger.warning("Ignoring params not in the model signature: %s", unknown)
    return {spec.name: convert_param(params[spec.name], spec) if spec.name in params else spec.default for spec in schema.params}
