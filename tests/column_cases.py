"""Input columns of every dtype family, shared by the enforcement tests."""

import datetime as _dt
import decimal

import numpy as np
import pandas as pd

COLUMNS = {
    "bool": pd.Series([True, False]),
    "int8": pd.Series([1, 2], dtype="int8"),
    "int16": pd.Series([1, 2], dtype="int16"),
    "int32": pd.Series([1, 2], dtype="int32"),
    "int64": pd.Series([1, 2], dtype="int64"),
    "uint8": pd.Series([1, 2], dtype="uint8"),
    "uint32": pd.Series([1, 2], dtype="uint32"),
    "uint64": pd.Series([1, 2], dtype="uint64"),
    "float32": pd.Series([1.5, 2], dtype="float32"),
    "float64": pd.Series([1.5, 2.0]),
    "float64_nan": pd.Series([1.0, np.nan]),
    "str": pd.Series(["a", "b"]),
    "bytes": pd.Series([b"a", b"b"]),
    "datetime_ns": pd.Series(pd.to_datetime(["2020-01-01", "2020-01-02"])),
    "datetime_s": pd.Series(np.array(["2020-01-01", "2020-01-02"], dtype="datetime64[s]")),
    "py_datetime": pd.Series([_dt.datetime(2020, 1, 1), _dt.datetime(2020, 1, 2)], dtype=object),
    "obj_int": pd.Series([1, 2], dtype=object),
    "Int64": pd.Series([1, 2], dtype="Int64"),
    "Int32": pd.Series([1, 2], dtype="Int32"),
    "Int32_na": pd.Series([1, None], dtype="Int32"),
    "Int64_na": pd.Series([1, None], dtype="Int64"),
    "boolean": pd.Series([True, False], dtype="boolean"),
    "string": pd.Series(["a", "b"], dtype="string"),
    "string_na": pd.Series(["a", None], dtype="string"),
    "Float64_na": pd.Series([1.5, None], dtype="Float64"),
    "boolean_na": pd.Series([True, None], dtype="boolean"),
    "obj_int_na": pd.Series([1, None], dtype=object),
    "obj_bool_na": pd.Series([True, None], dtype=object),
    "all_none": pd.Series([None, None], dtype=object),
    "decimal": pd.Series([decimal.Decimal("1.25"), None], dtype=object),
    "decimal_whole": pd.Series([decimal.Decimal("1"), decimal.Decimal("2")], dtype=object),
    "iso_str": pd.Series(["2020-01-01", "2020-01-02T10:00:00"]),
}
