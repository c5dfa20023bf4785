"""MLflow 3's nested signature types through Spark: spark_udf on array, struct, map and ML vector
columns, result types from nested output specs, and output conversion to Spark values."""

import math

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import types as T

import spark_models.pyfunc
from spark_models.exceptions import InvalidArgumentError, SchemaEnforcementError
from spark_models.models import ModelSignature
from spark_models.types import AnyType, Array, ColSpec, Map, Object, Property, Schema, SparkMLVector
from udf.outputs import coerce_output
from udf.result_types import parse_result_type

# ---- (d) spark_udf on array, struct and map columns --------------------------------------

STRUCT = Object([Property("x", "long"), Property("y", "string", required=False)])


class NestedFeatures(spark_models.pyfunc.PythonModel):
    """Scalars, an array, an object and a map computed from array, struct and map inputs."""

    def predict(self, context, model_input, params=None):
        def total(v):
            return None if v is None else float(np.nansum(np.asarray(v, dtype=float)))

        return pd.DataFrame({
            "total": [total(v) for v in model_input["a"]],
            "code": [None if o is None or o["x"] is None else o["x"] * 10 + len(o.get("y") or "") for o in model_input["s"]],
            "keys": [None if m is None else sorted(m) for m in model_input["m"]],
            "echo": [None if o is None else dict(o) for o in model_input["s"]],
            "doubled": [None if m is None else {k: None if v is None else 2 * v for k, v in m.items()} for m in model_input["m"]],
        })


NESTED_SIGNATURE = ModelSignature(
    Schema([ColSpec(Array("double"), "a"), ColSpec(STRUCT, "s"), ColSpec(Map("double"), "m")]),
    Schema([ColSpec("double", "total"), ColSpec("long", "code"), ColSpec(Array("string"), "keys"),
            ColSpec(STRUCT, "echo"), ColSpec(Map("double"), "doubled")]),
)
SPARK_ROWS = [
    (0, [1.0, 2.0], {"x": 1, "y": "ab"}, {"k": 1.5}),
    (1, None, None, None),
    (2, [3.0, None], {"x": 2, "y": None}, {"k": None, "j": 2.0}),
    (3, [], {"x": None, "y": "c"}, {}),
]


@pytest.mark.spark
@pytest.mark.parametrize("batch_size", [None, 1])
def test_spark_udf_scores_array_struct_and_map_columns_with_nulls(spark, tmp_path, batch_size):
    path = tmp_path / "nested"
    spark_models.pyfunc.save_model(path, python_model=NestedFeatures(), signature=NESTED_SIGNATURE)
    u = spark_models.pyfunc.spark_udf(spark, str(path), batch_size=batch_size)
    assert u.return_type.simpleString() == (
        "struct<total:double,code:bigint,keys:array<string>,echo:struct<x:bigint,y:string>,doubled:map<string,double>>")
    df = spark.createDataFrame(SPARK_ROWS, "id long, a array<double>, s struct<x:bigint,y:string>, m map<string,double>")
    got = {r.id: r.p.asDict(recursive=True) for r in df.repartition(2).withColumn("p", u()).collect()}
    assert got[0] == {"total": 3.0, "code": 12, "keys": ["k"], "echo": {"x": 1, "y": "ab"}, "doubled": {"k": 3.0}}
    # A null struct reaches the model as a record of nulls (PySpark's struct-to-pandas conversion).
    assert got[1] == {"total": None, "code": None, "keys": None, "echo": {"x": None, "y": None}, "doubled": None}
    assert got[2] == {"total": 3.0, "code": 20, "keys": ["j", "k"], "echo": {"x": 2, "y": None},
                      "doubled": {"j": 4.0, "k": None}}
    assert got[3] == {"total": 0.0, "code": None, "keys": [], "echo": {"x": None, "y": "c"}, "doubled": {}}


class Describe(spark_models.pyfunc.PythonModel):
    """What the model received, as text (containers and values)."""

    def predict(self, context, model_input, params=None):
        def text(v):
            if isinstance(v, np.ndarray):
                return "nd" + text(v.tolist())
            if isinstance(v, list):
                return "[" + ", ".join(map(text, v)) + "]"
            if isinstance(v, dict):
                return "{" + ", ".join(f"{k}: {text(x)}" for k, x in sorted(v.items())) + "}"
            if isinstance(v, np.generic):
                v = v.item()
            return "nan" if isinstance(v, float) and math.isnan(v) else repr(v)

        return pd.Series([text(v) for v in model_input["c"]])


@pytest.mark.spark
@pytest.mark.parametrize("spec, ddl, rows, expected", [
    (Array("integer"), "array<int>", [([1, None],), ([2],), (None,)], ["nd[1, None]", "nd[2]", "None"]),
    (Array("float"), "array<float>", [([1.5, None],), ([],)], ["nd[1.5, nan]", "nd[]"]),
    (Map("integer"), "map<string,int>", [({"a": 1, "b": None},), (None,)], ["{a: 1, b: None}", "None"]),
    (Array(Object([Property("x", "long")])), "array<struct<x:bigint>>", [([{"x": 1}, None],), ([],)],
     ["nd[{x: 1}, None]", "nd[]"]),
    (Object([Property("v", Array("long")), Property("m", Map("string"))]), "struct<v:array<bigint>,m:map<string,string>>",
     [({"v": [1], "m": {"k": "q"}},)], ["{m: {k: 'q'}, v: nd[1]}"]),
])
def test_spark_udf_hands_the_model_enforced_nested_values(spark, tmp_path, spec, ddl, rows, expected):
    path = tmp_path / "describe"
    spark_models.pyfunc.save_model(path, python_model=Describe(),
                                   signature=ModelSignature(Schema([ColSpec(spec, "c")]), Schema([ColSpec("string")])))
    df = spark.createDataFrame([(i, *r) for i, r in enumerate(rows)], f"id long, c {ddl}")
    u = spark_models.pyfunc.spark_udf(spark, str(path))
    assert [r.p for r in df.withColumn("p", u()).orderBy("id").collect()] == expected


@pytest.mark.spark
def test_spark_udf_scores_ml_vector_columns(spark, tmp_path):
    from pyspark.ml.linalg import Vectors

    class_path = tmp_path / "vec"
    spark_models.pyfunc.save_model(class_path, python_model=Describe(), signature=ModelSignature(
        Schema([ColSpec(SparkMLVector(), "c")]), Schema([ColSpec("string")])))
    df = spark.createDataFrame([(0, Vectors.dense([1.0, 2.0])), (1, Vectors.sparse(2, [0], [3.0])), (2, None)], ["id", "c"])
    got = [r.p for r in df.withColumn("p", spark_models.pyfunc.spark_udf(spark, str(class_path))()).orderBy("id").collect()]
    assert got == ["DenseVector([1.0, 2.0])", "SparseVector(2, {0: 3.0})", "None"]


@pytest.mark.spark
def test_spark_udf_refuses_bad_nested_values_naming_row_and_path(spark, tmp_path):
    path = tmp_path / "nested"
    spark_models.pyfunc.save_model(path, python_model=NestedFeatures(), signature=NESTED_SIGNATURE)
    df = spark.createDataFrame([(0, [1.0], {"x": 1, "y": "a", "z": 2}, {})],
                               "id long, a array<double>, s struct<x:bigint,y:string,z:int>, m map<string,double>")
    with pytest.raises(Exception, match=r"SchemaEnforcementError: Column 's', row 0: property 'z' is not in the signature"):
        df.withColumn("p", spark_models.pyfunc.spark_udf(spark, str(path))()).collect()


# ---- result types and output conversion ---------------------------------------------------

INPUT = Schema([ColSpec("long", "x")])


def _outputs(*specs):
    return ModelSignature(INPUT, Schema(list(specs)))


def test_result_types_from_nested_output_specs():
    obj = Object([Property("label", "long"), Property("scores", Array("double")), Property("meta", Map("string"), False)])
    nested = T.StructType([T.StructField("label", T.LongType()), T.StructField("meta", T.MapType(T.StringType(), T.StringType())),
                           T.StructField("scores", T.ArrayType(T.DoubleType()))])
    assert parse_result_type(None, _outputs(ColSpec(obj, "o"))) == nested  # every field nullable
    assert parse_result_type(None, _outputs(ColSpec(Array(Array("long")), "a"))) == T.ArrayType(T.ArrayType(T.LongType()))
    assert parse_result_type(None, _outputs(ColSpec(Map("double")))) == T.MapType(T.StringType(), T.DoubleType())
    assert parse_result_type(None, _outputs(ColSpec(obj, "o"), ColSpec("double", "p"))) == T.StructType(
        [T.StructField("o", nested), T.StructField("p", T.DoubleType())])
    assert type(parse_result_type(None, _outputs(ColSpec(SparkMLVector(), "v")))).__name__ == "VectorUDT"
    for spec, message in [(ColSpec(Array("datetime"), "t"), "output 't' has type array<datetime>.*items: timestamp"),
                          (ColSpec(Object([Property("b", "binary")]), "o"), "output 'o' has type object.*field 'b': binary"),
                          (ColSpec(AnyType(), "a"), "output 'a' has type any")]:
        with pytest.raises(InvalidArgumentError, match=message):
            parse_result_type(None, _outputs(spec))
    with pytest.raises(InvalidArgumentError, match="unnamed outputs"):
        parse_result_type(None, _outputs(ColSpec(Array("long")), ColSpec("long")))


def test_nested_outputs_convert_to_spark_values():
    obj = Object([Property("label", "long"), Property("scores", Array("double"))])
    dt = parse_result_type(None, _outputs(ColSpec(obj, "o")))
    column = pd.DataFrame({"o": [{"label": 1, "scores": [0.5]}, None, {"label": None, "scores": np.array([1, 2])}]})
    expected = [{"label": 1, "scores": [0.5]}, {"label": None, "scores": None}, {"label": None, "scores": [1.0, 2.0]}]
    assert coerce_output(column, dt, 3).to_dict("records") == expected
    assert coerce_output([{"label": 2, "scores": []}], dt, 1).to_dict("records") == [{"label": 2, "scores": []}]
    maps = parse_result_type(None, _outputs(ColSpec(Map(Array("long")), "m")))
    assert coerce_output(pd.Series([{"a": [1, 2]}, None, {"b": None}]), maps, 3).tolist() == [{"a": [1, 2]}, None, {"b": None}]
    assert coerce_output([{"a": [np.int32(3)]}], maps, 1).tolist() == [{"a": [3]}]
    with pytest.raises(SchemaEnforcementError, match="does not convert to array<bigint>.*got int 5"):
        coerce_output(pd.Series([{"a": 5}]), maps, 1)
    with pytest.raises(SchemaEnforcementError, match="returned 1 rows for a batch of 2"):
        coerce_output(pd.Series([{"a": [1]}]), maps, 2)
    from pyspark.ml.linalg import DenseVector, VectorUDT

    vectors = coerce_output(pd.Series([[1, 2], None, DenseVector([3.0])]), VectorUDT(), 3).tolist()
    assert vectors == [DenseVector([1.0, 2.0]), None, DenseVector([3.0])]
    with pytest.raises(SchemaEnforcementError, match="expected an ML vector or an array of numbers, got str"):
        coerce_output(pd.Series(["x"]), VectorUDT(), 1)


@pytest.mark.spark
def test_output_spark_cannot_return_fails_when_the_udf_is_created(spark, tmp_path):
    path = tmp_path / "m"
    spark_models.pyfunc.save_model(path, python_model=Describe(), signature=ModelSignature(
        Schema([ColSpec(Array("long"), "c")]), Schema([ColSpec(Object([Property("when", "datetime")]), "o")])))
    with pytest.raises(InvalidArgumentError, match="output 'o' has type object\\{when: datetime\\}.*field 'when': timestamp"):
        spark_models.pyfunc.spark_udf(spark, str(path))
    assert spark_models.pyfunc.spark_udf(spark, str(path), result_type="string").return_type == T.StringType()
