"""Spark's data as real tables hold it: every Spark column type × every signature type, with nulls,
through spark_udf — what the model sees (dtype and values), or the error and where it comes.

The same values go through ``pyfunc.predict`` (as pandas holds them) and the server (as JSON).
"""

import datetime as dt
import decimal

import numpy as np
import pandas as pd
import pytest
import re

from pyspark.errors import AnalysisException, PythonException, SparkRuntimeException
from pyspark.sql import functions as F

import spark_models.pyfunc
from spark_models.exceptions import SchemaEnforcementError
from spark_models.models import ModelSignature
from spark_models.types import ColSpec, Schema

pytestmark = pytest.mark.spark

BIG = 2**62 + 1  # not exact in a float64: a long column must reach the model exactly
D = decimal.Decimal
# Spark column → (DDL type, values; the middle one is null)
COLUMNS = {
    "long": ("bigint", [1, None, BIG]),
    "int": ("int", [1, None, 3]),
    "short": ("smallint", [1, None, 3]),
    "byte": ("tinyint", [1, None, 3]),
    "bool": ("boolean", [True, None, False]),
    "dec2": ("decimal(10,2)", [D("1.25"), None, D("3.50")]),
    "dec0": ("decimal(9,0)", [D("1"), None, D("3")]),
    "dec20": ("decimal(20,0)", [D("1"), None, D("3")]),
    "float": ("float", [1.5, None, 2.5]),
    "double": ("double", [1.5, None, 2.5]),
    "text": ("string", ["a", None, "c"]),
    "iso": ("string", ["2020-01-01T10:00:00", None, "2021-06-01 12:30:00"]),
    "date": ("date", [dt.date(2020, 1, 1), None, dt.date(2021, 6, 1)]),
    "ts": ("timestamp", [dt.datetime(2020, 1, 1, 10), None, dt.datetime(2021, 6, 1, 12, 30)]),
    "bin": ("binary", [b"a", None, b"c"]),
}
SPECS = ["long", "integer", "double", "float", "boolean", "string", "datetime", "binary"]
T1, T2 = "2020-01-01 10:00:00", "2021-06-01 12:30:00"
INTS = ["1", "<NA>", "3"]
# (column, spec) → (dtype the model sees, its values as strings) for every accepted cell
ACCEPTED = {
    ("long", "long"): ("Int64", ["1", "<NA>", str(BIG)]),
    ("int", "long"): ("Int64", INTS), ("short", "long"): ("Int64", INTS), ("byte", "long"): ("Int64", INTS),
    ("dec0", "long"): ("Int64", INTS),
    ("int", "integer"): ("Int32", INTS), ("short", "integer"): ("Int32", INTS), ("byte", "integer"): ("Int32", INTS),
    ("dec0", "integer"): ("Int32", INTS),
    **{(c, "double"): ("float64", ["1.0", "nan", "3.0"]) for c in ("int", "short", "byte", "dec0", "dec20")},
    ("dec2", "double"): ("float64", ["1.25", "nan", "3.5"]),
    ("float", "double"): ("float64", ["1.5", "nan", "2.5"]), ("double", "double"): ("float64", ["1.5", "nan", "2.5"]),
    ("float", "float"): ("float32", ["1.5", "nan", "2.5"]),
    ("bool", "boolean"): ("boolean", ["True", "<NA>", "False"]),
    ("text", "string"): ("object", ["'a'", "None", "'c'"]), ("iso", "string"): ("object", [f"'{COLUMNS['iso'][1][0]}'", "None", f"'{COLUMNS['iso'][1][2]}'"]),
    **{(c, "datetime"): ("datetime64[ns]", [T1 if c != "date" else "2020-01-01 00:00:00", "NaT",
                                            T2 if c != "date" else "2021-06-01 00:00:00"]) for c in ("iso", "date", "ts")},
    ("bin", "binary"): ("object", ["b'a'", "None", "b'c'"]),
}
# Refused when the UDF is applied (Spark's analysis, on the driver): wrong kind of value altogether.
AT_APPLY = {(c, s) for c in ("bool", "text", "iso", "date", "ts", "bin") for s in ("long", "integer", "double", "float")}
AT_APPLY |= {(c, "boolean") for c in COLUMNS if c != "bool"}


class Sees(spark_models.pyfunc.PythonModel):
    """Returns, per row, the dtype of its input column and the value's text."""

    def predict(self, context, model_input):
        column = model_input["x"]
        return pd.Series([f"{column.dtype}|{_text(v)}" for v in column])


def _text(value):
    if value is pd.NA:
        return "<NA>"
    if isinstance(value, (pd.Timestamp, np.datetime64)):
        return "NaT" if pd.isna(value) else str(pd.Timestamp(value))
    if isinstance(value, (float, np.floating)):
        return repr(float(value))
    if isinstance(value, (np.integer, np.bool_)):
        return str(value.item())
    return repr(value) if isinstance(value, (str, bytes)) or value is None else str(value)


@pytest.fixture(scope="module")
def table(spark):
    from pyspark.sql import types as T

    schema = T._parse_datatype_string(", ".join(f"{c} {ddl}" for c, (ddl, _) in COLUMNS.items()))
    rows = list(zip(*[values for _, values in COLUMNS.values()]))
    # one partition: one batch, with its null (a batch without missing values is plain numpy)
    return spark.createDataFrame(rows, schema).coalesce(1).withColumn("row", F.monotonically_increasing_id())


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("seen")
    paths = {}
    for spec in SPECS:
        signature = ModelSignature(Schema([ColSpec(spec, "x")]), Schema([ColSpec("string")]))
        paths[spec] = str(root / spec)
        spark_models.pyfunc.save_model(paths[spec], python_model=Sees(), signature=signature)
    return paths


@pytest.mark.parametrize("spec", SPECS)
def test_what_the_model_sees_for_each_spark_type(spark, table, models, spec):
    u = spark_models.pyfunc.spark_udf(spark, models[spec])
    accepted = [c for c in COLUMNS if (c, spec) in ACCEPTED]
    out = table.select("row", *[u(x=c).alias(c) for c in accepted]).orderBy("row").toPandas()
    for column in accepted:
        dtype, values = ACCEPTED[(column, spec)]
        assert out[column].tolist() == [f"{dtype}|{v}" for v in values], (column, spec)


@pytest.mark.parametrize("column, spec", sorted((c, s) for c in COLUMNS for s in SPECS if (c, s) not in ACCEPTED))
def test_refusals_name_the_column_its_spark_type_and_the_spec(spark, table, models, column, spec):
    u = spark_models.pyfunc.spark_udf(spark, models[spec])
    ddl = COLUMNS[column][0]
    if (column, spec) in AT_APPLY:
        with pytest.raises(AnalysisException, match="DATATYPE_MISMATCH") as e:
            table.withColumn("p", u(x=column))  # on the driver, before any job
        first = str(e.value).splitlines()[0]
        assert f"({column}," in first and ddl.split("(")[0].upper() in first.upper(), first
    else:
        with pytest.raises(SparkRuntimeException, match=f"USER_RAISED_EXCEPTION.*column '{column}' \\(model input 'x'\\)") as e:
            table.withColumn("p", u(x=column)).collect()  # in the JVM, before the model sees a row
        assert (f"has Spark type {ddl}" in str(e.value) and f"signature's {spec}" in str(e.value)) or \
            "is not an ISO 8601 datetime" in str(e.value)
    if (column, spec) == ("text", "datetime"):
        return  # strings are datetimes when their values parse: only the values can tell
    with pytest.raises(SchemaEnforcementError, match=re.escape(f"column '{column}' (model input 'x') is {ddl}, the signature declares {spec}")):
        u.validate(table, x=column)  # the same verdict, on the driver, in one error


def test_unparseable_datetime_strings_name_the_first_bad_value(spark, models):
    u = spark_models.pyfunc.spark_udf(spark, models["datetime"])
    df = spark.createDataFrame([("2020-01-01",), ("not a date",)], "s string")
    with pytest.raises(SparkRuntimeException, match="column 's' \\(model input 'x'\\) holds not a date, which is not an ISO 8601"):
        df.withColumn("p", u(x="s")).collect()


def test_rows_without_nulls_reach_the_model_as_plain_numpy(spark, models):
    df = spark.createDataFrame([(1, 1.5, True), (2, 2.5, False)], "l bigint, d double, b boolean")
    seen = df.select(spark_models.pyfunc.spark_udf(spark, models["long"])(x="l").alias("l"),
                     spark_models.pyfunc.spark_udf(spark, models["boolean"])(x="b").alias("b")).toPandas()
    assert seen["l"].tolist() == ["int64|1", "int64|2"] and seen["b"].tolist() == ["bool|True", "bool|False"]


PANDAS = {  # the same values as pandas holds them
    "long": pd.Series([1, None, BIG], dtype="Int64"),
    "int": pd.Series([1, None, 3], dtype="Int32"),
    "bool": pd.Series([True, None, False], dtype="boolean"),
    "dec2": pd.Series([D("1.25"), None, D("3.50")], dtype=object),
    "double": pd.Series([1.5, None, 2.5]),
    "iso": pd.Series(COLUMNS["iso"][1]),
    "date": pd.Series(COLUMNS["date"][1], dtype=object),
}


@pytest.mark.parametrize("column, spec", sorted(k for k in ACCEPTED if k[0] in PANDAS))
def test_pyfunc_sees_what_spark_udf_sees(models, column, spec):
    out = spark_models.pyfunc.load_model(models[spec]).predict(pd.DataFrame({"x": PANDAS[column]}))
    dtype, values = ACCEPTED[(column, spec)]
    assert out.tolist() == [f"{dtype}|{v}" for v in values]


@pytest.mark.parametrize("spec, values, seen", [
    ("long", [1, None, BIG], ["Int64|1", "Int64|<NA>", f"Int64|{BIG}"]),
    ("integer", [1, None, 3], ["Int32|1", "Int32|<NA>", "Int32|3"]),
    ("boolean", [True, None, False], ["boolean|True", "boolean|<NA>", "boolean|False"]),
    ("double", [1.5, None, 2], ["float64|1.5", "float64|nan", "float64|2.0"]),
    ("datetime", ["2020-01-01T10:00:00", None, "2021-06-01 12:30:00"], [f"datetime64[ns]|{T1}", "datetime64[ns]|NaT",
                                                                     f"datetime64[ns]|{T2}"]),
])
def test_the_server_sees_what_spark_udf_sees(models, spec, values, seen):
    from starlette.testclient import TestClient

    from spark_models.serving import create_app

    client = TestClient(create_app(spark_models.pyfunc.load_model(models[spec])))
    response = client.post("/invocations", json={"dataframe_split": {"columns": ["x"], "data": [[v] for v in values]}})
    assert response.status_code == 200, response.text
    assert response.json()["predictions"] == seen
    csv = "x,z\n" + "\n".join(("" if v is None else str(v)) + ",0" for v in values) + "\n"
    response = client.post("/invocations", content=csv, headers={"Content-Type": "text/csv"})
    assert response.status_code == 200 and response.json()["predictions"] == seen, response.text


def test_a_model_failure_says_which_columns_held_nulls(spark, tmp_path):
    class Strict(spark_models.pyfunc.PythonModel):
        def predict(self, context, model_input):
            return model_input["x"].to_numpy(dtype="int64") * 2  # fails on pd.NA

    sig = ModelSignature(Schema([ColSpec("long", "x")]), Schema([ColSpec("long")]))
    spark_models.pyfunc.save_model(tmp_path / "strict", python_model=Strict(), signature=sig)
    with pytest.raises(ValueError) as e:
        spark_models.pyfunc.load_model(tmp_path / "strict").predict(pd.DataFrame({"x": pd.Series([1, None], dtype="Int64")}))
    assert "the input held missing values, x: 1 of 2 rows" in "".join(getattr(e.value, "__notes__", []))
    u = spark_models.pyfunc.spark_udf(spark, str(tmp_path / "strict"))
    with pytest.raises(PythonException, match="the input held missing values, x: 1 of 2 rows"):
        spark.createDataFrame([(1,), (None,)], "v bigint").coalesce(1).withColumn("p", u(x="v")).collect()


# ---- Spark ML vectors -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def vectors(spark):
    from pyspark.ml.linalg import Vectors

    rows = [(0, Vectors.dense([1.0, 2.0, 3.0])), (1, Vectors.sparse(3, {1: 5.0})), (2, Vectors.dense([0.5, 0.0, -1.0]))]
    return spark.createDataFrame(rows, ["row", "features"]), np.array([[1.0, 2.0, 3.0], [0.0, 5.0, 0.0], [0.5, 0.0, -1.0]])


def test_a_vector_column_scores_a_model_with_n_double_columns(spark, vectors, tmp_path):
    from sklearn.linear_model import LinearRegression

    import spark_models.sklearn
    from spark_models.models import infer_signature

    df, dense = vectors
    X = pd.DataFrame(dense, columns=["a", "b", "c"])
    model = LinearRegression().fit(X, X.a - 2 * X.b + X.c)
    spark_models.sklearn.save_model(model, tmp_path / "cols", signature=infer_signature(X, model.predict(X)))
    u = spark_models.pyfunc.spark_udf(spark, str(tmp_path / "cols"))
    out = df.withColumn("p", u("features")).orderBy("row").toPandas()
    np.testing.assert_allclose(out["p"], model.predict(X))  # sparse rows densified
    short = spark.createDataFrame([(__import__("pyspark.ml.linalg", fromlist=["Vectors"]).Vectors.dense([1.0, 2.0]),)], ["features"])
    with pytest.raises(PythonException, match=r"ML vector argument has 2 values in row 0, but the model takes 3 columns"):
        short.withColumn("p", u("features")).collect()


def test_a_vector_column_becomes_a_tensor(spark, vectors, tmp_path):
    from sklearn.linear_model import LinearRegression

    import spark_models.sklearn
    from spark_models.models import infer_signature

    from pyspark.ml.functions import vector_to_array

    df, dense = vectors
    model = LinearRegression().fit(dense, dense @ [1.0, -2.0, 1.0])
    spark_models.sklearn.save_model(model, tmp_path / "tensor", signature=infer_signature(dense, model.predict(dense)))
    u = spark_models.pyfunc.spark_udf(spark, str(tmp_path / "tensor"))
    scored = df.withColumn("p", u("features"))
    np.testing.assert_allclose(scored.orderBy("row").toPandas()["p"], model.predict(dense))  # sparse rows densified
    as_arrays = df.select("row", vector_to_array("features").alias("features"))  # the same rows as array<double>
    np.testing.assert_allclose(as_arrays.withColumn("p", u("features")).orderBy("row").toPandas()["p"], model.predict(dense))
    from pyspark.ml.linalg import Vectors

    short = spark.createDataFrame([(Vectors.dense([1.0, 2.0]),)], ["features"])
    with pytest.raises(PythonException, match="vector column 'features' has 2 values in row 0, but the signature's tensor takes 3"):
        short.withColumn("p", u("features")).collect()
