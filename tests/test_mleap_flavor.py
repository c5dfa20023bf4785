"""The mleap flavor: MLflow 1.x's layout, plus a python_function flavor scored in numpy."""

import json

import numpy as np
import pandas as pd
import pytest
from pyspark.ml import Pipeline
from pyspark.ml.classification import LogisticRegression
from pyspark.ml.feature import StringIndexer, VectorAssembler

import mleap_bridge
import spark_models.mleap
import spark_models.pyfunc
from spark_models.flavors.testing import check_flavor
from spark_models.mlmodel import Model

pytestmark = pytest.mark.spark


@pytest.fixture(scope="module")
def fitted(spark):
    rng = np.random.default_rng(5)
    frame = pd.DataFrame({"x": rng.normal(size=100), "kind": rng.choice(["a", "b", "c"], 100)})
    train = spark.createDataFrame(frame.assign(label=(frame.x > 0.2).astype(float)))
    stages = [StringIndexer(inputCol="kind", outputCol="k", handleInvalid="keep"),
              VectorAssembler(inputCols=["x", "k"], outputCol="features"), LogisticRegression(maxIter=10)]
    return Pipeline(stages=stages).fit(train), train, frame


def _spark_predict(spark, model, frame):
    return model.transform(spark.createDataFrame(frame)).select("prediction").toPandas()["prediction"]


def test_layout_matches_mlflow_1x(spark, fitted, tmp_path):
    model, train, frame = fitted
    spark_models.mleap.save_model(model, tmp_path / "m", sample_input=train)
    meta = Model.load(tmp_path / "m")
    assert meta.flavors["mleap"]["model_data"] == "mleap/model" and meta.flavors["mleap"]["mleap_version"]
    assert meta.flavors["python_function"]["loader_module"] == "spark_models.mleap"
    schema = json.loads((tmp_path / "m" / "mleap" / "schema.json").read_text())
    assert [f["name"] for f in schema["fields"]] == ["x", "kind", "label"]
    runtime = spark_models.mleap.load_model(tmp_path / "m")
    assert isinstance(runtime, mleap_bridge.BundleModel)
    np.testing.assert_array_equal(runtime.transform(frame)["prediction"], _spark_predict(spark, model, frame))


def test_spark_udf_scores_mleap_models_in_numpy(spark, fitted, tmp_path):
    model, train, frame = fitted
    spark_models.mleap.save_model(model, tmp_path / "m", sample_input=train, input_example=frame.head(3))
    u = spark_models.pyfunc.spark_udf(spark, str(tmp_path / "m"))
    out = spark.createDataFrame(frame).withColumn("p", u()).toPandas()
    np.testing.assert_array_equal(out["p"].to_numpy(), _spark_predict(spark, model, frame).to_numpy())


def test_conformance(spark, fitted, tmp_path):
    model, train, frame = fitted
    check_flavor(
        spark_models.mleap, model, frame, tmp_path,
        native_predict=lambda m, x: m.transform(x)["prediction"] if isinstance(m, mleap_bridge.BundleModel)
        else _spark_predict(spark, m, x),
        save=lambda m, p, **kw: spark_models.mleap.save_model(m, p, sample_input=train, **kw),
    )


def test_add_to_model_directly(spark, fitted, tmp_path):
    """MLflow's ``mlflow.mleap.add_to_model`` entry point: adds the flavor and writes the bundle only."""
    from spark_models.exceptions import InvalidArgumentError

    model, train, frame = fitted
    meta = Model()
    returned = spark_models.mleap.add_to_model(meta, tmp_path / "m", model, train)
    assert returned is meta and set(meta.flavors) == {"mleap"}
    assert meta.flavors["mleap"] == {"mleap_version": mleap_bridge.bundle.BUNDLE_VERSION, "model_data": "mleap/model"}
    schema = json.loads((tmp_path / "m" / "mleap" / "schema.json").read_text())
    assert schema == json.loads(train.schema.json())
    runtime = mleap_bridge.load_bundle(tmp_path / "m" / "mleap" / "model")
    np.testing.assert_array_equal(runtime.transform(frame)["prediction"], _spark_predict(spark, model, frame))
    with pytest.raises(InvalidArgumentError, match="sample_input must be a Spark DataFrame"):
        spark_models.mleap.add_to_model(Model(), tmp_path / "bad", model, frame)
