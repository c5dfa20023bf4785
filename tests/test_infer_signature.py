"""infer_signature from pandas, numpy, dicts, lists and Spark DataFrames."""

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from spark_models.exceptions import SchemaError
from spark_models.models import infer_signature
from spark_models.types import ColSpec, ParamSchema, ParamSpec, Schema, TensorSpec


def test_from_dataframe_with_every_type():
    df = pd.DataFrame(
        {
            "b": [True, False],
            "i": np.array([1, 2], dtype="int32"),
            "l": [1, 2],
            "f": np.array([1.0, 2.0], dtype="float32"),
            "d": [1.0, np.nan],
            "s": ["x", None],
            "by": [b"a", b"b"],
            "t": pd.to_datetime(["2020-01-01", "2020-01-02"]),
            "n": pd.Series([1, None], dtype="Int64"),
            "ns": pd.Series(["a", None], dtype="string"),
            "cat": pd.Series(["a", "b"], dtype="category"),
        }
    )
    sig = infer_signature(df)
    assert [(c.name, c.type.value) for c in sig.inputs] == [
        ("b", "boolean"), ("i", "integer"), ("l", "long"), ("f", "float"), ("d", "double"), ("s", "string"),
        ("by", "binary"), ("t", "datetime"), ("n", "long"), ("ns", "string"), ("cat", "string"),
    ]
    assert sig.outputs is None


def test_one_dimensional_output_is_a_column_not_a_tensor():
    X = pd.DataFrame({"x": [1.0, 2.0]})
    assert infer_signature(X, np.array([0, 1])).outputs == Schema([ColSpec("long")])
    assert infer_signature(X, np.array([0.5, 0.1])).outputs == Schema([ColSpec("double")])
    assert infer_signature(X, ["a", "b"]).outputs == Schema([ColSpec("string")])
    assert infer_signature(X, pd.Series([1.0, 2.0], name="score")).outputs == Schema([ColSpec("double", "score")])
    # 2-D outputs (predict_proba) stay tensors.
    assert infer_signature(X, np.zeros((2, 3))).outputs == Schema([TensorSpec(np.float64, (-1, 3))])


def test_numpy_dict_and_list_inputs():
    assert infer_signature(np.zeros((5, 28, 28), dtype=np.uint8)).inputs == Schema([TensorSpec(np.uint8, (-1, 28, 28))])
    sig = infer_signature({"img": np.zeros((2, 4), np.float32), "ids": np.array([1, 2])})
    assert sig.inputs == Schema([TensorSpec(np.float32, (-1, 4), "img"), TensorSpec(np.int64, (-1,), "ids")])
    assert infer_signature({"a": 1.0, "b": "x"}).inputs == Schema([ColSpec("double", "a"), ColSpec("string", "b")])
    assert infer_signature({"a": [1, 2]}).inputs == Schema([ColSpec("long", "a")])
    assert infer_signature([{"a": 1.0}, {"a": 2.0}]).inputs == Schema([ColSpec("double", "a")])
    assert infer_signature([[1.0, 2.0]]).inputs == Schema([ColSpec("double"), ColSpec("double")])


def test_params():
    sig = infer_signature(pd.DataFrame({"x": [1.0]}), params={"k": 3, "t": 0.5, "on": True, "tags": ["a", "b"], "when": dt.datetime(2024, 1, 1)})
    assert sig.params == ParamSchema([
        ParamSpec("k", "long", 3), ParamSpec("t", "double", 0.5), ParamSpec("on", "boolean", True),
        ParamSpec("tags", "string", ["a", "b"], (-1,)), ParamSpec("when", "datetime", dt.datetime(2024, 1, 1)),
    ])


def test_unsupported_inputs_explain():
    with pytest.raises(SchemaError, match="'v'.*arrays"):
        infer_signature(pd.DataFrame({"v": [np.array([1.0]), np.array([2.0])]}))
    with pytest.raises(SchemaError, match="no non-null values"):
        infer_signature(pd.DataFrame({"v": [None, None]}))
    with pytest.raises(SchemaError, match="Cannot infer a schema from int"):
        infer_signature(3)


@pytest.mark.spark
def test_from_spark_dataframe(spark):

    df = spark.createDataFrame(
        [(True, 1, 2, 1.5, 2.5, "s", bytearray(b"x"), dt.datetime(2020, 1, 1), dt.date(2020, 1, 1))],
        "b boolean, i int, l long, f float, d double, s string, by binary, t timestamp, dd date",
    )
    sig = infer_signature(df)
    assert [c.type.value for c in sig.inputs] == ["boolean", "integer", "long", "float", "double", "string", "binary", "datetime", "datetime"]
    arrays = spark.createDataFrame([([1.0, 2.0], [[1, 2]])], "v array<double>, m array<array<int>>")
    assert infer_signature(arrays).inputs == Schema([TensorSpec(np.float64, (-1, -1), "v"), TensorSpec(np.int32, (-1, -1, -1), "m")])
    with pytest.raises(SchemaError, match=r"Columns \['v'\] are arrays"):
        infer_signature(spark.createDataFrame([(1.0, [1.0])], "x double, v array<double>"))
    mapped = infer_signature(spark.createDataFrame([({"a": 1},)], "m map<string,int>"))
    assert repr(mapped.inputs) == "['m': Map(str -> integer)]"  # MLflow 3's map type


def test_schema_spark_round_trip():
    from pyspark.sql import types as T

    struct = T.StructType([T.StructField("a", T.DoubleType()), T.StructField("b", T.LongType()), T.StructField("s", T.StringType())])
    schema = Schema.from_spark(struct)
    assert schema == Schema([ColSpec("double", "a"), ColSpec("long", "b"), ColSpec("string", "s")])
    assert schema.to_spark() == struct
    tensor = Schema([TensorSpec(np.float32, (-1, 4), "v")])
    assert tensor.to_spark() == T.StructType([T.StructField("v", T.ArrayType(T.FloatType()))])
    with pytest.raises(SchemaError, match="named inputs"):
        Schema([ColSpec("double")]).to_spark()
