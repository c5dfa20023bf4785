"""The catboost flavor: MLflow's layout, model types, save formats, categorical columns by name,
threads, conformance (with spark_udf), and MLflow compatibility in both directions."""

import numpy as np
import pandas as pd
import pytest
import yaml

catboost = pytest.importorskip("catboost")

import spark_models.catboost  # noqa: E402
import spark_models.pyfunc  # noqa: E402
from spark_models.environment import read_requirements  # noqa: E402
from spark_models.exceptions import InvalidArgumentError, MalformedModelError, NotSupportedError  # noqa: E402
from spark_models.flavors.testing import check_flavor  # noqa: E402
from spark_models.mlmodel import Model  # noqa: E402
from spark_models.models import infer_signature  # noqa: E402
from tests.isolation import run_json  # noqa: E402

# allow_writing_files=False: CatBoost would otherwise write catboost_info/ into the working directory.
FIT = {"iterations": 15, "depth": 3, "verbose": False, "random_seed": 0, "thread_count": 1,
       "allow_writing_files": False}


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=80), "b": rng.normal(size=80),
                      "color": rng.choice(["red", "green", "blue"], 80)})
    y = ((X.a + X.b > 0) ^ (X.color == "red")).astype(int)
    return X, y


@pytest.fixture(scope="module")
def clf(data):
    X, y = data
    return catboost.CatBoostClassifier(cat_features=["color"], **FIT).fit(X, y)


@pytest.fixture(scope="module")
def reg(data):
    X, _ = data
    return catboost.CatBoostRegressor(cat_features=["color"], **FIT).fit(X, 2 * X.a - X.b + (X.color == "blue"))


def test_layout_matches_mlflow(clf, data, tmp_model_dir):
    X, _ = data
    spark_models.catboost.save_model(clf, tmp_model_dir)
    assert sorted(p.name for p in tmp_model_dir.iterdir()) == sorted(
        ["MLmodel", "model.cb", "conda.yaml", "requirements.txt", "python_env.yaml"])
    meta = Model.load(tmp_model_dir)
    conf = meta.get_flavor("catboost")
    assert {k: conf[k] for k in ("data", "model_type", "save_format", "catboost_version")} == {
        "data": "model.cb", "model_type": "CatBoostClassifier", "save_format": "cbm",
        "catboost_version": catboost.__version__}
    pf = meta.get_flavor("python_function")
    assert pf["loader_module"] == "spark_models.catboost" and pf["data"] == "model.cb"
    assert f"catboost=={catboost.__version__}" in read_requirements(tmp_model_dir)
    native = spark_models.catboost.load_model(tmp_model_dir)
    assert type(native) is catboost.CatBoostClassifier
    np.testing.assert_array_equal(native.predict_proba(X), clf.predict_proba(X))
    # pyfunc is MLflow's wrapper: predict() of the model (labels for a classifier); no code runs.
    loaded = spark_models.pyfunc.load_model(tmp_model_dir, allow_code=False)
    np.testing.assert_array_equal(loaded.predict(X), clf.predict(X))
    assert loaded.get_raw_model().get_raw_model().get_cat_feature_indices() == [2]


def _ranker(X):
    groups = np.repeat(np.arange(8), 10)
    ranker = catboost.CatBoostRanker(loss_function="YetiRank", **FIT)
    return ranker.fit(X[["a", "b"]], (X.a > 0).astype(int), group_id=groups)


@pytest.mark.parametrize("kind", ["CatBoostRegressor", "CatBoostRanker", "CatBoost"])
def test_each_model_type_loads_as_its_class(kind, reg, data, tmp_model_dir):
    X, _ = data
    if kind == "CatBoostRanker":
        model, X = _ranker(X), X[["a", "b"]]
    elif kind == "CatBoost":
        model = catboost.CatBoost({"loss_function": "RMSE", "cat_features": ["color"], **FIT}).fit(X, X.a)
    else:
        model = reg
    spark_models.catboost.save_model(model, tmp_model_dir)
    assert Model.load(tmp_model_dir).get_flavor("catboost")["model_type"] == kind
    native = spark_models.catboost.load_model(tmp_model_dir)
    assert type(native).__name__ == kind
    np.testing.assert_array_equal(native.predict(X), model.predict(X))
    np.testing.assert_array_equal(spark_models.pyfunc.load_model(tmp_model_dir).predict(X), model.predict(X))


def test_json_and_onnx_formats_load_back(clf, data, tmp_path):
    X, _ = data
    spark_models.catboost.save_model(clf, tmp_path / "json", format="json")
    assert Model.load(tmp_path / "json").get_flavor("catboost")["save_format"] == "json"
    np.testing.assert_array_equal(spark_models.pyfunc.load_model(tmp_path / "json").predict(X), clf.predict(X))
    # ONNX has no categorical features and keeps no feature names: columns go by position.
    numeric = catboost.CatBoostRegressor(**FIT).fit(X[["a", "b"]], X.a - X.b)
    spark_models.catboost.save_model(numeric, tmp_path / "onnx", format="onnx")
    got = spark_models.pyfunc.load_model(tmp_path / "onnx").predict(X[["a", "b"]])
    np.testing.assert_allclose(np.ravel(got), numeric.predict(X[["a", "b"]]), rtol=1e-5, atol=1e-6)


def test_export_only_formats_are_refused(clf, tmp_path):
    for fmt in ("cpp", "python", "pmml", "coreml"):
        with pytest.raises(InvalidArgumentError, match=f"format='{fmt}' cannot be loaded back"):
            spark_models.catboost.save_model(clf, tmp_path / fmt, format=fmt)
        assert not (tmp_path / fmt).exists()


def test_features_are_matched_by_column_name(clf, data, tmp_model_dir):
    X, _ = data
    shuffled = X[["color", "b", "a"]].assign(extra=1.0)
    with pytest.raises(catboost.CatBoostError):  # CatBoost itself reads columns by position
        clf.predict(shuffled)
    spark_models.catboost.save_model(clf, tmp_model_dir)  # no signature: the wrapper matches names
    assert Model.load(tmp_model_dir).signature is None
    np.testing.assert_array_equal(spark_models.pyfunc.load_model(tmp_model_dir).predict(shuffled), clf.predict(X))


def test_argument_and_model_errors(clf, tmp_path):
    with pytest.raises(InvalidArgumentError, match="not fitted"):
        spark_models.catboost.save_model(catboost.CatBoostClassifier(), tmp_path / "a")
    with pytest.raises(InvalidArgumentError, match="Expected a CatBoost model"):
        spark_models.catboost.save_model(object(), tmp_path / "b")
    with pytest.raises(NotSupportedError, match="extra_files"):
        spark_models.catboost.save_model(clf, tmp_path / "c", extra_files=["x.txt"])
    spark_models.catboost.save_model(clf, tmp_path / "d")
    with pytest.raises(InvalidArgumentError, match="already exists"):
        spark_models.catboost.save_model(clf, tmp_path / "d")
    mlmodel = tmp_path / "d" / "MLmodel"
    doc = yaml.safe_load(mlmodel.read_text())
    doc["flavors"]["catboost"]["model_type"] = "CatBoostForest"
    mlmodel.write_text(yaml.safe_dump(doc))
    with pytest.raises(MalformedModelError, match="CatBoostForest"):
        spark_models.pyfunc.load_model(tmp_path / "d")


def test_num_threads_is_catboosts_thread_count(clf, data, tmp_model_dir, monkeypatch):
    X, _ = data
    spark_models.catboost.save_model(clf, tmp_model_dir)
    one = spark_models.pyfunc.load_model(tmp_model_dir, model_config={"num_threads": 1})
    np.testing.assert_array_equal(one.predict(X), clf.predict(X))
    with pytest.raises(InvalidArgumentError, match="num_threads"):
        spark_models.pyfunc.load_model(tmp_model_dir, model_config={"num_threads": 0})
    monkeypatch.setenv("SPARK_MODELS_NUM_THREADS", "many")
    with pytest.raises(InvalidArgumentError, match="SPARK_MODELS_NUM_THREADS"):
        spark_models.pyfunc.load_model(tmp_model_dir)


@pytest.mark.spark
def test_conformance_with_spark_udf(clf, reg, data, tmp_path, spark):
    X, _ = data
    check_flavor(spark_models.catboost.FLAVOR, clf, X, tmp_path / "clf", spark=spark)
    check_flavor(spark_models.catboost.FLAVOR, reg, X, tmp_path / "reg", spark=spark)


@pytest.mark.spark
def test_spark_udf_string_category_column_by_name(reg, data, tmp_model_dir, spark):
    X, _ = data
    spark_models.catboost.save_model(reg, tmp_model_dir, signature=infer_signature(X, reg.predict(X)))
    # Spark columns in another order and under other names, bound by keyword; 3 partitions.
    frame = X.rename(columns={"color": "colour"})[["colour", "b", "a"]].assign(row=range(len(X)))
    df = spark.createDataFrame(frame).repartition(3)
    predict = spark_models.pyfunc.spark_udf(spark, str(tmp_model_dir), model_config={"num_threads": 1})
    out = df.withColumn("p", predict(a="a", b="b", color="colour")).orderBy("row").toPandas()
    assert dict(df.dtypes)["colour"] == "string"
    np.testing.assert_allclose(out["p"].to_numpy(), reg.predict(X), rtol=1e-12)


WITHOUT_MLFLOW = r"""
import json, sys, pandas as pd, spark_models.pyfunc, spark_models.catboost
root = {root!r}
X = pd.read_parquet(root + "/X.parquet")
out = {{}}
for name in ("clf", "reg_json"):
    out[name] = spark_models.pyfunc.load_model(root + "/" + name).predict(X).tolist()
    out[name + "_class"] = type(spark_models.catboost.load_model(root + "/" + name)).__name__
out["mlflow_loaded"] = any(m.split(".")[0] == "mlflow" for m in sys.modules)
print(json.dumps(out))
"""


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Hint. Inferred schema contains integer:UserWarning")
def test_mlflow_written_models_load_without_mlflow(clf, reg, data, tmp_path):
    mlflow_catboost = pytest.importorskip("mlflow.catboost")
    import mlflow.pyfunc

    X, _ = data
    mlflow_catboost.save_model(clf, str(tmp_path / "clf"), input_example=X.head(3), pip_requirements=["catboost"])
    mlflow_catboost.save_model(reg, str(tmp_path / "reg_json"), format="json", pip_requirements=["catboost"])
    X.to_parquet(tmp_path / "X.parquet")
    expected = {name: mlflow.pyfunc.load_model(str(tmp_path / name)).predict(X).tolist()
                for name in ("clf", "reg_json")}
    got = run_json(WITHOUT_MLFLOW.format(root=str(tmp_path)), blocked=("mlflow",))
    assert got["clf"] == expected["clf"] and got["reg_json"] == expected["reg_json"]
    assert (got["clf_class"], got["reg_json_class"]) == ("CatBoostClassifier", "CatBoostRegressor")
    assert got["mlflow_loaded"] is False


@pytest.mark.slow
def test_our_models_load_in_mlflow(clf, reg, data, tmp_path):
    mlflow_catboost = pytest.importorskip("mlflow.catboost")
    import mlflow.pyfunc

    X, _ = data
    spark_models.catboost.save_model(clf, tmp_path / "clf", input_example=X.head(3))
    spark_models.catboost.save_model(reg, tmp_path / "reg", format="json")
    for name in ("clf", "reg"):
        ours = spark_models.pyfunc.load_model(tmp_path / name).predict(X)
        np.testing.assert_array_equal(mlflow.pyfunc.load_model(str(tmp_path / name)).predict(X), ours)
    # MLflow's native loader reads our catboost entry too (model_type, save_format, data); JSON
    # keeps the leaf values to ~1e-15, so both loaders agree exactly and the original closely.
    theirs = mlflow_catboost.load_model(str(tmp_path / "reg"))
    assert type(theirs) is catboost.CatBoostRegressor
    np.testing.assert_array_equal(theirs.predict(X), spark_models.catboost.load_model(tmp_path / "reg").predict(X))
    np.testing.assert_allclose(theirs.predict(X), reg.predict(X), rtol=1e-12, atol=1e-12)
    meta = mlflow.models.Model.load(str(tmp_path / "clf"))
    assert meta.signature.inputs.input_names() == ["a", "b", "color"]
