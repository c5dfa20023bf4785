"""The one table of types: signature type names ↔ numpy, Python, Spark and Arrow types, and
the integer-width rule every conversion follows.

Everything that maps one type system to another (signature inference, enforcement, Schema ↔
StructType, spark_udf result types and output coercion) reads it from here. Spark and Arrow
types are built lazily: enforcing a schema never imports ``pyspark.sql.types`` or pyarrow.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any

import numpy as np

# signature type name → (numpy dtype, Python type, Spark type class name, Arrow type)
_ROWS: dict[str, tuple[Any, type, str, tuple]] = {
    "boolean": (np.bool_, bool, "BooleanType", ("bool_",)),
    "integer": (np.int32, int, "IntegerType", ("int32",)),
    "long": (np.int64, int, "LongType", ("int64",)),
    "float": (np.float32, float, "FloatType", ("float32",)),
    "double": (np.float64, float, "DoubleType", ("float64",)),
    "string": (object, str, "StringType", ("string",)),
    "binary": (object, bytes, "BinaryType", ("binary",)),
    "datetime": ("datetime64[ns]", _dt.datetime, "TimestampType", ("timestamp", "ns")),
}
TYPE_NAMES = tuple(_ROWS)

# Spark type class name → signature type name (several Spark types share one)
_SIGNATURE_OF_SPARK = {
    "BooleanType": "boolean", "ByteType": "integer", "ShortType": "integer", "IntegerType": "integer",
    "LongType": "long", "FloatType": "float", "DoubleType": "double", "StringType": "string",
    "BinaryType": "binary", "DateType": "datetime", "TimestampType": "datetime", "TimestampNTZType": "datetime",
}
# Spark numeric leaf ↔ numpy dtype, exact both ways (tensor elements)
_NUMPY_OF_SPARK = {
    "BooleanType": np.bool_, "ByteType": np.int8, "ShortType": np.int16, "IntegerType": np.int32,
    "LongType": np.int64, "FloatType": np.float32, "DoubleType": np.float64,
}
_SPARK_OF_NUMPY = {np.dtype(v): k for k, v in _NUMPY_OF_SPARK.items()}


def numpy_dtype(name: str) -> np.dtype:
    """The numpy dtype a column of signature type ``name`` is held in."""
    return np.dtype(_ROWS[name][0])


def python_type(name: str) -> type:
    return _ROWS[name][1]


def spark_type(name: str) -> Any:
    """The Spark SQL type of signature type ``name``."""
    from pyspark.sql import types as T

    return getattr(T, _ROWS[name][2])()


def arrow_type(name: str) -> Any:
    import pyarrow as pa

    factory, *args = _ROWS[name][3]
    return getattr(pa, factory)(*args)


def signature_type_of_spark(dt: Any) -> str | None:
    """The signature type name of a Spark leaf type (None: it has none)."""
    return _SIGNATURE_OF_SPARK.get(type(dt).__name__)


def numpy_of_spark(dt: Any) -> np.dtype | None:
    """The numpy dtype of a numeric/boolean Spark leaf type (None for others)."""
    found = _NUMPY_OF_SPARK.get(type(dt).__name__)
    return None if found is None else np.dtype(found)


def spark_of_numpy(dtype: np.dtype) -> Any:
    """The Spark type holding exactly ``dtype`` (None when Spark has none, e.g. unsigned)."""
    from pyspark.sql import types as T

    name = _SPARK_OF_NUMPY.get(np.dtype(dtype))
    return None if name is None else getattr(T, name)()


# ---- the integer-width rule -------------------------------------------------------------

def integer_class(kind: str, bits: int) -> str | None:
    """The narrowest signed class that holds every value of an integer type: ``"integer"``
    (32 bits), ``"long"`` (64 bits), or None (uint64). ``kind`` is numpy's ``"i"``/``"u"``."""
    if kind == "i":
        return "integer" if bits <= 32 else "long" if bits <= 64 else None
    if kind == "u":
        return "integer" if bits <= 16 else "long" if bits <= 32 else None
    return None


def integer_fits(kind: str, bits: int, target: str) -> bool:
    """Whether every value of an ``kind``/``bits`` integer type fits ``"integer"``/``"long"``."""
    found = integer_class(kind, bits)
    return found is not None and (found == target or target == "long")


def signature_type_of_numpy(dtype: np.dtype) -> str | None:
    """The signature type inferred for a numpy dtype (None: none). uint64 infers as long, as
    in MLflow, although values above 2**63 do not fit."""
    kind, bits = dtype.kind, dtype.itemsize * 8
    if kind == "b":
        return "boolean"
    if kind in "iu":
        return integer_class(kind, bits) or "long"
    if kind == "f":
        return "float" if bits <= 32 else "double"
    if kind == "M":
        return "datetime"
    if kind in "US":
        return "string" if kind == "U" else "binary"
    return None


def spark_leaf_of_numpy(dtype: np.dtype) -> Any:
    """The Spark type a UDF returns for values of ``dtype`` (None when it cannot)."""
    from pyspark.sql import types as T

    kind, bits = dtype.kind, dtype.itemsize * 8
    if kind == "b":
        return T.BooleanType()
    if kind in "iu":
        found = integer_class(kind, bits)
        return None if found is None else spark_type(found)
    if kind == "f":
        return T.FloatType() if bits <= 32 else T.DoubleType()
    if kind in "OUS":
        return T.StringType()
    return None


def lossless_numpy_cast(src: np.dtype, dst: np.dtype) -> bool:
    """Whether every value of ``src`` is exactly representable in ``dst``.

    A type converts to a wider one of its kind, an unsigned integer to a wider signed one,
    and an integer of 32 bits or fewer to double (int64 → float64 is not exact). Integers
    never become float32, as in MLflow.
    """
    if src == dst:
        return True
    if src.kind == dst.kind and src.kind in "iuf":
        return src.itemsize <= dst.itemsize
    if src.kind == "u" and dst.kind == "i":
        return src.itemsize < dst.itemsize
    if src.kind in "iu" and dst.kind == "f":
        return dst.itemsize == 8 and src.itemsize < 8
    return False
