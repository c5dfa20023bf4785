"""spark_udf result_type: which model output columns each type takes, nulls, and errors.

Columns are chosen by type, never by the values of one batch: the Spark tests run with
``batch_size=1`` so every row is its own batch, where value-based choices would differ.
"""

import re

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import types as T

import spark_models.pyfunc
from spark_models.exceptions import InvalidArgumentError, SchemaEnforcementError
from spark_models.models import ModelSignature
from spark_models.types import ColSpec, Schema, TensorSpec
from udf.outputs import coerce_output
from udf.result_types import parse_result_type

pytestmark = pytest.mark.spark

INPUT = ModelSignature(Schema([ColSpec("long", "x")]))


class FixedOutput(spark_models.pyfunc.PythonModel):
    """Answers input row ``x`` with row ``x`` of fixed columns: {name: (dtype, values)}."""

    def __init__(self, columns):
        self.columns = columns

    def predict(self, context, model_input):
        rows = model_input["x"].tolist()
        return pd.DataFrame({name: pd.Series([values[i] for i in rows], dtype=dtype)
                             for name, (dtype, values) in self.columns.items()})


def _save(tmp_path, columns, signature=INPUT, name="m"):
    path = tmp_path / name
    spark_models.pyfunc.save_model(path, python_model=FixedOutput(columns), signature=signature)
    return str(path)


def _score(spark, path, result_type, rows=3, batch_size=1):
    u = spark_models.pyfunc.spark_udf(spark, path, result_type=result_type, batch_size=batch_size)
    df = spark.range(0, rows, numPartitions=1).withColumnRenamed("id", "x")
    got = [r.p for r in df.withColumn("p", u()).orderBy("x").collect()]
    return [r.asDict() if isinstance(r, T.Row) else r for r in got]


class BigAndSmall(spark_models.pyfunc.PythonModel):
    """The audit's repro: an int64 column whose first value fits int32, then an int32 one."""

    def predict(self, context, model_input):
        x = model_input["x"].to_numpy()
        return pd.DataFrame({"big": x.astype(np.int64) * 10**12 + 7, "small": x.astype(np.int32)})


@pytest.mark.parametrize(
    "result_type, expected",
    [
        ("int", [0, 1, 2, 3]),
        ("long", [7, 10**12 + 7, 2 * 10**12 + 7, 3 * 10**12 + 7]),
        ("array<int>", [[0], [1], [2], [3]]),
        ("array<long>", [[7, 0], [10**12 + 7, 1], [2 * 10**12 + 7, 2], [3 * 10**12 + 7, 3]]),
    ],
)
def test_columns_are_chosen_by_dtype_not_by_each_batch_values(spark, tmp_path, result_type, expected):
    spark_models.pyfunc.save_model(tmp_path / "m", python_model=BigAndSmall(), signature=INPUT)
    assert _score(spark, str(tmp_path / "m"), result_type, rows=4, batch_size=1) == expected


# Each case puts columns that do not fit leftmost, chosen so that a value-based or
# leftmost-wins choice takes them, then the column that fits, with a null in row 1.
T0 = pd.Timestamp("2020-01-02 03:04:05")
LEFTMOST_CASES = {
    "int": ({"i64": ("int64", [0, 1, 2]), "u32": ("uint32", [0, 1, 2]), "f": ("float64", [0.0, 1.0, 2.0]),
             "want": ("object", [10, None, 12])}, [10, None, 12]),
    "long": ({"u64": ("uint64", [0, 1, 2]), "f": ("float64", [0.0, 1.0, 2.0]), "flag": ("bool", [True] * 3),
              "want": ("Int64", [10**12, None, 12])}, [10**12, None, 12]),
    "float": ({"s": ("object", ["1.5", "2", "3"]), "flag": ("bool", [True, False, True]),
               "want": ("float32", [0.5, np.nan, 2.5])}, [0.5, None, 2.5]),
    "double": ({"s": ("object", ["1.5", "2", "3"]), "flag": ("bool", [True, False, True]), "t": ("datetime64[ns]", [T0] * 3),
                "want": ("object", [0.25, None, 7])}, [0.25, None, 7.0]),
    "boolean": ({"i": ("int8", [0, 1, 1]), "s": ("object", ["True", "False", "True"]),
                 "want": ("object", [True, None, False])}, [True, None, False]),
    "string": ({"t": ("datetime64[ns]", [T0, pd.NaT, T0]), "s": ("object", ["a", "b", "c"])},
               ["2020-01-02 03:04:05", None, "2020-01-02 03:04:05"]),
}


@pytest.mark.parametrize("result_type", sorted(LEFTMOST_CASES))
def test_leftmost_fitting_column_with_nulls(spark, tmp_path, result_type):
    columns, expected = LEFTMOST_CASES[result_type]
    assert _score(spark, _save(tmp_path, columns), result_type) == expected


NULLS = {
    "s": ("object", ["a", None, "c"]),
    "n": ("object", [1, None, 3]),
    "flag": ("object", [True, None, False]),
    "t": ("datetime64[ns]", [T0, pd.NaT, T0]),
}


def test_nulls_in_arrays_and_structs(spark, tmp_path):
    path = _save(tmp_path, NULLS)
    assert _score(spark, path, "array<long>", batch_size=None) == [[1], [None], [3]]
    assert _score(spark, path, "array<string>") == [
        ["a", "1", "True", "2020-01-02 03:04:05"], [None, None, None, None], ["c", "3", "False", "2020-01-02 03:04:05"]]
    assert _score(spark, path, "struct<t:string,n:int,flag:boolean>") == [
        {"t": "2020-01-02 03:04:05", "n": 1, "flag": True}, {"t": None, "n": None, "flag": None},
        {"t": "2020-01-02 03:04:05", "n": 3, "flag": False}]


def test_all_null_batch_gives_null_array_unless_the_signature_types_the_outputs(spark, tmp_path):
    # Row 1 alone: s, n and flag are all None, so nothing says which of them are integers.
    assert _score(spark, _save(tmp_path, NULLS), "array<long>", batch_size=1) == [[1], None, [3]]
    outputs = Schema([ColSpec("string", "s"), ColSpec("long", "n"), ColSpec("boolean", "flag"), ColSpec("datetime", "t")])
    typed = _save(tmp_path, NULLS, signature=ModelSignature(INPUT.inputs, outputs), name="typed")
    assert _score(spark, typed, "array<long>", batch_size=1) == [[1], [None], [3]]
    assert _score(spark, typed, "boolean", batch_size=1) == [True, None, False]


class NullableCounts(spark_models.pyfunc.PythonModel):
    """Integers with a missing value: pandas makes them float64 with NaN in that batch only."""

    def predict(self, context, model_input):
        counts = [None if x == 1 else int(x) * 10 for x in model_input["x"]]
        return pd.DataFrame({"count": pd.Series(counts), "other": model_input["x"].astype(np.int32) + 100})


def test_signature_declared_output_types_pin_the_column(spark, tmp_path):
    outputs = Schema([ColSpec("long", "count"), ColSpec("integer", "other")])
    spark_models.pyfunc.save_model(tmp_path / "m", python_model=NullableCounts(),
                                   signature=ModelSignature(INPUT.inputs, outputs))
    # count is float64 in the batch with the null and int64 elsewhere; declared long, it is
    # taken in every batch and its NaN becomes null.
    assert _score(spark, str(tmp_path / "m"), "long") == [0, None, 20]
    assert _score(spark, str(tmp_path / "m"), "array<long>") == [[0, 100], [None, 101], [20, 102]]


def test_single_float_output_with_nan_is_a_nullable_integer(spark, tmp_path):
    class Counts(spark_models.pyfunc.PythonModel):
        def predict(self, context, model_input):
            return pd.Series([None if x == 1 else int(x) for x in model_input["x"]])

    spark_models.pyfunc.save_model(tmp_path / "m", python_model=Counts(), signature=INPUT)
    for result_type in ("int", "long"):
        assert _score(spark, str(tmp_path / "m"), result_type, batch_size=None) == [0, None, 2]
    with pytest.raises(SchemaEnforcementError, match="not whole"):
        coerce_output(pd.Series([0.5, np.nan]), T.IntegerType(), 2)


def test_struct_with_prediction_and_probability_array(spark, tmp_path):
    class Classifier(spark_models.pyfunc.PythonModel):
        def predict(self, context, model_input):
            x = model_input["x"].to_numpy()
            proba = np.column_stack([1 - x / 4, x / 4])
            return {"prediction": (x > 1).astype(np.int64), "probability": proba}

    spark_models.pyfunc.save_model(tmp_path / "m", python_model=Classifier(), signature=INPUT)
    got = _score(spark, str(tmp_path / "m"), "struct<prediction:double,probability:array<double>>", batch_size=None)
    assert got == [{"prediction": 0.0, "probability": [1.0, 0.0]}, {"prediction": 0.0, "probability": [0.75, 0.25]},
                   {"prediction": 1.0, "probability": [0.5, 0.5]}]


def test_named_outputs_derive_a_struct(spark, tmp_path):
    outputs = Schema([ColSpec("long", "label"), ColSpec("double", "score"), ColSpec("string", "name")])
    path = _save(tmp_path, {"label": ("int64", [0, 1, 1]), "score": ("float64", [0.0, np.nan, 0.5]),
                            "name": ("object", ["a", None, "c"])}, signature=ModelSignature(INPUT.inputs, outputs))
    u = spark_models.pyfunc.spark_udf(spark, path)
    assert u.return_type == T.StructType([T.StructField("label", T.LongType()), T.StructField("score", T.DoubleType()),
                                          T.StructField("name", T.StringType())])
    assert _score(spark, path, None) == [{"label": 0, "score": 0.0, "name": "a"},
                                         {"label": 1, "score": None, "name": None},
                                         {"label": 1, "score": 0.5, "name": "c"}]


@pytest.mark.parametrize(
    "outputs, message",
    [
        (Schema([ColSpec("datetime", "when")]), "output 'when' has type datetime"),
        (Schema([ColSpec("double", "p"), ColSpec("binary", "raw")]), "output 'raw' has type binary"),
        (Schema([TensorSpec(np.uint64, (-1,), "ids")]), "output 'ids' is a tensor.*dtype uint64"),
        (Schema([TensorSpec(np.float32, (-1, 2, 2, 2), "img")]), "output 'img' is a tensor.*3 dimensions per row"),
    ],
)
def test_signature_output_spark_cannot_return_fails_on_the_driver(spark, tmp_path, outputs, message):
    path = _save(tmp_path, {"x": ("int64", [0, 1, 2])}, signature=ModelSignature(INPUT.inputs, outputs))
    with pytest.raises(InvalidArgumentError, match=message):
        spark_models.pyfunc.spark_udf(spark, path)
    assert spark_models.pyfunc.spark_udf(spark, path, result_type="string").return_type == T.StringType()


def test_signature_tensor_outputs_map_to_scalars_and_arrays():
    sig = lambda *specs: ModelSignature(INPUT.inputs, Schema(list(specs)))  # noqa: E731
    assert parse_result_type(None, sig(TensorSpec(np.float32, (-1,)))) == T.FloatType()
    assert parse_result_type(None, sig(TensorSpec(np.int64, (-1, 3)))) == T.ArrayType(T.LongType())
    assert parse_result_type(None, sig(ColSpec("long"), ColSpec("double"))) == T.ArrayType(T.DoubleType())
    assert parse_result_type(None, None) == T.DoubleType()


# ---- coerce_output without Spark -------------------------------------------------------

@pytest.mark.parametrize(
    "frame, result_type",
    [
        (pd.DataFrame({"name": ["a", "b"]}), T.IntegerType()),
        (pd.DataFrame({"u32": np.array([1, 2], np.uint32), "f": [1.0, 2.0]}), T.IntegerType()),
        (pd.DataFrame({"u64": np.array([1, 2], np.uint64), "f": [1.0, 2.0]}), T.LongType()),
        (pd.DataFrame({"s": ["1.5", "2"], "flag": [True, False]}), T.FloatType()),
        (pd.DataFrame({"s": ["1.5", "2"], "t": pd.to_datetime(["2020-01-01", "2020-01-02"])}), T.DoubleType()),
        (pd.DataFrame({"s": ["a", "b"], "i": [1, 0]}), T.BooleanType()),
        (pd.DataFrame({"s": ["a", "b"], "f": [1.0, 2.0]}), T.ArrayType(T.IntegerType())),
        (pd.DataFrame({"u64": np.array([1, 2], np.uint64), "s": ["a", "b"]}), T.ArrayType(T.LongType())),
        (pd.DataFrame({"s": ["a", "b"], "flag": [True, False]}), T.ArrayType(T.DoubleType())),
        (pd.DataFrame({"i": [1, 0], "f": [1.0, 2.0]}), T.ArrayType(T.BooleanType())),
    ],
)
def test_no_fitting_column_is_an_error_listing_the_outputs(frame, result_type):
    listed = re.escape(", ".join(f"{c} ({frame[c].dtype})" for c in frame.columns))
    with pytest.raises(SchemaEnforcementError, match=f"fits result_type {re.escape(result_type.simpleString())}.*{listed}"):
        coerce_output(frame, result_type, 2)


def test_unsigned_columns_are_skipped_not_cast():
    frame = pd.DataFrame({"u32": np.array([1, 2], np.uint32), "u64": np.array([3, 4], np.uint64), "i16": np.array([5, 6], np.int16)})
    assert coerce_output(frame, T.IntegerType(), 2).tolist() == [5, 6]
    assert coerce_output(frame, T.LongType(), 2).tolist() == [1, 2]  # uint32 fits in long
    assert coerce_output(frame, T.ArrayType(T.LongType()), 2).tolist() == [[1, 5], [2, 6]]


def test_all_null_object_column_is_taken_only_when_nothing_else_fits():
    assert coerce_output(pd.DataFrame({"name": [None], "flag": [True]}), T.BooleanType(), 1).tolist() == [True]
    assert coerce_output(pd.DataFrame({"flag": [None]}, dtype=object), T.BooleanType(), 1).tolist() == [None]
    declared = {"name": ("b", 8), "flag": ("b", 8)}
    assert coerce_output(pd.DataFrame({"name": [None], "flag": [True]}), T.BooleanType(), 1, declared).tolist() == [None]


def test_values_that_do_not_fit_a_chosen_column_name_it():
    frame = pd.DataFrame({"label": np.array([1, 2**40]), "name": ["a", "b"]})
    with pytest.raises(SchemaEnforcementError, match="'label'.*1099511627776 do not fit in int"):
        coerce_output(frame, parse_result_type(T.StructType([T.StructField("label", T.IntegerType())])), 2)
    with pytest.raises(SchemaEnforcementError, match="'name'.*does not convert to double.*numbers"):
        coerce_output(frame, T.StructType([T.StructField("name", T.DoubleType())]), 2)
    with pytest.raises(SchemaEnforcementError, match="struct fields \\['score'\\] are not among.*\\['label', 'name'\\]"):
        coerce_output(frame, T.StructType([T.StructField("score", T.DoubleType())]), 2)
    with pytest.raises(SchemaEnforcementError, match="returned 1 rows for a batch of 2"):
        coerce_output(np.array([1.0]), T.DoubleType(), 2)


def test_unsupported_result_types_are_refused():
    assert parse_result_type("array<array<double>>") == T.ArrayType(T.ArrayType(T.DoubleType()))  # 2-D tensor rows
    for bad in (T.MapType(T.StringType(), T.IntegerType()), T.ArrayType(T.ArrayType(T.ArrayType(T.DoubleType()))),
                T.StructType([T.StructField("s", T.StructType([T.StructField("a", T.IntegerType())]))]),
                T.TimestampType()):
        with pytest.raises(InvalidArgumentError, match="Unsupported result_type"):
            parse_result_type(bad)
