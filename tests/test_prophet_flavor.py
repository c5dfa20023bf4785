"""The prophet flavor: MLflow's layout (JSON, no code), conformance, Prophet's forecast frame in the
input's row order, ``ds`` scored row by row through spark_udf, and MLflow compatibility in both
directions. The models are fitted once for the module (Stan: a fraction of a second each)."""

import json
import logging

import numpy as np
import pandas as pd
import pytest

prophet = pytest.importorskip("prophet")

from prophet.serialize import model_from_json  # noqa: E402

import spark_models.prophet  # noqa: E402
import spark_models.pyfunc  # noqa: E402
from spark_models.environment import read_requirements  # noqa: E402
from spark_models.exceptions import InvalidArgumentError, SchemaEnforcementError  # noqa: E402
from spark_models.flavors.testing import check_flavor  # noqa: E402
from spark_models.mlmodel import Model  # noqa: E402
from tests.isolation import run_json  # noqa: E402

SEASONALITY = {"yearly_seasonality": False, "daily_seasonality": False, "weekly_seasonality": True}


@pytest.fixture(scope="module")
def history():
    logging.getLogger("cmdstanpy").setLevel(logging.WARNING)
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"ds": pd.date_range("2021-01-01", periods=60, freq="D"), "temp": rng.normal(size=60)})
    frame["y"] = np.sin(np.arange(60) / 7) + 0.5 * frame.temp + rng.normal(scale=0.1, size=60)
    return frame


@pytest.fixture(scope="module")
def plain(history):
    """No uncertainty sampling: every output column is deterministic."""
    return prophet.Prophet(uncertainty_samples=0, **SEASONALITY).fit(history[["ds", "y"]])


@pytest.fixture(scope="module")
def with_regressor(history):
    """An extra regressor and Prophet's default Monte Carlo intervals (yhat_lower / yhat_upper)."""
    model = prophet.Prophet(**SEASONALITY)
    model.add_regressor("temp")
    return model.fit(history)


@pytest.fixture(scope="module")
def future():
    return pd.DataFrame({"ds": pd.date_range("2021-03-02", periods=6, freq="D"), "temp": np.linspace(-1, 1, 6)})


def _seeded(predict, frame):
    np.random.seed(0)  # Prophet samples its intervals from numpy's global random state
    return predict(frame)


def test_layout_matches_mlflow(plain, future, tmp_model_dir):
    spark_models.prophet.save_model(plain, tmp_model_dir)
    assert sorted(p.name for p in tmp_model_dir.iterdir()) == sorted(
        ["MLmodel", "model.pr", "conda.yaml", "requirements.txt", "python_env.yaml"])
    stored = json.loads((tmp_model_dir / "model.pr").read_text())
    assert isinstance(stored, str)  # model_to_json's text, JSON-encoded once more, as MLflow writes it
    pd.testing.assert_frame_equal(model_from_json(stored).predict(future[["ds"]]), plain.predict(future[["ds"]]))
    meta = Model.load(tmp_model_dir)
    conf = meta.get_flavor("prophet")
    assert {k: conf[k] for k in ("data", "model_type", "prophet_version")} == {
        "data": "model.pr", "model_type": "Prophet", "prophet_version": prophet.__version__}
    pf = meta.get_flavor("python_function")
    assert pf["loader_module"] == "spark_models.prophet" and pf["data"] == "model.pr"
    assert f"prophet=={prophet.__version__}" in read_requirements(tmp_model_dir)
    native = spark_models.prophet.load_model(tmp_model_dir)
    assert type(native) is prophet.Prophet
    # JSON runs no code: the model loads with allow_code=False.
    out = spark_models.pyfunc.load_model(tmp_model_dir, allow_code=False).predict(future[["ds"]])
    pd.testing.assert_frame_equal(out, plain.predict(future[["ds"]]))
    assert list(out.columns) == ["ds", "trend", "additive_terms", "weekly", "multiplicative_terms", "yhat"]


def test_conformance(plain, history, future, tmp_path):
    check_flavor(spark_models.prophet.FLAVOR, plain, future[["ds"]], tmp_path / "plain")
    # check_flavor compares every output column, so no Monte Carlo intervals here.
    regressor = prophet.Prophet(uncertainty_samples=0, **SEASONALITY)
    regressor.add_regressor("temp")
    check_flavor(spark_models.prophet.FLAVOR, regressor.fit(history), future, tmp_path / "regressor")


def test_forecast_comes_back_in_the_input_order(with_regressor, future, tmp_model_dir):
    spark_models.prophet.save_model(with_regressor, tmp_model_dir)
    model = spark_models.pyfunc.load_model(tmp_model_dir)
    # Unsorted, a label index, and one date twice with different regressor values.
    shuffled = pd.concat([future.iloc[[4, 1, 5]], future.iloc[[1]].assign(temp=3.0), future.iloc[[0, 3, 2]]])
    shuffled.index = list("abcdefg")
    out = _seeded(model.predict, shuffled)
    assert list(out.index) == list("abcdefg")
    assert list(out.ds) == list(shuffled.ds)
    by_row = [with_regressor.predict(shuffled.iloc[[i]]).yhat.iloc[0] for i in range(len(shuffled))]
    np.testing.assert_allclose(out.yhat.to_numpy(), by_row, rtol=1e-12)
    assert out.loc["b", "yhat"] != out.loc["d", "yhat"]
    # Prophet (and MLflow) return the sorted frame: the same rows, in ds order.
    sorted_native = _seeded(with_regressor.predict, shuffled)
    pd.testing.assert_frame_equal(out.sort_values("ds", kind="stable").reset_index(drop=True), sorted_native)


def test_ds_strings_and_missing_ds(plain, future, tmp_path):
    spark_models.prophet.save_model(plain, tmp_path / "sig", input_example=future[["ds"]].head(2))
    sig = Model.load(tmp_path / "sig").signature
    assert sig.inputs.to_dict() == [{"type": "datetime", "name": "ds", "required": True}]
    as_text = pd.DataFrame({"ds": future.ds.dt.strftime("%Y-%m-%d")})
    pd.testing.assert_frame_equal(spark_models.pyfunc.load_model(tmp_path / "sig").predict(as_text),
                                  plain.predict(future[["ds"]]))
    spark_models.prophet.save_model(plain, tmp_path / "nosig")
    with pytest.raises(SchemaEnforcementError, match="'ds' column"):
        spark_models.pyfunc.load_model(tmp_path / "nosig").predict(pd.DataFrame({"date": future.ds}))


def test_save_refuses_an_unfitted_model(tmp_path):
    with pytest.raises(InvalidArgumentError, match="fitted Prophet"):
        spark_models.prophet.save_model(prophet.Prophet(), tmp_path / "m")
    assert not (tmp_path / "m").exists()


@pytest.mark.spark
def test_spark_udf_scores_a_ds_column_row_by_row(plain, with_regressor, future, tmp_path, spark):
    spark_models.prophet.save_model(plain, tmp_path / "plain", input_example=future[["ds"]].head(2))
    spark_models.prophet.save_model(with_regressor, tmp_path / "reg", input_example=future.head(2))
    order = [3, 0, 5, 1, 4, 2]
    rows = [(i, future.ds[j].date(), float(future.temp[j])) for i, j in enumerate(order)]
    df = spark.createDataFrame(rows, "row int, ds date, temp double")  # a DATE column; 2 unsorted partitions
    assert df.rdd.getNumPartitions() == 2
    with pytest.raises(InvalidArgumentError, match="'ds' has type datetime"):
        spark_models.pyfunc.spark_udf(spark, str(tmp_path / "plain"))  # the ds output is a datetime
    predict = spark_models.pyfunc.spark_udf(spark, str(tmp_path / "plain"),
                                            result_type="struct<yhat:double,trend:double>")
    out = df.withColumn("f", predict()).orderBy("row").select("f.*").toPandas()
    expected = plain.predict(future[["ds"]]).iloc[order]  # Prophet itself would sort the rows by ds
    np.testing.assert_allclose(out.yhat, expected.yhat, rtol=1e-12)
    np.testing.assert_allclose(out.trend, expected.trend, rtol=1e-12)

    predict = spark_models.pyfunc.spark_udf(spark, str(tmp_path / "reg"),
                                            result_type="struct<yhat:double,yhat_lower:double,yhat_upper:double>")
    out = df.withColumn("f", predict()).orderBy("row").select("f.*").toPandas()
    np.testing.assert_allclose(out.yhat, with_regressor.predict(future).yhat.iloc[order], rtol=1e-12)
    assert (out.yhat_lower < out.yhat).all() and (out.yhat < out.yhat_upper).all()  # sampled in the workers


WITHOUT_MLFLOW = r"""
import json, sys, numpy as np, pandas as pd, spark_models.pyfunc, spark_models.prophet
root = {root!r}
future = pd.read_parquet(root + "/future.parquet")
out = {{}}
for name, frame in (("plain", future[["ds"]]), ("reg", future)):
    np.random.seed(0)
    got = spark_models.pyfunc.load_model(root + "/" + name).predict(frame)
    out[name] = {{"columns": list(got.columns), "ds": got.ds.astype(str).tolist(),
                 "values": got.drop(columns="ds").to_numpy().tolist()}}
out["native"] = type(spark_models.prophet.load_model(root + "/plain")).__name__
out["mlflow_loaded"] = any(m.split(".")[0] == "mlflow" for m in sys.modules)
print(json.dumps(out))
"""


@pytest.mark.slow
def test_mlflow_written_models_load_without_mlflow(plain, with_regressor, future, tmp_path):
    mlflow_prophet = pytest.importorskip("mlflow.prophet")
    import mlflow.pyfunc

    mlflow_prophet.save_model(plain, str(tmp_path / "plain"), input_example=future[["ds"]].head(2))
    mlflow_prophet.save_model(with_regressor, str(tmp_path / "reg"))
    future.to_parquet(tmp_path / "future.parquet")
    got = run_json(WITHOUT_MLFLOW.format(root=str(tmp_path)), blocked=("mlflow",))
    for name, frame in (("plain", future[["ds"]]), ("reg", future)):
        theirs = _seeded(mlflow.pyfunc.load_model(str(tmp_path / name)).predict, frame)
        assert got[name]["columns"] == list(theirs.columns)
        assert got[name]["ds"] == theirs.ds.astype(str).tolist()
        assert got[name]["values"] == theirs.drop(columns="ds").to_numpy().tolist(), name
    assert "yhat_upper" in got["reg"]["columns"]
    assert got["native"] == "Prophet" and got["mlflow_loaded"] is False


@pytest.mark.slow
def test_our_models_load_in_mlflow(plain, with_regressor, future, tmp_path):
    mlflow_prophet = pytest.importorskip("mlflow.prophet")
    import mlflow.pyfunc

    spark_models.prophet.save_model(plain, tmp_path / "plain", input_example=future[["ds"]].head(2))
    spark_models.prophet.save_model(with_regressor, tmp_path / "reg", input_example=future.head(2))
    for name, frame in (("plain", future[["ds"]]), ("reg", future)):
        theirs = _seeded(mlflow.pyfunc.load_model(str(tmp_path / name)).predict, frame)
        pd.testing.assert_frame_equal(theirs, _seeded(spark_models.pyfunc.load_model(tmp_path / name).predict, frame))
    native = mlflow_prophet.load_model(str(tmp_path / "plain"))
    pd.testing.assert_frame_equal(native.predict(future[["ds"]]), plain.predict(future[["ds"]]))
    assert mlflow.models.Model.load(str(tmp_path / "reg")).signature.inputs.input_names() == ["ds", "temp"]
