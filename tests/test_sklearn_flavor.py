"""The sklearn flavor: layout, formats, predict methods, skops trust, conformance."""

import numpy as np
import pandas as pd
import pytest
import skops.io
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

import spark_models.pyfunc
import spark_models.sklearn
from spark_models.exceptions import InvalidArgumentError, UnsafeModelError
from spark_models.flavors.testing import check_flavor
from spark_models.mlmodel import Model


@pytest.fixture(scope="module")
def iris():
    data = load_iris(as_frame=True)
    X = data.data
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, data.target)
    return model, X


@pytest.mark.parametrize("fmt, data_file", [("cloudpickle", "model.pkl"), ("pickle", "model.pkl"), ("skops", "model.skops")])
def test_layout_and_round_trip(iris, tmp_model_dir, fmt, data_file):
    model, X = iris
    spark_models.sklearn.save_model(model, tmp_model_dir, serialization_format=fmt)
    assert sorted(p.name for p in tmp_model_dir.iterdir()) == sorted(["MLmodel", data_file, "conda.yaml", "requirements.txt", "python_env.yaml"])
    meta = Model.load(tmp_model_dir)
    sk = meta.get_flavor("sklearn")
    assert sk["pickled_model"] == data_file and sk["serialization_format"] == fmt
    import sklearn

    assert sk["sklearn_version"] == sklearn.__version__
    pf = meta.get_flavor("python_function")
    assert pf["loader_module"] == "spark_models.sklearn" and pf["predict_fn"] == "predict"
    assert pf["env"] == {"conda": "conda.yaml", "virtualenv": "python_env.yaml"}
    native = spark_models.sklearn.load_model(tmp_model_dir)
    np.testing.assert_array_equal(native.predict(X), model.predict(X))
    np.testing.assert_array_equal(spark_models.pyfunc.load_model(tmp_model_dir).predict(X), model.predict(X))


def test_predict_proba_at_save_and_at_load(iris, tmp_path):
    model, X = iris
    spark_models.sklearn.save_model(model, tmp_path / "a", pyfunc_predict_fn="predict_proba")
    np.testing.assert_allclose(spark_models.pyfunc.load_model(tmp_path / "a").predict(X), model.predict_proba(X))
    spark_models.sklearn.save_model(model, tmp_path / "b")
    loaded = spark_models.pyfunc.load_model(tmp_path / "b", model_config={"predict_fn": "predict_log_proba"})
    np.testing.assert_allclose(loaded.predict(X), model.predict_log_proba(X))


def _log_plus_one(x):
    return np.log1p(x)


def test_skops_untrusted_types_refused_then_trusted(tmp_path):
    X = pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0]})
    model = make_pipeline(FunctionTransformer(_log_plus_one), LogisticRegression()).fit(X, [0, 0, 1, 1])
    untrusted = skops.io.get_untrusted_types(data=skops.io.dumps(model))
    assert any("_log_plus_one" in t for t in untrusted)
    spark_models.sklearn.save_model(model, tmp_path / "a", serialization_format="skops")
    with pytest.raises(UnsafeModelError, match="_log_plus_one"):
        spark_models.sklearn.load_model(tmp_path / "a")
    # Trusting at load time, or at save time (recorded in MLmodel), both work.
    np.testing.assert_array_equal(spark_models.sklearn.load_model(tmp_path / "a", skops_trusted_types=untrusted).predict(X), model.predict(X))
    spark_models.sklearn.save_model(model, tmp_path / "b", serialization_format="skops", skops_trusted_types=untrusted)
    np.testing.assert_array_equal(spark_models.pyfunc.load_model(tmp_path / "b").predict(X), model.predict(X))


def test_argument_errors(iris, tmp_path):
    model, _ = iris
    with pytest.raises(InvalidArgumentError, match="serialization_format"):
        spark_models.sklearn.save_model(model, tmp_path / "a", serialization_format="joblib")
    with pytest.raises(InvalidArgumentError, match="pyfunc_predict_fn"):
        spark_models.sklearn.save_model(model, tmp_path / "b", pyfunc_predict_fn="fit")
    from sklearn.linear_model import LinearRegression

    with pytest.raises(InvalidArgumentError, match="predict_proba"):
        spark_models.sklearn.save_model(LinearRegression().fit([[1.0]], [1.0]), tmp_path / "c", pyfunc_predict_fn="predict_proba")


@pytest.mark.parametrize("fmt", ["cloudpickle", "skops"])
def test_conformance(iris, tmp_path, fmt):
    model, X = iris
    check_flavor(spark_models.sklearn, model, X, tmp_path, save=lambda m, p, **kw: spark_models.sklearn.save_model(m, p, serialization_format=fmt, **kw))
