"""spark flavor models cross between MLflow (real mlflow-skinny) and spark-models both ways."""

import inspect
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pyspark.ml import Pipeline
from pyspark.ml.classification import LogisticRegression, RandomForestClassifier
from pyspark.ml.feature import OneHotEncoder, StringIndexer, VectorAssembler

import spark_models.pyfunc
import spark_models.spark
from spark_models.exceptions import NotSupportedError
from spark_models.mlmodel import Model
from tests.isolation import run_json

mlflow_spark = pytest.importorskip("mlflow.spark")
import mlflow.pyfunc  # noqa: E402

pytestmark = pytest.mark.spark
ROOT = Path(__file__).resolve().parents[1]
STAGES = {
    "lr": ["StringIndexerModel", "VectorAssembler", "LogisticRegressionModel"],
    "ohe_rf": ["StringIndexerModel", "OneHotEncoderModel", "VectorAssembler", "RandomForestClassificationModel"],
}


@pytest.fixture(scope="module")
def frame():
    rng = np.random.default_rng(3)
    return pd.DataFrame({"x": rng.normal(size=80), "kind": rng.choice(["a", "b", "c"], 80)})


@pytest.fixture(scope="module")
def pipelines(spark, frame):
    df = spark.createDataFrame(frame.assign(label=((frame.x > 0) ^ (frame.kind == "c")).astype(float)))
    lr = [
        StringIndexer(inputCol="kind", outputCol="kind_idx"),
        VectorAssembler(inputCols=["x", "kind_idx"], outputCol="features"),
        LogisticRegression(maxIter=10),
    ]
    ohe_rf = [
        StringIndexer(inputCol="kind", outputCol="kind_idx", handleInvalid="keep"),
        OneHotEncoder(inputCols=["kind_idx"], outputCols=["kind_vec"]),
        VectorAssembler(inputCols=["x", "kind_vec"], outputCol="features"),
        RandomForestClassifier(numTrees=6, maxDepth=4, seed=2),
    ]
    return {"lr": Pipeline(stages=lr).fit(df), "ohe_rf": Pipeline(stages=ohe_rf).fit(df)}


def _expected(spark, pipeline, frame):
    return pipeline.transform(spark.createDataFrame(frame)).select("prediction").toPandas()["prediction"].to_numpy()


@pytest.mark.parametrize("name", sorted(STAGES))
def test_ours_load_in_mlflow(spark, pipelines, frame, tmp_path, name):
    pipeline = pipelines[name]
    spark_models.spark.save_model(pipeline, tmp_path / "ours")
    assert "mleap" in Model.load(tmp_path / "ours").flavors  # MLflow ignores the extra flavor
    expected = _expected(spark, pipeline, frame)
    native = mlflow_spark.load_model(str(tmp_path / "ours"))
    assert [type(s).__name__ for s in native.stages] == STAGES[name]
    np.testing.assert_array_equal(_expected(spark, native, frame), expected)
    got = mlflow.pyfunc.load_model(str(tmp_path / "ours")).predict(frame)
    np.testing.assert_array_equal(np.asarray(got), expected)


def test_positional_parameters_are_mlflows():
    ours = inspect.signature(spark_models.spark.save_model).parameters
    theirs = inspect.signature(mlflow_spark.save_model).parameters
    positional = [n for n, p in ours.items() if p.kind is p.POSITIONAL_OR_KEYWORD]
    assert positional == list(theirs)[: len(positional)] and positional[-1] == "dfs_tmpdir"
    named = {n for n, p in theirs.items() if p.kind is not p.VAR_KEYWORD}
    assert named <= set(ours), named - set(ours)


LOAD_WITHOUT_MLFLOW = r'''
import json, os, sys
os.environ["PYSPARK_PYTHON"] = sys.executable
sys.path.insert(0, {root!r})
import pandas as pd
from tests.helpers.sessions import spark_builder
spark = spark_builder("local[1]").getOrCreate()
import spark_models.pyfunc, spark_models.spark
frame = pd.read_parquet({frame!r})
out = {{}}
for name, path in {paths!r}.items():
    pipeline = spark_models.spark.load_model(path)
    pyfunc = spark_models.pyfunc.load_model(path)
    out[name] = {{"stages": [type(s).__name__ for s in pipeline.stages], "pyfunc": pyfunc.predict(frame).tolist()}}
out["mlflow_importable"] = "mlflow" in sys.modules
print(json.dumps(out))
'''


@pytest.mark.slow
def test_mlflow_models_load_here_without_mlflow(spark, pipelines, frame, tmp_path):
    paths = {}
    for name, pipeline in pipelines.items():
        paths[name] = str(tmp_path / name)
        mlflow_spark.save_model(pipeline, paths[name], pip_requirements=["pyspark"])
    frame.to_parquet(tmp_path / "frame.parquet")
    out = run_json(
        LOAD_WITHOUT_MLFLOW.format(root=str(ROOT), frame=str(tmp_path / "frame.parquet"), paths=paths),
        blocked=("mlflow",),
    )
    for name, pipeline in pipelines.items():
        assert out[name]["stages"] == STAGES[name]
        assert out[name]["pyfunc"] == _expected(spark, pipeline, frame).tolist()
    assert out["mlflow_importable"] is False


def _snapshot(directory):
    """Every file's relative path, bytes and modification time."""
    return {p.relative_to(directory).as_posix(): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(Path(directory).rglob("*")) if p.is_file()}


def test_spark_udf_scores_an_mlflow_model_through_a_converted_copy(spark, pipelines, frame, tmp_path):
    from udf.shipping import archive_name, content_hash

    theirs = str(tmp_path / "theirs")
    mlflow_spark.save_model(pipelines["ohe_rf"], theirs, pip_requirements=["pyspark"])
    before = _snapshot(theirs)
    assert "mleap" not in Model.load(theirs).flavors
    u = spark_models.pyfunc.spark_udf(spark, theirs)
    scored = spark.createDataFrame(frame).withColumn("p", u("x", "kind")).toPandas()
    np.testing.assert_array_equal(scored["p"].to_numpy(), _expected(spark, pipelines["ohe_rf"], frame))
    assert _snapshot(theirs) == before  # the user's directory is only read
    shipped = Path(u._plan.local_dir)
    assert shipped != Path(theirs) and Model.load(shipped).flavors["mleap"]["model_data"] == "mleap/model"
    assert Model.load(shipped).flavors["spark"] == Model.load(theirs).flavors["spark"]
    assert u._plan.model_key == content_hash(shipped) != content_hash(Path(theirs))  # the archive is the converted content
    assert u._plan.archive == archive_name(u._plan.model_key)
    again = spark_models.pyfunc.spark_udf(spark, theirs)  # converted once per content, then reused
    assert Path(again._plan.local_dir) == shipped and again._plan.model_key == u._plan.model_key


def test_spark_udf_refuses_an_mlflow_model_with_a_stage_the_bridge_cannot_export(spark, frame, tmp_path):
    from pyspark.ml.feature import SQLTransformer
    from pyspark.ml.regression import LinearRegression

    from udf.shipping import _archive_root, content_hash

    df = spark.createDataFrame(frame.assign(label=frame.x * 2))
    pipeline = Pipeline(stages=[SQLTransformer(statement="SELECT *, x * x AS x2 FROM __THIS__"),
                                VectorAssembler(inputCols=["x", "x2"], outputCol="features"),
                                LinearRegression(maxIter=5)]).fit(df)
    theirs = str(tmp_path / "sql")
    mlflow_spark.save_model(pipeline, theirs, pip_requirements=["pyspark"])
    before = _snapshot(theirs)
    with pytest.raises(NotSupportedError) as refused:
        spark_models.pyfunc.spark_udf(spark, theirs)
    message = str(refused.value)
    assert f"spark_udf cannot score {theirs!r}" in message
    assert f"SQLTransformer ({pipeline.stages[0].uid})" in message and "SparkContext" in message
    assert f"spark_models.spark.load_model({theirs!r}).transform(df)" in message
    assert f"spark_models.spark.transform(df, {theirs!r})" in message
    assert _snapshot(theirs) == before
    key = content_hash(Path(theirs))
    assert [p.name for p in (_archive_root() / "converted").iterdir() if key in p.name] == []  # nothing left behind
