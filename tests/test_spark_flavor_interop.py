"""spark flavor models cross between MLflow (real mlflow-skinny) and spark-models both ways."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pyspark.ml import Pipeline
from pyspark.ml.classification import LogisticRegression
from pyspark.ml.feature import StringIndexer, VectorAssembler

import spark_models.pyfunc
import spark_models.spark
from tests.isolation import run_json

mlflow_spark = pytest.importorskip("mlflow.spark")
import mlflow.pyfunc  # noqa: E402

pytestmark = pytest.mark.spark
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def frame():
    rng = np.random.default_rng(3)
    return pd.DataFrame({"x": rng.normal(size=80), "kind": rng.choice(["a", "b"], 80)})


@pytest.fixture(scope="module")
def pipeline(spark, frame):
    df = spark.createDataFrame(frame.assign(label=(frame.x > 0).astype(float)))
    stages = [
        StringIndexer(inputCol="kind", outputCol="kind_idx"),
        VectorAssembler(inputCols=["x", "kind_idx"], outputCol="features"),
        LogisticRegression(maxIter=10),
    ]
    return Pipeline(stages=stages).fit(df)


def _expected(spark, pipeline, frame):
    return pipeline.transform(spark.createDataFrame(frame)).select("prediction").toPandas()["prediction"].to_numpy()


def test_ours_load_in_mlflow(spark, pipeline, frame, tmp_path):
    spark_models.spark.save_model(pipeline, tmp_path / "ours")
    expected = _expected(spark, pipeline, frame)
    native = mlflow_spark.load_model(str(tmp_path / "ours"))
    np.testing.assert_array_equal(_expected(spark, native, frame), expected)
    got = mlflow.pyfunc.load_model(str(tmp_path / "ours")).predict(frame)
    np.testing.assert_array_equal(np.asarray(got), expected)


LOAD_WITHOUT_MLFLOW = r'''
import json, os, sys
os.environ["PYSPARK_PYTHON"] = sys.executable
sys.path.insert(0, {root!r})
import pandas as pd
from conftest import spark_builder
spark = spark_builder("local[1]").getOrCreate()
import spark_models.pyfunc, spark_models.spark
frame = pd.read_parquet({frame!r})
pipeline = spark_models.spark.load_model({path!r})
pyfunc = spark_models.pyfunc.load_model({path!r})
print(json.dumps({{
    "stages": [type(s).__name__ for s in pipeline.stages],
    "pyfunc": pyfunc.predict(frame).tolist(),
    "mlflow_importable": "mlflow" in sys.modules,
}}))
'''


@pytest.mark.slow
def test_mlflow_models_load_here_without_mlflow(spark, pipeline, frame, tmp_path):
    path = tmp_path / "theirs"
    mlflow_spark.save_model(pipeline, str(path), pip_requirements=["pyspark"])
    frame.to_parquet(tmp_path / "frame.parquet")
    out = run_json(
        LOAD_WITHOUT_MLFLOW.format(root=str(ROOT), frame=str(tmp_path / "frame.parquet"), path=str(path)),
        blocked=("mlflow",),
    )
    assert out["stages"] == ["StringIndexerModel", "VectorAssembler", "LogisticRegressionModel"]
    assert out["pyfunc"] == _expected(spark, pipeline, frame).tolist()
    assert out["mlflow_importable"] is False
