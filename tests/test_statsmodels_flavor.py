"""The statsmodels flavor: MLflow's layout, the pickle and allow_code, remove_data, regression
results (conformance with spark_udf), time-series results (one forecast request per row, also
through spark_udf), and MLflow compatibility in both directions."""

import datetime as dt
import os

import numpy as np
import pandas as pd
import pytest

sm = pytest.importorskip("statsmodels.api")

import statsmodels  # noqa: E402
import statsmodels.formula.api as smf  # noqa: E402
from statsmodels.tsa.arima.model import ARIMA  # noqa: E402

import spark_models.pyfunc  # noqa: E402
import spark_models.statsmodels  # noqa: E402
from spark_models.environment import read_requirements  # noqa: E402
from spark_models.exceptions import InvalidArgumentError, SchemaEnforcementError, UnsafeModelError  # noqa: E402
from spark_models.flavors.testing import check_flavor  # noqa: E402
from spark_models.mlmodel import Model  # noqa: E402
from tests.isolation import run_json  # noqa: E402


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=80), "b": rng.normal(size=80), "color": rng.choice(["red", "blue"], 80)})
    y = 1 + 2 * X.a - X.b + (X.color == "red") + rng.normal(scale=0.1, size=80)
    return X, y


@pytest.fixture(scope="module")
def ols(data):
    X, y = data
    return smf.ols("y ~ a + b + color", data=X.assign(y=y)).fit()


@pytest.fixture(scope="module")
def arima():
    """An AR(1) fitted on 40 days (2020-01-01 .. 2020-02-09): positions 0..39 are in the sample."""
    rng = np.random.default_rng(1)
    series = pd.Series(np.cumsum(rng.normal(size=40)), index=pd.date_range("2020-01-01", periods=40, freq="D"))
    return ARIMA(series, order=(1, 0, 0)).fit()


def _forecast(results, start, end):
    return results.predict(start=start, end=end).tolist()


def test_layout_matches_mlflow(ols, data, tmp_model_dir):
    X, _ = data
    spark_models.statsmodels.save_model(ols, tmp_model_dir)
    assert sorted(p.name for p in tmp_model_dir.iterdir()) == sorted(
        ["MLmodel", "model.statsmodels", "conda.yaml", "requirements.txt", "python_env.yaml"])
    meta = Model.load(tmp_model_dir)
    conf = meta.get_flavor("statsmodels")
    assert (conf["data"], conf["statsmodels_version"]) == ("model.statsmodels", statsmodels.__version__)
    pf = meta.get_flavor("python_function")
    assert pf["loader_module"] == "spark_models.statsmodels" and pf["data"] == "model.statsmodels"
    assert f"statsmodels=={statsmodels.__version__}" in read_requirements(tmp_model_dir)
    native = spark_models.statsmodels.load_model(tmp_model_dir)
    assert type(native) is type(ols)
    np.testing.assert_array_equal(native.params, ols.params)
    # pyfunc: results.predict(frame), the frame being the exog (formula columns by name).
    pd.testing.assert_series_equal(spark_models.pyfunc.load_model(tmp_model_dir).predict(X), ols.predict(X))


def test_the_pickle_is_refused_without_allow_code(ols, tmp_model_dir, monkeypatch):
    spark_models.statsmodels.save_model(ols, tmp_model_dir)
    with pytest.raises(UnsafeModelError, match="unpickles model.statsmodels"):
        spark_models.pyfunc.load_model(tmp_model_dir, allow_code=False)
    with pytest.raises(UnsafeModelError, match="unpickles model.statsmodels"):
        spark_models.statsmodels.load_model(tmp_model_dir, allow_code=False)
    monkeypatch.setenv("SPARK_MODELS_ALLOW_CODE", "0")
    with pytest.raises(UnsafeModelError):
        spark_models.pyfunc.load_model(tmp_model_dir)


def test_remove_data_strips_a_copy(ols, data, tmp_path):
    X, _ = data
    spark_models.statsmodels.save_model(ols, tmp_path / "full")
    spark_models.statsmodels.save_model(ols, tmp_path / "lean", remove_data=True)
    size = {name: (tmp_path / name / "model.statsmodels").stat().st_size for name in ("full", "lean")}
    assert size["lean"] < size["full"]
    assert ols.model.endog is not None and len(ols.fittedvalues) == len(X)  # the caller's object is intact
    lean = spark_models.statsmodels.load_model(tmp_path / "lean")
    assert lean.model.endog is None
    np.testing.assert_allclose(lean.predict(X), ols.predict(X))


@pytest.mark.spark
def test_conformance_with_spark_udf(ols, data, tmp_path, spark):
    X, y = data
    check_flavor(spark_models.statsmodels.FLAVOR, ols, X, tmp_path / "formula", spark=spark)
    # An array model (exog by position, constant included) returns numpy: conforms too.
    exog = sm.add_constant(X[["a", "b"]])
    glm = sm.GLM((y > 1).astype(int).to_numpy(), exog.to_numpy(), family=sm.families.Binomial()).fit()
    check_flavor(spark_models.statsmodels.FLAVOR, glm, exog, tmp_path / "glm")


def test_time_series_rows_are_forecast_requests(arima, tmp_model_dir):
    spark_models.statsmodels.save_model(arima, tmp_model_dir)
    requests = pd.DataFrame(
        {"start": [38, 40, 38, "2020-02-05", pd.Timestamp("2020-02-09"), dt.date(2020, 2, 10)],
         "end": [42, 40, 42, "2020-02-12", pd.Timestamp("2020-02-11"), np.int64(41)]},
        index=[10, 11, 12, 13, 14, 15])
    out = spark_models.pyfunc.load_model(tmp_model_dir).predict(requests)
    assert isinstance(out, pd.Series) and out.name == "predicted_mean" and list(out.index) == list(requests.index)
    expected = [_forecast(arima, 38, 42), _forecast(arima, 40, 40), _forecast(arima, 38, 42),
                _forecast(arima, "2020-02-05", "2020-02-12"), _forecast(arima, "2020-02-09", "2020-02-11"),
                _forecast(arima, pd.Timestamp("2020-02-10"), 41)]
    assert out.tolist() == expected
    assert [len(v) for v in out] == [5, 1, 5, 8, 3, 2]  # in-sample steps and forecasts beyond day 40


def test_time_series_input_errors(arima, tmp_model_dir):
    spark_models.statsmodels.save_model(arima, tmp_model_dir)
    model = spark_models.pyfunc.load_model(tmp_model_dir)
    with pytest.raises(SchemaEnforcementError, match=r"lacks \['end'\]"):
        model.predict(pd.DataFrame({"start": [38]}))
    with pytest.raises(SchemaEnforcementError, match="Row 1: 'end' is missing"):
        model.predict(pd.DataFrame({"start": [38, 39], "end": pd.array([40, None], dtype="Int64")}))
    with pytest.raises(SchemaEnforcementError, match="Row 0: 'start' holds float"):
        model.predict(pd.DataFrame({"start": [38.5], "end": [40]}))


def test_save_refuses_what_is_not_fitted_results(tmp_path):
    with pytest.raises(InvalidArgumentError, match="fitted statsmodels results"):
        spark_models.statsmodels.save_model(sm.OLS([1.0, 2.0], [[1.0], [2.0]]), tmp_path / "m")
    assert not (tmp_path / "m").exists()


@pytest.mark.spark
def test_time_series_through_spark_udf(arima, tmp_path, spark):
    steps = pd.DataFrame({"start": [38, 40], "end": [42, 41]})
    spark_models.statsmodels.save_model(arima, tmp_path / "steps", input_example=steps)
    sig = Model.load(tmp_path / "steps").signature
    assert sig.inputs.input_names() == ["start", "end"]
    assert sig.outputs.to_dict()[0]["type"] == "array"  # -> array<double> in spark_udf
    rows = pd.DataFrame({"row": range(6), "start": [38, 40, 0, 39, 38, 45], "end": [42, 41, 3, 39, 42, 47]})
    df = spark.createDataFrame(rows).repartition(3)
    out = df.withColumn("f", spark_models.pyfunc.spark_udf(spark, str(tmp_path / "steps"))()).orderBy("row").toPandas()
    assert [list(v) for v in out["f"]] == [_forecast(arima, s, e) for s, e in zip(rows.start, rows.end)]
    # Without a signature (as MLflow saves it by default): name the columns and the result type.
    spark_models.statsmodels.save_model(arima, tmp_path / "bare")
    predict = spark_models.pyfunc.spark_udf(spark, str(tmp_path / "bare"), result_type="array<double>")
    out = df.withColumn("f", predict("start", "end")).orderBy("row").toPandas()
    assert [list(v) for v in out["f"]] == [_forecast(arima, s, e) for s, e in zip(rows.start, rows.end)]

    # Dates: a Spark DATE column reaches the model as datetime (the signature's type).
    days = pd.DataFrame({"start": pd.to_datetime(["2020-02-01"]), "end": pd.to_datetime(["2020-02-12"])})
    spark_models.statsmodels.save_model(arima, tmp_path / "dates", input_example=days)
    dated = spark.createDataFrame([(0, dt.date(2020, 2, 1), dt.date(2020, 2, 12)),
                                   (1, dt.date(2020, 2, 9), dt.date(2020, 2, 9))], "row int, start date, `end` date")
    predict = spark_models.pyfunc.spark_udf(spark, str(tmp_path / "dates"))
    out = dated.withColumn("f", predict()).orderBy("row").toPandas()
    assert [list(v) for v in out["f"]] == [_forecast(arima, "2020-02-01", "2020-02-12"),
                                           _forecast(arima, "2020-02-09", "2020-02-09")]


WITHOUT_MLFLOW = r"""
import json, sys, pandas as pd, spark_models.pyfunc, spark_models.statsmodels
root = {root!r}
X = pd.read_parquet(root + "/X.parquet")
request = pd.DataFrame({{"start": [38], "end": [42]}})
arima = spark_models.pyfunc.load_model(root + "/arima")
out = {{
    "ols": spark_models.pyfunc.load_model(root + "/ols").predict(X).tolist(),
    "ols_native": spark_models.statsmodels.load_model(root + "/ols").predict(X).tolist(),
    "arima": arima.predict(request).tolist(),
    "arima_rows": arima.predict(pd.DataFrame({{"start": [38, 0], "end": [42, 2]}})).tolist(),
    "mlflow_loaded": any(m.split(".")[0] == "mlflow" for m in sys.modules),
}}
print(json.dumps(out))
"""


@pytest.mark.slow
def test_mlflow_written_models_load_without_mlflow(ols, arima, data, tmp_path):
    mlflow_statsmodels = pytest.importorskip("mlflow.statsmodels")
    import mlflow.pyfunc

    X, _ = data
    mlflow_statsmodels.save_model(ols, str(tmp_path / "ols"), input_example=X.head(3), pip_requirements=["statsmodels"])
    mlflow_statsmodels.save_model(arima, str(tmp_path / "arima"), pip_requirements=["statsmodels"])
    X.to_parquet(tmp_path / "X.parquet")
    theirs_ols = mlflow.pyfunc.load_model(str(tmp_path / "ols")).predict(X).tolist()
    theirs_arima = mlflow.pyfunc.load_model(str(tmp_path / "arima")).predict(pd.DataFrame({"start": [38], "end": [42]}))
    got = run_json(WITHOUT_MLFLOW.format(root=str(tmp_path)), blocked=("mlflow",))
    assert got["ols"] == theirs_ols and got["ols_native"] == theirs_ols
    # MLflow returns the forecast Series of its one row; here that row holds it as a list.
    assert got["arima"] == [theirs_arima.tolist()] and len(theirs_arima) == 5
    assert got["arima_rows"] == [_forecast(arima, 38, 42), _forecast(arima, 0, 2)]
    assert got["mlflow_loaded"] is False


@pytest.mark.slow
def test_our_models_load_in_mlflow(ols, arima, data, tmp_path):
    mlflow_statsmodels = pytest.importorskip("mlflow.statsmodels")
    import mlflow.pyfunc

    X, _ = data
    spark_models.statsmodels.save_model(ols, tmp_path / "ols", input_example=X.head(3))
    requests = pd.DataFrame({"start": [38, 0], "end": [42, 2]})
    spark_models.statsmodels.save_model(arima, tmp_path / "arima", input_example=requests)
    pd.testing.assert_series_equal(mlflow.pyfunc.load_model(str(tmp_path / "ols")).predict(X),
                                   spark_models.pyfunc.load_model(tmp_path / "ols").predict(X))
    assert (mlflow.pyfunc.load_model(str(tmp_path / "arima")).predict(requests).tolist()
            == spark_models.pyfunc.load_model(tmp_path / "arima").predict(requests).tolist())
    theirs = mlflow_statsmodels.load_model(str(tmp_path / "ols"))
    np.testing.assert_array_equal(theirs.predict(X), ols.predict(X))
    conf = mlflow.models.Model.load(str(tmp_path / "ols")).flavors["statsmodels"]
    assert os.path.basename(conf["data"]) == "model.statsmodels"
