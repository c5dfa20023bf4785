"""The spark flavor: real fitted Spark ML pipelines saved, loaded and scored."""

import numpy as np
import pandas as pd
import pytest
from pyspark.ml import PipelineModel
from pyspark.ml.classification import LogisticRegression
from pyspark.ml.feature import VectorAssembler

import spark_models.pyfunc
import spark_models.spark
from spark_models.exceptions import InvalidArgumentError, NotSupportedError, SchemaEnforcementError
from spark_models.staging import DFS_TMP_ENV
from spark_models.flavors.testing import check_flavor
from spark_models.mlmodel import Model
from spark_models.models import ModelSignature
from spark_models.types import ColSpec, Schema

from tests.helpers.spark_pipelines import scoring_frame as _scoring_frame, spark_predictions as _spark_predictions

pytestmark = pytest.mark.spark


def test_layout_and_round_trip(spark, lr_pipeline, tmp_path):
    spark_models.spark.save_model(lr_pipeline, tmp_path / "m")
    meta = Model.load(tmp_path / "m")
    conf = meta.flavors["spark"]
    assert conf["model_data"] == "sparkml" and conf["model_class"] == "pyspark.ml.pipeline.PipelineModel"
    assert conf["pyspark_version"]
    assert meta.flavors["python_function"]["loader_module"] == "spark_models.spark"
    assert meta.flavors["python_function"]["data"] == "sparkml"
    assert (tmp_path / "m" / "sparkml" / "metadata").is_dir()
    assert meta.flavors["mleap"]["model_data"] == "mleap/model" and "mleap_skipped" not in conf  # written by default
    assert any(line.startswith("pyspark==") for line in (tmp_path / "m" / "requirements.txt").read_text().split())
    loaded = spark_models.spark.load_model(str(tmp_path / "m"))
    assert isinstance(loaded, PipelineModel) and len(loaded.stages) == 4
    frame = _scoring_frame()
    pd.testing.assert_series_equal(_spark_predictions(spark, loaded, frame), _spark_predictions(spark, lr_pipeline, frame))


def test_bare_model_is_wrapped_in_a_pipeline(spark, train, tmp_path):
    assembled = VectorAssembler(inputCols=["x1", "x2"], outputCol="features").transform(train)
    bare = LogisticRegression(maxIter=5).fit(assembled)
    spark_models.spark.save_model(bare, tmp_path / "bare")
    loaded = spark_models.spark.load_model(tmp_path / "bare")
    assert isinstance(loaded, PipelineModel) and type(loaded.stages[0]).__name__ == "LogisticRegressionModel"
    assert Model.load(tmp_path / "bare").flavors["spark"]["model_class"] == "pyspark.ml.pipeline.PipelineModel"


def test_bad_models_are_clear_errors(tmp_path, train):
    with pytest.raises(InvalidArgumentError, match=r"unfitted Estimator.*LogisticRegression.fit\(df\)"):
        spark_models.spark.save_model(LogisticRegression(), tmp_path / "a")
    with pytest.raises(InvalidArgumentError, match="Transformer or PipelineModel, got dict"):
        spark_models.spark.save_model({"not": "a model"}, tmp_path / "b")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_sample_input_adds_an_mleap_flavor_scored_without_spark(spark, lr_pipeline, train, tmp_path):
    spark_models.spark.save_model(lr_pipeline, tmp_path / "m", sample_input=train)
    meta = Model.load(tmp_path / "m")
    assert meta.flavors["mleap"]["model_data"] == "mleap/model"
    assert (tmp_path / "m" / "mleap" / "model" / "bundle.json").is_file()
    assert (tmp_path / "m" / "mleap" / "schema.json").is_file()
    frame = _scoring_frame()
    expected = _spark_predictions(spark, lr_pipeline, frame).to_numpy()
    auto = spark_models.pyfunc.load_model(str(tmp_path / "m"))
    assert type(auto._model_impl).__name__ == "BundlePyfunc"
    np.testing.assert_array_equal(auto.predict(frame).to_numpy(), expected)
    forced = spark_models.pyfunc.load_model(str(tmp_path / "m"), model_config={"runtime": "spark"})
    assert type(forced._model_impl).__name__ == "SparkPipelinePyfunc"
    np.testing.assert_array_equal(forced.predict(frame).to_numpy(), expected)
    u = spark_models.pyfunc.spark_udf(spark, str(tmp_path / "m"))  # workers score the bundle in numpy
    scored = spark.createDataFrame(frame).withColumn("p", u("x1", "x2", "color")).toPandas()
    np.testing.assert_array_equal(scored["p"].to_numpy(), expected)


def test_sample_input_with_an_unsupported_stage_names_it(train, tmp_path):
    from pyspark.ml.feature import SQLTransformer

    model = PipelineModel([SQLTransformer(statement="SELECT *, x1 * 2 AS x3 FROM __THIS__")])
    with pytest.raises(NotSupportedError, match="SQLTransformer"):
        spark_models.spark.save_model(model, tmp_path / "m", sample_input=train)
    assert not (tmp_path / "m").exists()


def test_pyfunc_predictions_equal_transform(spark, lr_pipeline, rf_pipeline, tmp_path):
    frame = _scoring_frame()
    for name, model in (("lr", lr_pipeline), ("rf", rf_pipeline)):
        spark_models.spark.save_model(model, tmp_path / name)
        got = spark_models.pyfunc.load_model(str(tmp_path / name)).predict(frame)
        assert isinstance(got, pd.Series) and len(got) == len(frame)
        np.testing.assert_array_equal(got.to_numpy(), _spark_predictions(spark, model, frame).to_numpy())
        assert len(spark_models.pyfunc.load_model(str(tmp_path / name)).predict(frame.head(0))) == 0


def test_pyfunc_outputs_follow_the_signature_on_both_runtimes(spark, lr_pipeline, tmp_path):
    sig = ModelSignature(
        Schema([ColSpec("double", "x1"), ColSpec("double", "x2"), ColSpec("string", "color", required=False)]),
        Schema([ColSpec("double", "prediction"), ColSpec("double", "probability")]),
    )
    spark_models.spark.save_model(lr_pipeline, tmp_path / "m", signature=sig)
    frame = _scoring_frame()
    expected = _spark_predictions(spark, lr_pipeline, frame, "probability").tolist()
    for runtime, impl in (("spark", "SparkPipelinePyfunc"), ("mleap", "BundlePyfunc")):
        model = spark_models.pyfunc.load_model(str(tmp_path / "m"), model_config={"runtime": runtime})
        assert type(model._model_impl).__name__ == impl
        got = model.predict(frame)
        assert list(got.columns) == ["prediction", "probability"], runtime
        assert isinstance(got["probability"][0], list) and all(isinstance(p, float) for p in got["probability"][0])
        if runtime == "spark":
            assert got["probability"].tolist() == expected
        else:  # numpy's float arithmetic differs from the JVM's in the last bits
            np.testing.assert_allclose(np.array(got["probability"].tolist()), np.array(expected), rtol=1e-12, atol=1e-15)
        np.testing.assert_array_equal(got["prediction"].to_numpy(), _spark_predictions(spark, lr_pipeline, frame).to_numpy())
        with pytest.raises(SchemaEnforcementError, match="x2"):  # enforcement runs first
            model.predict(frame.drop(columns="x2"))


def test_an_all_missing_optional_column_is_typed_by_the_signature(spark, lr_pipeline, tmp_path):
    """One record without a category: pandas holds [None], which Spark cannot type (NullType)."""
    sig = ModelSignature(
        Schema([ColSpec("double", "x1"), ColSpec("double", "x2"), ColSpec("string", "color", required=False)]),
        Schema([ColSpec("double", "prediction")]),
    )
    spark_models.spark.save_model(lr_pipeline, tmp_path / "m", signature=sig)
    one = pd.DataFrame({"x1": [0.4], "x2": [-1.2], "color": [None]})
    typed = spark.createDataFrame(one, schema="x1 double, x2 double, color string")
    expected = lr_pipeline.transform(typed).select("prediction").first()[0]
    for runtime in ("spark", "mleap"):
        model = spark_models.pyfunc.load_model(str(tmp_path / "m"), model_config={"runtime": runtime})
        assert model.predict(one).tolist() == [expected], runtime


def test_input_example_infers_a_signature(spark, lr_pipeline, tmp_path):
    example = _scoring_frame().head(3)
    spark_models.spark.save_model(lr_pipeline, tmp_path / "m", input_example=example)
    sig = Model.load(tmp_path / "m").signature
    assert sig.inputs.input_names() == ["x1", "x2", "color"]
    assert sig.outputs.inputs[0].type.name == "double"


def test_transform_helper_keeps_input_and_requested_outputs(spark, lr_pipeline, tmp_path):
    spark_models.spark.save_model(lr_pipeline, tmp_path / "m")
    df = spark.createDataFrame(_scoring_frame())
    out = spark_models.spark.transform(df, str(tmp_path / "m"))
    assert out.columns == ["x1", "x2", "color", "prediction"]
    both = spark_models.spark.transform(df, lr_pipeline, ["prediction", "probability"], vectors_as_arrays=True)
    assert both.columns == ["x1", "x2", "color", "prediction", "probability"]
    assert dict(both.dtypes)["probability"] == "array<double>"
    with pytest.raises(SchemaEnforcementError, match="no column.*'score'.*output columns are"):
        spark_models.spark.transform(df, lr_pipeline, ["score"])


def test_no_session_is_started_inside_a_task(spark):
    def attempt(_):
        from spark_models.sessions import active_session

        try:
            active_session()
        except NotSupportedError as e:
            yield str(e)

    messages = spark.sparkContext.parallelize([1], 1).mapPartitions(attempt).collect()
    assert len(messages) == 1 and "inside a Spark task" in messages[0]


def test_conformance(spark, rf_pipeline, tmp_path):
    frame = _scoring_frame()[["x1", "x2"]]
    check_flavor(
        spark_models.spark, rf_pipeline, frame, tmp_path,
        native_predict=lambda m, x: _spark_predictions(spark, m, x),
    )


def test_dfs_tmp_env_var_stages_saves_and_loads_in_local_mode(spark, rf_pipeline, tmp_path, monkeypatch, caplog):
    """$SPARK_MODELS_DFS_TMP makes even local mode stage through it; dfs_tmpdir= wins over it."""
    env_dir, arg_dir = tmp_path / "env-dfs", tmp_path / "arg-dfs"
    monkeypatch.setenv(DFS_TMP_ENV, env_dir.as_uri())
    caplog.set_level("INFO", logger="spark_models.staging")
    spark_models.spark.save_model(rf_pipeline, tmp_path / "m", mleap=False)
    loaded = spark_models.spark.load_model(tmp_path / "m")
    staged = [r.getMessage() for r in caplog.records if "through" in r.getMessage()]
    assert len(staged) == 2 and all(env_dir.as_uri() in m for m in staged), staged
    assert env_dir.is_dir() and list(env_dir.iterdir()) == []  # created by staging, then emptied
    assert (tmp_path / "m" / "sparkml" / "stages").is_dir()
    frame = _scoring_frame()
    pd.testing.assert_series_equal(_spark_predictions(spark, loaded, frame), _spark_predictions(spark, rf_pipeline, frame))
    caplog.clear()
    spark_models.spark.load_model(tmp_path / "m", dfs_tmpdir=arg_dir.as_uri())
    assert [arg_dir.as_uri() in r.getMessage() for r in caplog.records if "through" in r.getMessage()] == [True]
    assert list(arg_dir.iterdir()) == []


def test_save_model_takes_mlflows_positional_order_then_keywords(spark, rf_pipeline, tmp_path, caplog):
    caplog.set_level("INFO", logger="spark_models.staging")
    dfs = tmp_path / "dfs"
    spark_models.spark.save_model(rf_pipeline, tmp_path / "a", Model(metadata={"k": "v"}), None, None, dfs.as_uri())
    assert Model.load(tmp_path / "a").metadata == {"k": "v"}
    assert any(dfs.as_uri() in r.getMessage() for r in caplog.records)  # 6th positional is dfs_tmpdir
    with pytest.raises(TypeError, match="positional"):  # MLflow 2 (sample_input) and 3 (signature) differ here
        spark_models.spark.save_model(rf_pipeline, tmp_path / "b", None, None, None, None, None)
    assert not (tmp_path / "b").exists()
