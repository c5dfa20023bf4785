"""``result_type``: parse it on the driver, coerce model output to it in the worker.

Scalar types take the leftmost compatible output column, array types all compatible
columns, struct types their fields by name (the reference doc's table, plus boolean,
struct and DDL strings). None and NaN become Spark nulls for every type.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import types as T

from spark_models.exceptions import InvalidArgumentError, SchemaEnforcementError

_SIMPLE = {
    "int": T.IntegerType(),
    "integer": T.IntegerType(),
    "long": T.LongType(),
    "bigint": T.LongType(),
    "float": T.FloatType(),
    "double": T.DoubleType(),
    "string": T.StringType(),
    "boolean": T.BooleanType(),
    "bool": T.BooleanType(),
}
_SUPPORTED_LEAVES = (T.IntegerType, T.LongType, T.FloatType, T.DoubleType, T.StringType, T.BooleanType)


def parse_result_type(result_type: Any, signature: Any = None) -> T.DataType:
    """A Spark DataType from a name, DDL string, DataType, or (None) the signature outputs."""
    if result_type is None:
        return _from_signature(signature)
    if isinstance(result_type, T.DataType):
        dt = result_type
    elif isinstance(result_type, str):
        dt = _SIMPLE.get(result_type.strip().lower()) or _parse_ddl(result_type)
    else:
        raise InvalidArgumentError(f"result_type must be a Spark DataType or a type string, got {result_type!r}")
    _check_supported(dt, result_type)
    return dt


def _parse_ddl(text: str) -> T.DataType:
    from pyspark.sql.types import _parse_datatype_string

    try:
        return _parse_datatype_string(text)
    except Exception as e:
        raise InvalidArgumentError(f"Cannot parse result_type {text!r}: {e}") from None


def _check_supported(dt: T.DataType, given: Any) -> None:
    if isinstance(dt, T.ArrayType):
        if not isinstance(dt.elementType, _SUPPORTED_LEAVES):
            raise InvalidArgumentError(f"Unsupported result_type {given!r}: arrays of {dt.elementType.simpleString()}")
        return
    if isinstance(dt, T.StructType):
        for field in dt.fields:
            _check_supported(field.dataType, given)
        return
    if not isinstance(dt, _SUPPORTED_LEAVES):
        raise InvalidArgumentError(
            f"Unsupported result_type {given!r}; use int, long, float, double, string, boolean, arrays of those, or a struct"
        )


def _from_signature(signature: Any) -> T.DataType:
    outputs = getattr(signature, "outputs", None)
    if outputs is None or not outputs.inputs:
        return T.DoubleType()
    if outputs.is_tensor_spec():
        spec = outputs.inputs[0]
        from spark_models._spark_schema import _spec_to_spark

        return _spec_to_spark(spec) if len(outputs.inputs) == 1 else T.ArrayType(T.DoubleType())
    if len(outputs.inputs) == 1:
        return outputs.inputs[0].type.to_spark()
    if outputs.has_input_names():
        return T.StructType([T.StructField(str(s.name), s.type.to_spark()) for s in outputs.inputs])
    return T.ArrayType(T.DoubleType())


def _as_frame(output: Any) -> pd.DataFrame:
    if isinstance(output, pd.DataFrame):
        return output
    if isinstance(output, pd.Series):
        return output.to_frame()
    if isinstance(output, dict):
        return pd.DataFrame({k: list(v) if np.ndim(v) > 1 else v for k, v in output.items()})
    array = np.asarray(output)
    if array.ndim == 0:
        array = array.reshape(1)
    if array.ndim == 1:
        return pd.DataFrame({0: array})
    if array.ndim == 2:
        return pd.DataFrame(array)
    return pd.DataFrame({0: list(array.reshape(len(array), -1))})


def _is_int_column(s: pd.Series, bits: int) -> bool:
    if s.dtype.kind in "iu":
        return s.dtype.itemsize * 8 <= bits or (s.empty or (s.min() >= -(2 ** (bits - 1)) and s.max() < 2 ** (bits - 1)))
    return False


def _compatible(s: pd.Series, dt: T.DataType) -> bool:
    if isinstance(dt, T.IntegerType):
        return _is_int_column(s, 32)
    if isinstance(dt, T.LongType):
        return _is_int_column(s, 64)
    if isinstance(dt, (T.FloatType, T.DoubleType)):
        return s.dtype.kind in "iufb"
    if isinstance(dt, T.BooleanType):
        return s.dtype.kind == "b"
    return True  # string: anything converts


def _convert(s: pd.Series, dt: T.DataType) -> pd.Series:
    if isinstance(dt, T.StringType):
        return pd.Series([None if _is_null(v) else str(v) for v in s], index=s.index, dtype=object)
    if isinstance(dt, T.BooleanType):
        return s.astype(object).where(s.notna(), None)
    if isinstance(dt, (T.IntegerType, T.LongType)):
        return s.astype("Int32" if isinstance(dt, T.IntegerType) else "Int64")
    return s.astype(np.float32 if isinstance(dt, T.FloatType) else np.float64)


def _is_null(v: Any) -> bool:
    return v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA


def _describe(df: pd.DataFrame) -> str:
    return ", ".join(f"{c} ({df[c].dtype})" for c in df.columns)


def coerce_output(output: Any, dt: T.DataType, expected_rows: int) -> pd.Series | pd.DataFrame:
    """Model output → a Series (or DataFrame for structs) of ``dt`` with ``expected_rows`` rows."""
    fast = _numeric_vector(output, dt, expected_rows)
    if fast is not None:
        return fast
    frame = _as_frame(output).reset_index(drop=True)
    if len(frame) != expected_rows:
        raise SchemaEnforcementError(f"The model returned {len(frame)} rows for a batch of {expected_rows}; scoring must keep one row per input")
    if isinstance(dt, T.StructType):
        return _coerce_struct(frame, dt)
    if isinstance(dt, T.ArrayType):
        return _coerce_array(frame, dt)
    for name in frame.columns:
        if _compatible(frame[name], dt):
            return _convert(frame[name], dt)
    raise SchemaEnforcementError(f"No model output column fits result_type {dt.simpleString()}; the model returned: {_describe(frame)}")


def _numeric_vector(output: Any, dt: T.DataType, expected_rows: int) -> pd.Series | None:
    """The common case without building a frame: a 1-D numeric ndarray for a float/double result."""
    if (isinstance(output, np.ndarray) and output.ndim == 1 and len(output) == expected_rows
            and output.dtype.kind in "iufb" and isinstance(dt, (T.FloatType, T.DoubleType))):
        return pd.Series(output.astype(np.float32 if isinstance(dt, T.FloatType) else np.float64, copy=False))
    return None


def _coerce_array(frame: pd.DataFrame, dt: T.ArrayType) -> pd.Series:
    element = dt.elementType
    if frame.shape[1] == 1 and frame.dtypes.iloc[0] == object and len(frame) and isinstance(frame.iloc[0, 0], (list, np.ndarray)):
        values = [None if v is None else [None if _is_null(x) else x for x in _convert(pd.Series(np.asarray(v)), element)] for v in frame.iloc[:, 0]]
        return pd.Series(values, dtype=object)
    cols = [c for c in frame.columns if _compatible(frame[c], element)]
    if not cols:
        raise SchemaEnforcementError(f"No model output column fits result_type {dt.simpleString()}; the model returned: {_describe(frame)}")
    converted = pd.DataFrame({c: _convert(frame[c], element) for c in cols})
    rows = converted.astype(object).where(converted.notna(), None).to_numpy().tolist()
    return pd.Series(rows, dtype=object)


def _coerce_struct(frame: pd.DataFrame, dt: T.StructType) -> pd.DataFrame:
    names = [str(c) for c in frame.columns]
    frame.columns = names
    missing = [f.name for f in dt.fields if f.name not in names]
    if missing and len(dt.fields) == frame.shape[1] and not any(n in names for n in (f.name for f in dt.fields)):
        frame.columns = [f.name for f in dt.fields]  # unnamed outputs fill the struct by position
        missing = []
    if missing:
        raise SchemaEnforcementError(f"result_type struct fields {missing} are not among the model's outputs: {names}")
    out = {}
    for field in dt.fields:
        sub = coerce_output(frame[[field.name]], field.dataType, len(frame))
        out[field.name] = sub
    return pd.DataFrame(out)
