"""Signature enforcement: every rule of the reference doc, and where we go beyond MLflow."""

import logging

import numpy as np
import pandas as pd
import pytest

import spark_models.pyfunc
from spark_models.schema.enforcement import enforce_params, enforce_schema
from spark_models.exceptions import SchemaEnforcementError
from spark_models.models import ModelSignature
from spark_models.types import ColSpec, ParamSchema, ParamSpec, Schema, TensorSpec

TYPES = ["boolean", "integer", "long", "float", "double", "string", "binary", "datetime"]

# input column → the signature types it is accepted as (and the dtype it becomes).
# Everything not listed is refused. This table is the documentation of the rules.
ACCEPTED = {
    "bool": {"boolean": "bool"},
    "int8": {"integer": "int32", "long": "int64", "double": "float64"},
    "int16": {"integer": "int32", "long": "int64", "double": "float64"},
    "int32": {"integer": "int32", "long": "int64", "double": "float64"},
    "int64": {"long": "int64"},  # int64 → double can lose precision: refused, as the reference doc says
    "uint8": {"integer": "int32", "long": "int64", "double": "float64"},
    "uint32": {"long": "int64", "double": "float64"},
    "uint64": {},
    "float32": {"float": "float32", "double": "float64"},
    "float64": {"double": "float64"},
    "float64_nan": {"double": "float64"},
    "str": {"string": "object"},
    "bytes": {"binary": "object"},
    "datetime_ns": {"datetime": "datetime64[ns]"},
    "datetime_s": {"datetime": "datetime64[ns]"},  # column specs ignore precision (normalized to ns)
    "py_datetime": {"datetime": "datetime64[ns]"},
    "obj_int": {"long": "int64"},  # object ints are inferred as int64 first
    # pandas nullable dtypes (beyond MLflow's documented behaviour)
    "Int64": {"long": "int64"},
    "Int32": {"integer": "int32", "long": "int64", "double": "float64"},
    # missing values reach the model in a dtype that can hold them (MLflow refuses these)
    "Int32_na": {"integer": "Int32", "long": "Int64", "double": "float64"},
    "Int64_na": {"long": "Int64"},
    "boolean_na": {"boolean": "boolean"},
    "obj_int_na": {"long": "Int64", "double": "float64"},
    "obj_bool_na": {"boolean": "boolean"},
    "all_none": {"boolean": "boolean", "integer": "Int32", "long": "Int64", "float": "float32", "double": "float64",
                 "string": "object", "binary": "object", "datetime": "datetime64[ns]"},
    "decimal": {"double": "float64"},  # Spark's DecimalType: rounded to the nearest double
    "decimal_whole": {"long": "int64", "double": "float64"},
    "iso_str": {"string": "object", "datetime": "datetime64[ns]"},  # ISO 8601 strings parse, as in MLflow 3
    "boolean": {"boolean": "bool"},
    "string": {"string": "object"},
    "string_na": {"string": "object"},
    "Float64_na": {"double": "float64"},
}

from tests.column_cases import COLUMNS


@pytest.mark.parametrize("column", sorted(COLUMNS))
@pytest.mark.parametrize("spec_type", TYPES)
def test_conversion_table(column, spec_type):
    df = pd.DataFrame({"x": COLUMNS[column]})
    expected = ACCEPTED[column].get(spec_type)
    schema = Schema([ColSpec(spec_type, "x")])
    if expected is None:
        with pytest.raises(SchemaEnforcementError) as e:
            enforce_schema(df, schema)
        msg = str(e.value)
        assert "'x'" in msg and f"expected {spec_type}" in msg, msg  # names column and expected type
    else:
        out = enforce_schema(df, schema)
        assert str(out["x"].dtype) == expected
        assert len(out) == 2 and list(out.index) == [0, 1]


def test_error_names_actual_dtype():
    with pytest.raises(SchemaEnforcementError, match=r"Column 'x': expected double, got int64"):
        enforce_schema(pd.DataFrame({"x": [1, 2]}), Schema([ColSpec("double", "x")]))


def test_integers_with_missing_values_explain_the_fix():
    df = pd.DataFrame({"c": [1.0, np.nan]})  # pandas' float NaN: floats never become integers implicitly
    with pytest.raises(SchemaEnforcementError, match=r"float with NaN.*astype\('Int64'\).*declare the column as double"):
        enforce_schema(df, Schema([ColSpec("long", "c")]))
    nullable = enforce_schema(pd.DataFrame({"c": pd.Series([1, None], dtype="Int64")}), Schema([ColSpec("long", "c")]))
    assert str(nullable["c"].dtype) == "Int64" and nullable["c"].isna().tolist() == [False, True]


NAMED = Schema([ColSpec("double", "a"), ColSpec("long", "b")])


def test_missing_inputs_listed():
    with pytest.raises(SchemaEnforcementError, match=r"missing inputs \['b'\]"):
        enforce_schema(pd.DataFrame({"a": [1.0]}), NAMED)


def test_extra_inputs_ignored_and_logged_once(caplog):
    df = pd.DataFrame({"zz_extra": [0], "b": [2], "a": [1.0]})
    with caplog.at_level(logging.INFO, logger="spark_models.schema.enforcement"):
        out = enforce_schema(df, NAMED)
        enforce_schema(df, NAMED)
    assert list(out.columns) == ["a", "b"]  # reordered to the signature, extra dropped
    assert sum("zz_extra" in r.message for r in caplog.records) == 1


def test_reorder_keeps_rows_and_index():
    df = pd.DataFrame({"b": [3, 2, 1], "a": [0.3, 0.2, 0.1]}, index=[10, 5, 7])
    out = enforce_schema(df, NAMED)
    assert list(out.index) == [10, 5, 7] and out["a"].tolist() == [0.3, 0.2, 0.1] and out["b"].tolist() == [3, 2, 1]


def test_unnamed_schema_is_positional_with_count_checked():
    schema = Schema([ColSpec("double"), ColSpec("long")])
    out = enforce_schema(pd.DataFrame({"p": [1.0], "q": [2]}), schema)
    assert list(out.columns) == ["p", "q"]
    out = enforce_schema([[1.0, 2], [3.0, 4]], schema)
    assert out.shape == (2, 2)
    with pytest.raises(SchemaEnforcementError, match="2 unnamed input columns but the input has 3"):
        enforce_schema(pd.DataFrame({"p": [1.0], "q": [2], "r": [3]}), schema)


def test_optional_columns_may_be_absent():
    schema = Schema([ColSpec("double", "a"), ColSpec("string", "note", required=False)])
    out = enforce_schema(pd.DataFrame({"a": [1.0]}), schema)
    assert list(out.columns) == ["a"]
    out = enforce_schema(pd.DataFrame({"a": [1.0], "note": ["hi"]}), schema)
    assert list(out.columns) == ["a", "note"]


def test_dict_list_and_array_inputs_for_named_columns():
    assert enforce_schema({"a": 1.0, "b": 2}, NAMED).to_dict("list") == {"a": [1.0], "b": [2]}
    assert enforce_schema({"a": [1.0, 2.0], "b": np.array([1, 2])}, NAMED).shape == (2, 2)
    assert enforce_schema([{"b": 1, "a": 0.5}], NAMED).columns.tolist() == ["a", "b"]
    out = enforce_schema(np.array([[1.0, 2.0]]), Schema([ColSpec("double", "a"), ColSpec("double", "b")]))
    assert out.columns.tolist() == ["a", "b"]
    with pytest.raises(SchemaEnforcementError, match="3 columns but the signature has 2"):
        enforce_schema(np.zeros((1, 3)), NAMED)


def test_datetime_precision_ignored_for_columns_enforced_for_tensors():
    days = np.array(["2020-01-01", "2020-01-02"], dtype="datetime64[D]")
    assert enforce_schema(pd.DataFrame({"t": days}), Schema([ColSpec("datetime", "t")])).shape == (2, 1)
    enforce_schema(days, Schema([TensorSpec("datetime64[D]", (-1,))]))
    with pytest.raises(SchemaEnforcementError, match=r"expected dtype datetime64\[ns\], got datetime64\[D\]"):
        enforce_schema(days, Schema([TensorSpec("datetime64[ns]", (-1,))]))


def test_tensors_strict_dtype_and_shape():
    schema = Schema([TensorSpec(np.float32, (-1, 2, 2), "img")])
    x = np.zeros((3, 2, 2), dtype=np.float32)
    assert enforce_schema(x, schema) is x
    with pytest.raises(SchemaEnforcementError, match="expected dtype float32, got float64"):
        enforce_schema(x.astype(np.float64), schema)
    with pytest.raises(SchemaEnforcementError, match=r"expected shape \(-1, 2, 2\).*got \(3, 2, 3\)"):
        enforce_schema(np.zeros((3, 2, 3), dtype=np.float32), schema)
    with pytest.raises(SchemaEnforcementError, match="shape"):
        enforce_schema(np.zeros((3, 4), dtype=np.float32), schema)


def test_multi_input_tensors_as_dict():
    schema = Schema([TensorSpec(np.float32, (-1, 2), "x"), TensorSpec(np.int64, (-1,), "ids")])
    data = {"x": np.ones((2, 2), np.float32), "ids": np.array([1, 2])}
    out = enforce_schema(data, schema)
    assert set(out) == {"x", "ids"}
    with pytest.raises(SchemaEnforcementError, match=r"missing tensor inputs \['ids'\]"):
        enforce_schema({"x": data["x"]}, schema)
    with pytest.raises(SchemaEnforcementError, match="pass a dict"):
        enforce_schema(data["x"], schema)


def test_no_schema_passes_data_untouched():
    df = pd.DataFrame({"a": [1]})
    assert enforce_schema(df, None) is df
    arr = np.zeros(3)
    assert enforce_schema(arr, None) is arr


def test_params():
    schema = ParamSchema([ParamSpec("k", "long", 1), ParamSpec("t", "double", 0.5), ParamSpec("tags", "string", ["a"], (-1,))])
    assert enforce_params(None, schema) == {"k": 1, "t": 0.5, "tags": ["a"]}
    assert enforce_params({"k": 3, "t": 1}, schema) == {"k": 3, "t": 1.0, "tags": ["a"]}
    with pytest.raises(SchemaEnforcementError, match="Param 'k': expected long"):
        enforce_params({"k": "three"}, schema)
    with pytest.raises(SchemaEnforcementError, match="Param 'tags': expected a list"):
        enforce_params({"tags": "x"}, schema)


class Echo(spark_models.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        return {"input": model_input, "params": params}


def test_enforced_inside_pyfunc_predict(tmp_model_dir):
    sig = ModelSignature(NAMED, params=ParamSchema([ParamSpec("k", "long", 7)]))
    spark_models.pyfunc.save_model(tmp_model_dir, python_model=Echo(), signature=sig)
    model = spark_models.pyfunc.load_model(tmp_model_dir)
    out = model.predict(pd.DataFrame({"b": np.array([1, 2], dtype="int32"), "a": [0.5, 1.5], "x": [0, 0]}))
    assert list(out["input"].columns) == ["a", "b"] and out["input"]["b"].dtype == np.int64
    assert out["params"] == {"k": 7}
    with pytest.raises(SchemaEnforcementError, match="missing inputs"):
        model.predict(pd.DataFrame({"a": [1.0]}))
