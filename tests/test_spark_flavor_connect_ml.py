"""spark flavor with ``pyspark.ml.connect`` models: saveToLocal/loadFromLocal, scored on pandas."""

import numpy as np
import pandas as pd
import pytest

import spark_models.pyfunc
import spark_models.spark
from spark_models.flavors import open_model
from spark_models.exceptions import InvalidArgumentError, SchemaEnforcementError
from spark_models.mlmodel import Model
from spark_models.models import ModelSignature
from spark_models.types import ColSpec, Schema, TensorSpec

connect_feature = pytest.importorskip("pyspark.ml.connect.feature")
from pyspark.ml.connect.pipeline import Pipeline, PipelineModel  # noqa: E402

FRAME = pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0], "b": [0.0, 1.0, 0.0, 1.0]})


@pytest.fixture(scope="module")
def scaler():
    stages = [
        connect_feature.ArrayAssembler(inputCols=["a", "b"], outputCol="features", featureSizes=[1, 1]),
        connect_feature.StandardScaler(inputCol="features", outputCol="scaled"),
    ]
    return Pipeline(stages=stages).fit(FRAME)


def _expected(model, column="scaled"):
    return [list(map(float, v)) for v in model.transform(FRAME.copy())[column]]


def test_round_trip_through_save_to_local(scaler, tmp_path):
    spark_models.spark.save_model(scaler, tmp_path / "m")
    conf = Model.load(tmp_path / "m").flavors["spark"]
    assert conf["model_class"] == "pyspark.ml.connect.pipeline.PipelineModel"
    assert (tmp_path / "m" / "sparkml" / "metadata.json").is_file()  # saveToLocal's layout
    loaded = spark_models.spark.load_model(str(tmp_path / "m"))
    assert isinstance(loaded, PipelineModel)
    assert _expected(loaded) == _expected(scaler)
    got = spark_models.pyfunc.load_model(str(tmp_path / "m")).predict(FRAME)  # no "prediction": the added column
    assert got.name == "scaled" and got.tolist() == _expected(scaler)


def test_pyfunc_outputs_follow_the_signature(scaler, tmp_path):
    sig = ModelSignature(Schema([ColSpec("double", "a"), ColSpec("double", "b")]),
                         Schema([TensorSpec(np.float64, (-1, 2), "scaled"), TensorSpec(np.float64, (-1, 2), "features")]))
    spark_models.spark.save_model(scaler, tmp_path / "m", signature=sig)
    got = spark_models.pyfunc.load_model(str(tmp_path / "m")).predict(FRAME)
    assert list(got.columns) == ["scaled", "features"]
    assert got["scaled"].tolist() == _expected(scaler) and got["features"].tolist() == _expected(scaler, "features")
    wrong = ModelSignature(sig.inputs, Schema([ColSpec("double", "prediction")]))
    spark_models.spark.save_model(scaler, tmp_path / "w", signature=wrong)
    with pytest.raises(SchemaEnforcementError, match=r"no column\(s\) \['prediction'\].*'scaled'"):
        spark_models.pyfunc.load_model(str(tmp_path / "w")).predict(FRAME)


def test_input_example_is_scored_on_pandas_and_estimators_are_refused(scaler, tmp_path, caplog):
    spark_models.spark.save_model(scaler, tmp_path / "m", input_example=FRAME.head(2))
    meta = Model.load(tmp_path / "m")
    assert meta.saved_input_example_info
    # the example went through the model's own pandas transform: its list output is MLflow 3's array type
    assert repr(meta.signature.outputs) == "['scaled': Array(double)]"
    with pytest.raises(InvalidArgumentError, match=r"unfitted Estimator.*StandardScaler.fit\(df\)"):
        spark_models.spark.save_model(connect_feature.StandardScaler(inputCol="f"), tmp_path / "e")
    assert not (tmp_path / "e").exists()


@pytest.mark.spark
def test_spark_udf_scores_it_in_the_workers(spark, scaler, tmp_path):
    spark_models.spark.save_model(scaler, tmp_path / "m")
    # ships as it is: no conversion to a bundle needed (the model transforms pandas itself)
    assert spark_models.spark.FLAVOR.prepare_for_udf(spark, open_model(tmp_path / "m"), str(tmp_path / "m")) is None
    u = spark_models.pyfunc.spark_udf(spark, str(tmp_path / "m"), result_type="array<double>")
    got = spark.createDataFrame(FRAME).withColumn("s", u("a", "b")).toPandas()["s"]
    assert [list(v) for v in got] == _expected(scaler)
