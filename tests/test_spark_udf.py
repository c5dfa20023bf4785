"""spark_udf on local[2]: binding by name, result types, nulls, order, errors."""

import re

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import functions as F
from pyspark.sql import types as T

import spark_models.pyfunc
import spark_models.sklearn
from spark_models.exceptions import InvalidArgumentError, SchemaEnforcementError
from spark_models.models import ModelSignature, infer_signature
from spark_models.types import ColSpec, Schema, TensorSpec
from udf.outputs import coerce_output
from udf.result_types import parse_result_type

pytestmark = pytest.mark.spark


@pytest.fixture(scope="module")
def lr_model(tmp_path_factory):
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.random(200), "b": rng.random(200)})
    model = LogisticRegression().fit(X, (X.a > X.b).astype(int))
    path = tmp_path_factory.mktemp("udf") / "lr"
    spark_models.sklearn.save_model(model, path, signature=infer_signature(X, model.predict(X)))
    return model, X, str(path)


class Outputs(spark_models.pyfunc.PythonModel):
    """Returns several typed columns, with nulls, to exercise result_type coercion."""

    def predict(self, context, model_input):
        x = model_input["x"].to_numpy()
        return pd.DataFrame({
            "label": (x > 0).astype(np.int32),
            "score": np.where(x == 2, np.nan, x * 0.5),
            "name": [None if v == 2 else f"n{v}" for v in x],
            "big": x.astype(np.int64) * 10**12,
        })


@pytest.fixture(scope="module")
def outputs_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("udf") / "outputs"
    sig = ModelSignature(Schema([ColSpec("long", "x")]))
    spark_models.pyfunc.save_model(path, python_model=Outputs(), signature=sig)
    return str(path)


def test_binding_by_signature_and_by_spark_names(spark, lr_model):
    model, X, path = lr_model
    u = spark_models.pyfunc.spark_udf(spark, path)
    assert u.return_type == T.LongType()  # from the signature's 1-D output
    df = spark.createDataFrame(X.assign(id=range(len(X)))).repartition(3)
    out = (
        df.withColumn("p1", u())
        .withColumn("p2", u("b", "a"))
        .withColumn("p3", u(F.col("b"), F.col("a")))
        .withColumn("p4", u(F.struct("a", "b")))
        .withColumn("p5", u(a="b", b="a"))  # keyword: model input a ← column b
        .toPandas()
        .sort_values("id")
    )
    expected = model.predict(X)
    for c in ("p1", "p2", "p3", "p4"):
        np.testing.assert_array_equal(out[c].to_numpy(), expected, err_msg=c)
    np.testing.assert_array_equal(out["p5"].to_numpy(), model.predict(X.rename(columns={"a": "b", "b": "a"})[["a", "b"]]))


def test_missing_columns_fail_on_the_driver_naming_them(spark, tmp_path):
    from sklearn.linear_model import LinearRegression

    X = pd.DataFrame({"a": [0.0, 1.0, 2.0], "bee": [1.0, 0.0, 1.0], "cee": [1.0, 2.0, 0.0]})
    model = LinearRegression().fit(X, X.a)
    spark_models.sklearn.save_model(model, tmp_path / "m", signature=infer_signature(X, model.predict(X)))
    u = spark_models.pyfunc.spark_udf(spark, str(tmp_path / "m"))
    df = spark.createDataFrame(X[["a"]])
    with pytest.raises(Exception, match="UNRESOLVED_COLUMN") as err:
        df.withColumn("p", u())  # analysis, before any job runs
    message = str(err.value)
    assert "`bee`" in message and "[`a`]" in message  # the first missing one, and what exists
    assert "spark_models_predict(" in message and "'bee" in message and "'cee" in message  # every missing one, in the plan
    # With the DataFrame in hand: one error naming every missing column and the model.
    expected = f"Model '{tmp_path / 'm'}' needs input columns the DataFrame lacks: \\['bee', 'cee'\\]; its columns are \\['a'\\]"
    with pytest.raises(SchemaEnforcementError, match=expected):
        df.transform(u.validate)
    with pytest.raises(SchemaEnforcementError, match="lacks: \\['x', 'y'\\]"):
        u.validate(df, "a", F.col("x"), F.col("y") + 1)  # also Column expressions
    with pytest.raises(SchemaEnforcementError, match="lacks: \\['nope'\\]"):
        u.validate(df, a="a", bee="nope")
    with pytest.raises(SchemaEnforcementError, match="lacks: \\['st.zz'\\]"):
        u.validate(df.withColumn("st", F.struct("a")), F.col("st.zz"))  # a missing struct field
    from pyspark.errors import AnalysisException

    with pytest.raises(AnalysisException, match="DATATYPE_MISMATCH"):  # not a missing column: Spark's error
        u.validate(df, F.col("a").cast("array<int>"))
    full = spark.createDataFrame(X)
    assert full.transform(u.validate) is full
    assert u.validate(full, F.struct("a", "bee", "cee")) is full


class ColumnsSeen(spark_models.pyfunc.PythonModel):
    """Answers each row with the columns the model was given: "name=value;..."."""

    def predict(self, context, model_input):
        return [";".join(f"{c}={row[c]}" for c in model_input.columns) for _, row in model_input.iterrows()]


def test_single_argument_is_a_struct_s_fields_or_one_named_column(spark, tmp_path):
    spark_models.pyfunc.save_model(tmp_path / "m", python_model=ColumnsSeen())
    u = spark_models.pyfunc.spark_udf(spark, str(tmp_path / "m"), result_type="string")
    df = spark.createDataFrame([(1.0, 2.0)], "a double, b double").withColumn("st", F.struct("a", "b"))
    row = df.select(
        u(F.col("st")).alias("struct_column"),
        u("st").alias("struct_by_name"),
        u(F.struct("a", "b")).alias("built_struct"),
        u(F.to_json(F.struct("a")).alias("s")).alias("json"),
        u(F.col("a").alias("z")).alias("aliased"),
        u(F.col("st.b")).alias("nested_field"),
        u(F.col("a"), F.col("st")).alias("struct_among_others"),
        u(st="st").alias("struct_by_keyword"),
    ).first()
    assert row.struct_column == row.struct_by_name == row.built_struct == "a=1.0;b=2.0"
    assert row.json == 's={"a":1.0}'
    assert row.aliased == "z=1.0"
    assert row.nested_field == "b=2.0"
    assert row.struct_among_others == "a=1.0;st={'a': 1.0, 'b': 2.0}"
    assert row.struct_by_keyword == "st={'a': 1.0, 'b': 2.0}"
    with pytest.raises(InvalidArgumentError, match="\\['a'\\] are passed more than once"):
        u(F.col("a"), F.col("st.a"))


class FirstMinusSecond(spark_models.pyfunc.PythonModel):
    def predict(self, context, model_input):
        return model_input.iloc[:, 0] - model_input.iloc[:, 1]


def test_unnamed_signature_binds_by_position(spark, tmp_path):
    sig = ModelSignature(Schema([ColSpec("double"), ColSpec("double")]), Schema([ColSpec("double")]))
    spark_models.pyfunc.save_model(tmp_path / "m", python_model=FirstMinusSecond(), signature=sig)
    u = spark_models.pyfunc.spark_udf(spark, str(tmp_path / "m"))
    df = spark.createDataFrame([(5.0, 2.0)], "a double, b double")
    row = df.select(u("a", "b").alias("ab"), u("b", "a").alias("ba"), u(F.col("b"), F.col("a")).alias("cols")).first()
    assert (row.ab, row.ba, row.cols) == (3.0, -3.0, -3.0)
    with pytest.raises(InvalidArgumentError, match="unnamed inputs"):
        u()


def test_output_that_does_not_convert_names_model_and_columns(spark, tmp_path):
    class Words(spark_models.pyfunc.PythonModel):
        def predict(self, context, model_input):
            return pd.DataFrame({"word": ["w"] * len(model_input)})

    spark_models.pyfunc.save_model(tmp_path / "words", python_model=Words())
    u = spark_models.pyfunc.spark_udf(spark, str(tmp_path / "words"), result_type="double")
    expected = re.escape(f"Model '{tmp_path / 'words'}'") + ".*columns \\['a'\\].*No model output column fits result_type double.*word \\(object\\)"
    with pytest.raises(Exception, match=expected):
        spark.createDataFrame(pd.DataFrame({"a": [1.0]})).withColumn("p", u("a")).collect()


def test_row_count_order_and_empty_inputs(spark, lr_model):
    model, X, path = lr_model
    u = spark_models.pyfunc.spark_udf(spark, path, result_type="double", batch_size=7)
    df = spark.createDataFrame(X.assign(id=range(len(X)))).repartition(4, "id").sortWithinPartitions(F.desc("id"))
    rows = df.withColumn("p", u()).collect()
    assert len(rows) == len(X)
    for r in rows:
        assert r.p == float(model.predict(pd.DataFrame({"a": [r.a], "b": [r.b]}))[0])
    assert df.limit(0).withColumn("p", u()).count() == 0
    assert df.filter("id < 3").repartition(8).withColumn("p", u()).count() == 3  # most partitions empty


@pytest.mark.parametrize(
    "result_type, expected",
    [
        ("int", [0, 1, 1]),
        ("long", [0, 1, 1]),
        (T.DoubleType(), [0.0, 1.0, 1.0]),
        ("float", [0.0, 1.0, 1.0]),
        ("string", ["0", "1", "1"]),
        (T.ArrayType(T.LongType()), [[0, 0], [1, 1000000000000], [1, 2000000000000]]),
        ("array<double>", [[0.0, 0.0, 0.0], [1.0, 0.5, 1e12], [1.0, None, 2e12]]),
        ("array<string>", [["0", "0.0", "n0", "0"], ["1", "0.5", "n1", "1000000000000"], ["1", None, None, "2000000000000"]]),
        ("struct<label:int,score:double,name:string>", [(0, 0.0, "n0"), (1, 0.5, "n1"), (1, None, None)]),
    ],
)
def test_result_types(spark, outputs_model, result_type, expected):
    u = spark_models.pyfunc.spark_udf(spark, outputs_model, result_type=result_type)
    df = spark.createDataFrame(pd.DataFrame({"x": [0, 1, 2]}))
    got = [r.p for r in df.withColumn("p", u()).orderBy("x").collect()]
    got = [tuple(g) if isinstance(g, T.Row) else g for g in got]
    assert got == expected


def test_no_compatible_column_is_a_clear_error():
    frame = pd.DataFrame({"name": ["a", "b"]})
    with pytest.raises(SchemaEnforcementError, match="No model output column fits result_type int.*name \\(object\\)"):
        coerce_output(frame, T.IntegerType(), 2)
    with pytest.raises(SchemaEnforcementError, match="returned 1 rows for a batch of 2"):
        coerce_output(np.array([1.0]), T.DoubleType(), 2)
    with pytest.raises(InvalidArgumentError, match="Unsupported result_type"):
        parse_result_type("map<string,int>")


def test_model_error_names_model_and_columns(spark, tmp_path):
    class Boom(spark_models.pyfunc.PythonModel):
        def predict(self, context, model_input):
            raise ValueError("kaput")

    spark_models.pyfunc.save_model(tmp_path / "boom", python_model=Boom())
    u = spark_models.pyfunc.spark_udf(spark, str(tmp_path / "boom"))
    with pytest.raises(Exception, match=r"boom.*columns \['a', 'b'\].*kaput"):
        spark.createDataFrame(pd.DataFrame({"a": [1.0], "b": [2.0]})).withColumn("p", u("a", "b")).collect()


def test_tensor_signature_reshapes_array_column(spark, tmp_path):
    class SumImage(spark_models.pyfunc.PythonModel):
        def predict(self, context, model_input):
            assert model_input.shape[1:] == (2, 2) and model_input.dtype == np.float32
            return model_input.reshape(len(model_input), -1).sum(axis=1)

    sig = ModelSignature(Schema([TensorSpec(np.float32, (-1, 2, 2))]), Schema([ColSpec("float")]))
    spark_models.pyfunc.save_model(tmp_path / "t", python_model=SumImage(), signature=sig)
    u = spark_models.pyfunc.spark_udf(spark, str(tmp_path / "t"))
    df = spark.createDataFrame([([1.0, 2.0, 3.0, 4.0],), ([0.5, 0.5, 0.5, 0.5],)], "img array<double>")
    assert [r.p for r in df.withColumn("p", u("img")).collect()] == [10.0, 2.0]


def test_params_validated_on_the_driver(spark, lr_model):
    _, _, path = lr_model
    with pytest.raises(InvalidArgumentError, match="env_manager"):
        spark_models.pyfunc.spark_udf(spark, path, env_manager="pip")
    with pytest.raises(InvalidArgumentError, match="batch_size"):
        spark_models.pyfunc.spark_udf(spark, path, batch_size=0)


def test_boolean_result_type_takes_leftmost_bool_column():
    frame = pd.DataFrame({"s": ["a", "b"], "flag": [True, False], "other": [False, False]})
    assert coerce_output(frame, parse_result_type("boolean"), 2).tolist() == [True, False]
    with pytest.raises(SchemaEnforcementError, match="boolean"):
        coerce_output(pd.DataFrame({"s": ["a"]}), T.BooleanType(), 1)


class BatchSizes(spark_models.pyfunc.PythonModel):
    """Answers each row with the size of the batch it was scored in, scaled by a param."""

    def predict(self, context, model_input, params=None):
        scale = (params or {}).get("scale", 1)
        return pd.Series(np.full(len(model_input), len(model_input) * scale, dtype=np.int64))


@pytest.fixture(scope="module")
def sizes_model(tmp_path_factory):
    from spark_models.types import ParamSchema, ParamSpec

    path = tmp_path_factory.mktemp("udf") / "sizes"
    sig = ModelSignature(Schema([ColSpec("long", "x")]), Schema([ColSpec("long")]),
                         params=ParamSchema([ParamSpec("scale", "long", 1)]))
    spark_models.pyfunc.save_model(path, python_model=BatchSizes(), signature=sig)
    return str(path)


@pytest.fixture
def small_arrow_batches(spark):
    key = "spark.sql.execution.arrow.maxRecordsPerBatch"
    old = spark.conf.get(key)
    spark.conf.set(key, "5")
    yield
    spark.conf.set(key, old)


def test_batch_size_is_independent_of_arrow_batches(spark, sizes_model, small_arrow_batches):
    df = spark.range(0, 23, numPartitions=1).withColumnRenamed("id", "x")
    fixed = spark_models.pyfunc.spark_udf(spark, sizes_model, batch_size=7)
    assert [r.p for r in df.withColumn("p", fixed()).orderBy("x").collect()] == [7] * 21 + [2] * 2
    merged = spark_models.pyfunc.spark_udf(spark, sizes_model)  # default: Arrow batches of 5 merged
    assert {r.p for r in df.withColumn("p", merged()).collect()} == {23}


def test_params_are_validated_once_on_the_driver_and_reach_the_model(spark, sizes_model):
    df = spark.range(0, 4, numPartitions=1).withColumnRenamed("id", "x")
    u = spark_models.pyfunc.spark_udf(spark, sizes_model, params={"scale": np.int32(10)})
    assert {r.p for r in df.withColumn("p", u()).collect()} == {40}
    with pytest.raises(SchemaEnforcementError, match="scale"):
        spark_models.pyfunc.spark_udf(spark, sizes_model, params={"scale": "ten"})


class CountsLoads(spark_models.pyfunc.PythonModel):
    """Appends its process id to a file each time it is loaded."""

    def __init__(self, log_path):
        self.log_path = log_path

    def load_context(self, context):
        import os

        with open(self.log_path, "a") as f:
            f.write(f"{os.getpid()}\n")

    def predict(self, context, model_input):
        return model_input["x"] * 2.0


def test_model_loads_once_per_worker_process(spark, tmp_path, small_arrow_batches):
    log = tmp_path / "loads.txt"
    spark_models.pyfunc.save_model(tmp_path / "m", python_model=CountsLoads(str(log)))
    log.write_text("")  # saving may have loaded it once on the driver
    u = spark_models.pyfunc.spark_udf(spark, str(tmp_path / "m"), batch_size=3)
    assert u.return_type == T.DoubleType()  # no signature: double
    df = spark.range(0, 200, numPartitions=8).selectExpr("cast(id as double) as x")
    for _ in range(2):  # 2 jobs x 8 tasks x many Arrow batches and model batches
        assert df.withColumn("p", u("x")).filter("p != x * 2").count() == 0
    pids = log.read_text().split()
    assert pids and len(pids) == len(set(pids)), f"loaded more than once in a process: {pids}"
    assert len(pids) < 16
