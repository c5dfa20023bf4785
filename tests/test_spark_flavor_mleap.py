"""spark flavor + MLeap bundle: written by default, opt-out, runtime selection, spark_udf refusals."""

import logging

import numpy as np
import pandas as pd
import pytest
from pyspark.ml import Pipeline
from pyspark.ml.feature import SQLTransformer, VectorAssembler
from pyspark.ml.regression import LinearRegression

import spark_models.pyfunc
import spark_models.spark
from spark_models.exceptions import InvalidArgumentError, NotSupportedError
from spark_models.mlmodel import Model
from spark_models.models import ModelSignature
from spark_models.types import ColSpec, Schema
from tests.helpers.spark_pipelines import scoring_frame as _scoring_frame, spark_predictions as _spark_predictions

pytestmark = pytest.mark.spark


@pytest.fixture(scope="module")
def sql_pipeline(train):  # noqa: F811
    """A pipeline with a stage mleap_bridge cannot export (SQLTransformer)."""
    stages = [
        SQLTransformer(statement="SELECT *, x1 * x2 AS x12 FROM __THIS__"),
        VectorAssembler(inputCols=["x1", "x12"], outputCol="features"),
        LinearRegression(labelCol="label", maxIter=5),
    ]
    return Pipeline(stages=stages).fit(train)


def _impl(uri, **config):
    return type(spark_models.pyfunc.load_model(uri, model_config=config or None)._model_impl).__name__


def test_bundle_is_written_by_default_and_scored_everywhere(spark, lr_pipeline, tmp_path):  # noqa: F811
    sig = ModelSignature(
        Schema([ColSpec("double", "x1"), ColSpec("double", "x2"), ColSpec("string", "color", required=False)]),
        Schema([ColSpec("double", "prediction")]),
    )
    uri = str(tmp_path / "m")
    spark_models.spark.save_model(lr_pipeline, uri, signature=sig)
    meta = Model.load(uri)
    assert meta.flavors["mleap"] == {"mleap_version": meta.flavors["mleap"]["mleap_version"], "model_data": "mleap/model"}
    assert (tmp_path / "m" / "mleap" / "model" / "bundle.json").is_file()
    schema = (tmp_path / "m" / "mleap" / "schema.json").read_text()  # MLflow 1.x's file, from the signature
    assert '"name":"color"' in schema.replace(" ", "") and '"type":"string"' in schema.replace(" ", "")
    frame = _scoring_frame()
    expected = _spark_predictions(spark, lr_pipeline, frame).to_numpy()
    assert _impl(uri) == "BundlePyfunc" and _impl(uri, runtime="auto") == "BundlePyfunc"
    np.testing.assert_array_equal(spark_models.pyfunc.load_model(uri).predict(frame).to_numpy(), expected)
    u = spark_models.pyfunc.spark_udf(spark, uri)  # no sample_input needed for the workers' numpy path
    scored = spark.createDataFrame(frame).withColumn("p", u()).toPandas()
    np.testing.assert_array_equal(scored["p"].to_numpy(), expected)


def test_unsupported_stage_saves_without_bundle_and_spark_udf_names_it(spark, sql_pipeline, tmp_path, caplog):
    uri = str(tmp_path / "sql")
    with caplog.at_level(logging.INFO, logger="spark_models.flavors.spark"):
        spark_models.spark.save_model(sql_pipeline, uri)
    logged = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.INFO)
    assert "without an MLeap bundle" in logged and "SQLTransformer" in logged
    meta = Model.load(uri)
    assert "mleap" not in meta.flavors and "SQLTransformer" in meta.flavors["spark"]["mleap_skipped"]
    assert _impl(uri) == "SparkPipelinePyfunc"
    with pytest.raises(NotSupportedError) as refused:
        spark_models.pyfunc.spark_udf(spark, uri)
    message = str(refused.value)
    assert "SQLTransformer" in message and "SparkContext" in message
    assert f"spark_models.spark.load_model({uri!r}).transform(df)" in message
    assert f"spark_models.spark.transform(df, {uri!r})" in message and "model_uri" not in message
    df = spark.createDataFrame(_scoring_frame())  # what the message suggests works
    out = spark_models.spark.transform(df, uri)
    assert out.columns == df.columns + ["prediction"] and out.count() == df.count()
    with pytest.raises(NotSupportedError, match=r"mleap=True.*SQLTransformer"):
        spark_models.spark.save_model(sql_pipeline, tmp_path / "strict", mleap=True)
    assert not (tmp_path / "strict").exists()


def test_mleap_false_opts_out(spark, lr_pipeline, train, tmp_path):  # noqa: F811
    uri = str(tmp_path / "m")
    spark_models.spark.save_model(lr_pipeline, uri, mleap=False)
    meta = Model.load(uri)
    assert "mleap" not in meta.flavors and not (tmp_path / "m" / "mleap").exists()
    assert meta.flavors["spark"]["mleap_skipped"] == "saved with mleap=False"
    assert _impl(uri) == "SparkPipelinePyfunc"
    u = spark_models.pyfunc.spark_udf(spark, uri)  # the workers score a converted copy with a bundle
    assert not (tmp_path / "m" / "mleap").exists() and "mleap" in Model.load(u._plan.local_dir).flavors
    frame = _scoring_frame()
    scored = spark.createDataFrame(frame).withColumn("p", u("x1", "x2", "color")).toPandas()
    np.testing.assert_array_equal(scored["p"].to_numpy(), _spark_predictions(spark, lr_pipeline, frame).to_numpy())
    with pytest.raises(InvalidArgumentError, match="sample_input.*mleap=False"):
        spark_models.spark.save_model(lr_pipeline, tmp_path / "a", sample_input=train, mleap=False)
    with pytest.raises(InvalidArgumentError, match=r"mleap must be 'auto', True or False, got 'yes'"):
        spark_models.spark.save_model(lr_pipeline, tmp_path / "b", mleap="yes")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_forced_runtimes(spark, lr_pipeline, sql_pipeline, tmp_path):  # noqa: F811
    with_bundle, without = str(tmp_path / "lr"), str(tmp_path / "sql")
    spark_models.spark.save_model(lr_pipeline, with_bundle)
    spark_models.spark.save_model(sql_pipeline, without)
    assert _impl(with_bundle, runtime="spark") == "SparkPipelinePyfunc"
    assert _impl(with_bundle, runtime="mleap") == "BundlePyfunc"
    assert _impl(without, runtime="auto") == "SparkPipelinePyfunc"
    with pytest.raises(NotSupportedError, match=r"runtime='mleap' needs an MLeap bundle.*sql.*SQLTransformer"):
        spark_models.pyfunc.load_model(without, model_config={"runtime": "mleap"})
    for bad in ("numpy", "Spark", None):
        with pytest.raises(InvalidArgumentError, match=rf"model_config\['runtime'\] must be one of 'auto', 'spark', 'mleap', got {bad!r}"):
            spark_models.pyfunc.load_model(with_bundle, model_config={"runtime": bad})


def test_a_bare_model_on_a_vector_column_gets_a_bundle(spark, train, tmp_path):  # noqa: F811
    assembled = VectorAssembler(inputCols=["x1", "x2"], outputCol="features").transform(train)
    bare = LinearRegression(labelCol="label", maxIter=5).fit(assembled)
    spark_models.spark.save_model(bare, tmp_path / "bare")
    assert "mleap" in Model.load(tmp_path / "bare").flavors
    vectors = [row.features for row in assembled.select("features").take(5)]
    features = pd.DataFrame({"features": [v.toArray().tolist() for v in vectors]})
    expected = np.array([bare.predict(v) for v in vectors])
    for runtime in ("mleap", "spark"):
        got = spark_models.pyfunc.load_model(str(tmp_path / "bare"), model_config={"runtime": runtime}).predict(features)
        np.testing.assert_allclose(got.to_numpy(), expected, rtol=1e-12)
