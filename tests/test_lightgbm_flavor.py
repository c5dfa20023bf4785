"""The lightgbm flavor: MLflow's layout, serialization formats and trust, pyfunc scoring (column
names, pandas categories, predict_fn, params, nulls), threads, and Spark (local, Connect)."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

import spark_models.lightgbm
import spark_models.pyfunc
from spark_models.exceptions import InvalidArgumentError, SchemaEnforcementError, UnsafeModelError
from spark_models.flavors.testing import check_flavor
from spark_models.models import infer_signature
from tests.isolation import run_json

lgb = pytest.importorskip("lightgbm")

ROOT = Path(__file__).resolve().parents[1]
QUIET = {"verbose": -1}
FLAVOR_KEYS = {"lgb_version", "data", "model_class", "code", "serialization_format", "skops_trusted_types"}


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(300, 3)), columns=["a", "b", "c"])
    return X, (X.a + X.b * X.c > 0).astype(int)


@pytest.fixture(scope="module")
def booster(data):
    return lgb.train({"objective": "binary", **QUIET}, lgb.Dataset(*data), 10)


@pytest.fixture(scope="module")
def classifier(data):
    return lgb.LGBMClassifier(n_estimators=10, **QUIET).fit(*data)


def categorical_model():
    """A booster trained on two pandas category columns between numeric ones, and its data."""
    rng = np.random.default_rng(1)
    n = 600
    X = pd.DataFrame({"a": rng.normal(size=n), "k": pd.Categorical(rng.choice(["x", "y", "z"], n)),
                      "b": rng.normal(size=n), "m": pd.Categorical(rng.choice(["p", "q"], n))})
    y = ((X.k == "y") | (X.a > 1) | (X.m == "q")).astype(int)
    return lgb.train({"objective": "binary", "min_data_in_leaf": 5, **QUIET}, lgb.Dataset(X, y), 10), X


@pytest.fixture(scope="module")
def categorical():
    return categorical_model()


def flavors(path: Path) -> dict:
    return yaml.safe_load((path / "MLmodel").read_text())["flavors"]


class TunedRegressor(lgb.LGBMRegressor):
    """A subclass skops does not trust by default (importable: skops stores it by name)."""


# ---- conformance, layout, trust ----------------------------------------------------------

@pytest.mark.spark
def test_booster_passes_check_flavor_with_spark(spark, booster, data, tmp_path):
    check_flavor(spark_models.lightgbm.FLAVOR, booster, data[0], tmp_path, spark=spark)


@pytest.mark.spark
def test_sklearn_api_passes_check_flavor_with_spark(spark, classifier, data, tmp_path):
    check_flavor(spark_models.lightgbm.FLAVOR, classifier, data[0], tmp_path, spark=spark)


@pytest.mark.parametrize("fmt, data_file, runs_code", [
    (None, "model.skops", False), ("skops", "model.skops", False),
    ("cloudpickle", "model.pkl", True), ("pickle", "model.pkl", True)])
def test_sklearn_api_layout_and_trust(classifier, data, tmp_path, fmt, data_file, runs_code):
    X = data[0]
    spark_models.lightgbm.save_model(classifier, tmp_path / "m", serialization_format=fmt)
    conf = flavors(tmp_path / "m")
    assert set(conf["lightgbm"]) == FLAVOR_KEYS
    assert conf["lightgbm"]["data"] == conf["python_function"]["data"] == data_file
    assert conf["lightgbm"]["model_class"] == "lightgbm.sklearn.LGBMClassifier"
    assert conf["lightgbm"]["serialization_format"] == (fmt or "skops")
    requirements = (tmp_path / "m" / "requirements.txt").read_text()
    assert "scikit-learn==" in requirements and ("skops==" in requirements) == (fmt in (None, "skops"))
    assert ("cloudpickle==" in requirements) == (fmt == "cloudpickle")
    np.testing.assert_array_equal(spark_models.pyfunc.load_model(tmp_path / "m").predict(X), classifier.predict(X))
    if runs_code:
        for load in (spark_models.pyfunc.load_model, spark_models.lightgbm.load_model):
            with pytest.raises(UnsafeModelError, match=f"unpickles model.pkl \\({fmt}\\)"):
                load(tmp_path / "m", allow_code=False)
    else:
        assert set(spark_models.lightgbm.LIGHTGBM_SKOPS_TYPES) <= set(conf["lightgbm"]["skops_trusted_types"])
        loaded = spark_models.lightgbm.load_model(tmp_path / "m", allow_code=False)
        np.testing.assert_array_equal(loaded.predict(X), classifier.predict(X))


def test_booster_is_lightgbm_s_text_model_and_runs_no_code(booster, data, tmp_path):
    spark_models.lightgbm.save_model(booster, tmp_path / "m")
    conf = flavors(tmp_path / "m")["lightgbm"]
    assert set(conf) == FLAVOR_KEYS
    assert conf["data"] == "model.lgb" and conf["model_class"] == "lightgbm.basic.Booster"
    assert (tmp_path / "m" / "model.lgb").read_text().startswith("tree\n")
    assert "scikit-learn" not in (tmp_path / "m" / "requirements.txt").read_text()
    loaded = spark_models.lightgbm.load_model(tmp_path / "m", allow_code=False)
    np.testing.assert_array_equal(loaded.predict(data[0]), booster.predict(data[0]))
    pyfunc = spark_models.pyfunc.load_model(tmp_path / "m", allow_code=False)
    np.testing.assert_array_equal(pyfunc.predict(data[0]), booster.predict(data[0]))


def test_skops_trusted_types_follow_the_sklearn_rules(data, tmp_path):
    X = data[0]
    model = TunedRegressor(n_estimators=5, **QUIET).fit(X, X.a)
    name = f"{__name__}.TunedRegressor"
    with pytest.raises(UnsafeModelError, match="TunedRegressor"):
        spark_models.lightgbm.save_model(model, tmp_path / "refused")
    assert not (tmp_path / "refused").exists()
    spark_models.lightgbm.save_model(model, tmp_path / "m", skops_trusted_types=[name])
    assert name in flavors(tmp_path / "m")["lightgbm"]["skops_trusted_types"]
    np.testing.assert_array_equal(spark_models.lightgbm.load_model(tmp_path / "m").predict(X), model.predict(X))
    with pytest.raises(UnsafeModelError, match="not trusted"):  # the MLmodel's list is not trusted without code
        spark_models.lightgbm.load_model(tmp_path / "m", allow_code=False)
    mine = spark_models.lightgbm.load_model(tmp_path / "m", skops_trusted_types=[name], allow_code=False)
    np.testing.assert_array_equal(mine.predict(X), model.predict(X))


def test_save_refusals(booster, tmp_path):
    with pytest.raises(InvalidArgumentError, match="serialization_format"):
        spark_models.lightgbm.save_model(lgb.LGBMRegressor().fit([[0.0], [1.0]] * 10, [0.0, 1.0] * 10),
                                         tmp_path / "a", serialization_format="joblib")
    with pytest.raises(InvalidArgumentError, match="not fitted"):
        spark_models.lightgbm.save_model(lgb.LGBMClassifier(), tmp_path / "b")
    with pytest.raises(InvalidArgumentError, match="lightgbm.Booster"):
        spark_models.lightgbm.save_model([1, 2], tmp_path / "c")
    assert not any((tmp_path / n).exists() for n in "abc")


# ---- pyfunc behaviour --------------------------------------------------------------------

def test_columns_are_taken_by_feature_name(booster, data, tmp_path):
    """LightGBM takes a frame's columns by position: the same columns in another order score
    wrong without an error. The pyfunc takes them by the booster's feature names."""
    X = data[0]
    spark_models.lightgbm.save_model(booster, tmp_path / "m")  # no signature: nothing reorders before us
    shuffled = X[["c", "a", "b"]].assign(extra=1.0)
    assert not np.allclose(booster.predict(shuffled[["c", "a", "b"]]), booster.predict(X)), "LightGBM's silent answer"
    np.testing.assert_array_equal(spark_models.pyfunc.load_model(tmp_path / "m").predict(shuffled), booster.predict(X))


def with_training_categories(frame: pd.DataFrame) -> pd.DataFrame:
    """What LightGBM scores right: the training column order and categories."""
    return frame[["a", "k", "b", "m"]].assign(k=pd.Categorical(frame.k, categories=["x", "y", "z"]),
                                              m=pd.Categorical(frame.m, categories=["p", "q"]))


PROBE_ROWS = pd.DataFrame({"m": ["q", "p", "p", "r", None, "q"], "b": [0.0, 0.5, 0.0, 0.0, 1.0, -1.0],
                           "k": ["y", "x", "w", None, "z", "y"], "a": [0.0, 0.0, 0.0, 0.0, 2.0, -1.0]})


def test_categories_keep_their_training_categories(categorical, tmp_path):
    booster, _ = categorical
    spark_models.lightgbm.save_model(booster, tmp_path / "m")
    model = spark_models.pyfunc.load_model(tmp_path / "m")
    expected = booster.predict(with_training_categories(PROBE_ROWS))
    reordered = PROBE_ROWS.assign(k=pd.Categorical(PROBE_ROWS.k, categories=["w", "z", "y", "x"]),
                                  m=pd.Categorical(PROBE_ROWS.m, categories=["r", "q", "p"]))
    unseen_as_missing = PROBE_ROWS.assign(k=PROBE_ROWS.k.replace("w", None), m=PROBE_ROWS.m.replace("r", None))
    for form in (PROBE_ROWS, reordered):  # strings (what Spark hands), other categories; columns shuffled
        np.testing.assert_array_equal(model.predict(form), expected)
    np.testing.assert_array_equal(model.predict(unseen_as_missing), expected)
    assert spark_models.lightgbm.categorical_features(model.get_raw_model().get_raw_model()) == {
        "k": ["x", "y", "z"], "m": ["p", "q"]}


def test_sklearn_api_categories_and_predict_proba(categorical, tmp_path):
    _, X = categorical
    clf = lgb.LGBMClassifier(n_estimators=10, min_child_samples=5, **QUIET).fit(X, (X.k == "y").astype(int))
    spark_models.lightgbm.save_model(clf, tmp_path / "m")
    model = spark_models.pyfunc.load_model(tmp_path / "m", model_config={"predict_fn": "predict_proba"})
    np.testing.assert_array_equal(model.predict(PROBE_ROWS), clf.predict_proba(with_training_categories(PROBE_ROWS)))


def test_categories_of_another_kind_are_refused(categorical, tmp_path):
    booster, _ = categorical
    spark_models.lightgbm.save_model(booster, tmp_path / "m")
    model = spark_models.pyfunc.load_model(tmp_path / "m")
    with pytest.raises(SchemaEnforcementError, match="Column 'k' is a categorical feature whose training categories are strings"):
        model.predict(PROBE_ROWS.assign(k=[0, 1, 2, 0, 1, 2]))
    with pytest.raises(SchemaEnforcementError, match="Column 'm'.*holds numbers"):
        model.predict(PROBE_ROWS.assign(m=pd.Categorical([1, 2, 1, 2, 1, 2])))


def test_model_with_integer_coded_categories_takes_category_columns_only(categorical, tmp_path):
    """Integer-coded categorical features next to pandas ones: the stored lists cannot be matched
    to names, so plain values are refused with a message saying what to pass."""
    _, X = categorical
    X = X[["a", "k"]].assign(i=np.arange(len(X)) % 4)
    booster = lgb.train({"objective": "regression", **QUIET}, lgb.Dataset(X, X.a, categorical_feature=["k", "i"]), 5)
    spark_models.lightgbm.save_model(booster, tmp_path / "m")
    model = spark_models.pyfunc.load_model(tmp_path / "m")
    assert spark_models.lightgbm.categorical_features(booster) is None
    np.testing.assert_array_equal(model.predict(X.head(20)), booster.predict(X.head(20)))
    with pytest.raises(SchemaEnforcementError, match="cannot match to feature names; pass exactly those columns"):
        model.predict(X.head(20).assign(k=X.k.head(20).astype(str)))


def test_predict_fn_and_params(classifier, booster, data, tmp_path):
    X = data[0]
    spark_models.lightgbm.save_model(classifier, tmp_path / "c")
    default = spark_models.pyfunc.load_model(tmp_path / "c")
    np.testing.assert_array_equal(default.predict(X), classifier.predict(X))
    conf = yaml.safe_load((tmp_path / "c" / "MLmodel").read_text())
    conf["flavors"]["python_function"]["predict_fn"] = "predict_proba"
    (tmp_path / "c" / "MLmodel").write_text(yaml.safe_dump(conf))
    np.testing.assert_array_equal(spark_models.pyfunc.load_model(tmp_path / "c").predict(X), classifier.predict_proba(X))
    with pytest.raises(InvalidArgumentError, match="must be one of"):
        spark_models.pyfunc.load_model(tmp_path / "c", model_config={"predict_fn": "fit"})
    signature = infer_signature(X, booster.predict(X), params={"raw_score": False})
    spark_models.lightgbm.save_model(booster, tmp_path / "b", signature=signature)
    raw = spark_models.pyfunc.load_model(tmp_path / "b").predict(X, params={"raw_score": True})
    np.testing.assert_array_equal(raw, booster.predict(X, raw_score=True))
    with pytest.raises(InvalidArgumentError, match="a Booster has only predict"):
        spark_models.pyfunc.load_model(tmp_path / "b", model_config={"predict_fn": "predict_proba"})


def test_missing_values(booster, data, tmp_path):
    X = data[0].head(8).copy()
    X.iloc[::2, 1] = np.nan
    spark_models.lightgbm.save_model(booster, tmp_path / "m", signature=infer_signature(data[0], booster.predict(data[0])))
    np.testing.assert_array_equal(spark_models.pyfunc.load_model(tmp_path / "m").predict(X), booster.predict(X))


# ---- threads -----------------------------------------------------------------------------

def probe_regressor(X: pd.DataFrame, log: Path):
    """A fitted LGBMRegressor whose predict records (process, object, num_threads it got); the
    class is local, so cloudpickle stores it by value and Spark workers need no test module."""
    path = str(log)

    class ProbeRegressor(lgb.LGBMRegressor):
        def predict(self, X, **kwargs):
            import os

            with open(path, "a") as f:
                f.write(f"lgb-predict {os.getpid()} {id(self)} {kwargs.get('num_threads', 0)}\n")
            return super().predict(X, **kwargs)

    return ProbeRegressor(n_estimators=5, **QUIET).fit(X, X.a - X.b)


def thread_counts(log: Path) -> set[int]:
    return {int(line.split()[3]) for line in log.read_text().splitlines()}


def test_thread_knob_outside_spark(data, tmp_path, monkeypatch):
    X, log = data[0], tmp_path / "log.txt"
    monkeypatch.delenv("SPARK_MODELS_NUM_THREADS", raising=False)
    spark_models.lightgbm.save_model(probe_regressor(X, log), tmp_path / "m", serialization_format="cloudpickle")
    for env, config, expected in ((None, None, 0), (None, {"num_threads": 3}, 3), ("2", None, 2), ("2", {"num_threads": 1}, 1)):
        if env:
            monkeypatch.setenv("SPARK_MODELS_NUM_THREADS", env)
        log.write_text("")
        model = spark_models.pyfunc.load_model(tmp_path / "m", model_config=config)
        model.predict(X)
        assert thread_counts(log) == {expected}, (env, config)  # 0: not passed, LightGBM's default


@pytest.mark.spark
def test_inside_spark_tasks_lightgbm_runs_with_the_task_s_cpus(spark, data, tmp_path):
    X, log = data[0], tmp_path / "log.txt"
    model = probe_regressor(X, log)
    spark_models.lightgbm.save_model(model, tmp_path / "m", serialization_format="cloudpickle",
                                     signature=infer_signature(X, model.predict(X)))
    df = spark.createDataFrame(X).repartition(3)
    for model_config, threads in ((None, 1), ({"num_threads": 3}, 3)):  # spark.task.cpus is 1 here
        u = spark_models.pyfunc.spark_udf(spark, str(tmp_path / "m"), model_config=model_config)
        log.write_text("")
        assert df.withColumn("p", u()).filter("p is null").count() == 0
        assert thread_counts(log) == {threads}, model_config


@pytest.mark.spark
def test_spark_strings_and_nulls_score_as_lightgbm_does(spark, categorical, tmp_path):
    """Through spark_udf a category column arrives as strings (Spark has none) and numbers may be
    null: the booster gets the training categories (unseen values missing) and NaN."""
    booster, X = categorical
    spark_models.lightgbm.save_model(booster, tmp_path / "m", input_example=X.head(5))
    rows = PROBE_ROWS.assign(a=[0.0, None, 0.0, 0.0, 2.0, None], id=range(len(PROBE_ROWS)))
    df = spark.createDataFrame(rows.astype(object).where(rows.notna(), None).values.tolist(),
                               "m string, b double, k string, a double, id long")
    assert df.filter("a is null or k is null").count() == 3
    out = df.withColumn("p", spark_models.pyfunc.spark_udf(spark, str(tmp_path / "m"))()).orderBy("id").toPandas()
    expected = booster.predict(with_training_categories(rows.assign(a=rows.a.astype(float))))
    np.testing.assert_array_equal(out["p"].to_numpy(), expected)


# ---- processes: imports, MLflow, Spark Connect --------------------------------------------

IMPORTS = r'''
import json, sys
import pandas as pd
{body}
print(json.dumps(sorted(m for m in ("xgboost", "lightgbm", "sklearn", "mlflow") if m in sys.modules)))
'''


@pytest.mark.slow
def test_scoring_imports_lightgbm_and_nothing_else_heavy(booster, data, tmp_path):
    spark_models.lightgbm.save_model(booster, tmp_path / "m")
    data[0].to_parquet(tmp_path / "X.parquet")
    score = (f"import spark_models.pyfunc\nm = spark_models.pyfunc.load_model({str(tmp_path / 'm')!r})\n"
             f"m.predict(pd.read_parquet({str(tmp_path / 'X.parquet')!r}))")
    scored = run_json(IMPORTS.format(body=score))
    assert "lightgbm" in scored and "xgboost" not in scored and "mlflow" not in scored
    assert scored == run_json(IMPORTS.format(body="import lightgbm"))  # lightgbm imports scikit-learn itself


MLFLOW_WRITES = r'''
import json, numpy as np, pandas as pd, lightgbm as lgb, mlflow.lightgbm, mlflow.pyfunc
root = {root!r}
rng = np.random.default_rng(0)
X = pd.DataFrame({{"a": rng.normal(size=300), "k": pd.Categorical(rng.choice(["x", "y", "z"], 300)), "b": rng.normal(size=300)}})
y = ((X.k == "y") | (X.a > 1)).astype(int)
X.to_pickle(root + "/X.pkl")
q = {{"verbose": -1}}
cases = {{"booster": (lgb.train({{"objective": "binary", **q}}, lgb.Dataset(X, y), 5), None),
          "clf_skops": (lgb.LGBMClassifier(n_estimators=5, **q).fit(X, y), None),
          "clf_cloudpickle": (lgb.LGBMClassifier(n_estimators=5, **q).fit(X, y), "cloudpickle"),
          "reg_pickle": (lgb.LGBMRegressor(n_estimators=5, **q).fit(X, X.a), "pickle")}}
out = {{}}
for name, (model, fmt) in cases.items():
    mlflow.lightgbm.save_model(model, root + "/" + name, serialization_format=fmt)
    out[name] = mlflow.pyfunc.load_model(root + "/" + name).predict(X).tolist()
print(json.dumps(out))
'''

READS_WITHOUT_MLFLOW = r'''
import json, sys, pandas as pd, spark_models.pyfunc, spark_models.lightgbm
root = {root!r}
X = pd.read_pickle(root + "/X.pkl")
out = {{}}
for name in {names!r}:
    out[name] = spark_models.pyfunc.load_model(root + "/" + name).predict(X).tolist()
    out[name + ":class"] = type(spark_models.lightgbm.load_model(root + "/" + name)).__name__
out["skops_without_code"] = spark_models.pyfunc.load_model(root + "/clf_skops", allow_code=False).predict(X).tolist()
out["mlflow_loaded"] = any(m.split(".")[0] == "mlflow" for m in sys.modules)
print(json.dumps(out))
'''


@pytest.mark.slow
def test_mlflow_written_models_load_where_mlflow_cannot_be_imported(tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true")  # MLflow 3 needs it even for skops
    expected = run_json(MLFLOW_WRITES.format(root=str(tmp_path)))
    got = run_json(READS_WITHOUT_MLFLOW.format(root=str(tmp_path), names=sorted(expected)), blocked=("mlflow",))
    assert got.pop("mlflow_loaded") is False
    assert got.pop("skops_without_code") == expected["clf_skops"]
    classes = {name: got.pop(name + ":class") for name in expected}
    assert got == expected
    assert classes == {"booster": "Booster", "clf_skops": "LGBMClassifier", "clf_cloudpickle": "LGBMClassifier",
                       "reg_pickle": "LGBMRegressor"}


@pytest.mark.slow
def test_our_models_load_in_mlflow(booster, classifier, categorical, data, tmp_path, monkeypatch):
    mlflow_pyfunc = pytest.importorskip("mlflow.pyfunc")
    import mlflow.lightgbm

    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true")
    cases = [("booster", booster, None, data[0]), ("cat", categorical[0], None, categorical[1].head(50)),
             ("skops", classifier, "skops", data[0]), ("cloudpickle", classifier, "cloudpickle", data[0]),
             ("pickle", classifier, "pickle", data[0])]
    for name, model, fmt, X in cases:
        path = tmp_path / name
        spark_models.lightgbm.save_model(model, path, serialization_format=fmt)
        ours = spark_models.pyfunc.load_model(path).predict(X)
        np.testing.assert_array_equal(mlflow_pyfunc.load_model(str(path)).predict(X), ours)
        theirs = mlflow.lightgbm.load_model(str(path))
        assert type(theirs) is type(model)
        np.testing.assert_array_equal(theirs.predict(X), ours)


CONNECT = r'''
import json, os, sys, tempfile
from pathlib import Path
os.environ["PYSPARK_PYTHON"] = sys.executable
os.environ["SPARK_MODELS_NUM_THREADS"] = "3"  # before the server starts: its Python workers inherit it
sys.path.insert(0, {root!r})
import numpy as np, pandas as pd, lightgbm as lgb, xgboost as xgb
from pyspark.sql import SparkSession
from pyspark.sql.connect.session import SparkSession as ConnectSession
import spark_models.lightgbm, spark_models.pyfunc
from tests.test_lightgbm_flavor import PROBE_ROWS, categorical_model, probe_regressor, thread_counts, with_training_categories
from tests.test_xgboost_flavor import events, native, save_probe

base = Path(tempfile.mkdtemp())
booster, X = categorical_model()
spark_models.lightgbm.save_model(booster, base / "cat", input_example=X.head(5))
numeric = X[["a", "b"]]
spark_models.lightgbm.save_model(probe_regressor(numeric, base / "lgb.log"), base / "lgb", serialization_format="cloudpickle")
xgb_booster = xgb.train({{}}, xgb.DMatrix(numeric, numeric.a), 5)
save_probe(xgb_booster, numeric, base / "xgb", base / "xgb.log")
server = (SparkSession.builder.master("local[2]").config("spark.ui.enabled", "false")
          .config("spark.plugins", "org.apache.spark.sql.connect.SparkConnectPlugin")
          .config("spark.connect.grpc.binding.port", "0").getOrCreate())
port = getattr(getattr(server._jvm, "org.apache.spark.sql.connect.service.SparkConnectService$"), "MODULE$").localPort()
os.environ["SPARK_CONNECT_MODE_ENABLED"] = "1"
spark = ConnectSession.builder.remote(f"sc://localhost:{{port}}").getOrCreate()
assert type(spark).__module__.startswith("pyspark.sql.connect")
rows = PROBE_ROWS.assign(id=range(len(PROBE_ROWS)))
df = spark.createDataFrame(rows.astype(object).where(rows.notna(), None).values.tolist(), "m string, b double, k string, a double, id long")
cat = df.withColumn("p", spark_models.pyfunc.spark_udf(spark, str(base / "cat"))()).orderBy("id").toPandas()
(base / "lgb.log").write_text(""); (base / "xgb.log").write_text("")
nums = spark.createDataFrame(numeric.assign(id=range(len(numeric)))).repartition(3)
scored = nums.select("id", spark_models.pyfunc.spark_udf(spark, str(base / "lgb"), result_type="double")("a", "b").alias("pl"),
                     spark_models.pyfunc.spark_udf(spark, str(base / "xgb"))().alias("px")).orderBy("id").toPandas()
print(json.dumps({{
    "cat_same": bool((cat.p.to_numpy() == booster.predict(with_training_categories(PROBE_ROWS))).all()),
    "xgb_same": bool((scored.px.to_numpy(np.float32) == native(xgb_booster, numeric)).all()),
    "lgb_rows": len(scored), "lgb_threads": sorted(thread_counts(base / "lgb.log")),
    "xgb_threads": sorted({{t for _, _, t in events(base / "xgb.log", "predict")}})}}))
spark.stop()
server.stop()
'''


@pytest.mark.slow
@pytest.mark.spark
def test_spark_connect_scores_both_flavors_and_honours_the_thread_variable():
    """Through Spark Connect: a lightgbm category model gets its strings and nulls right, and with
    SPARK_MODELS_NUM_THREADS=3 in the server's environment lightgbm and xgboost run with 3 threads
    in every task (the variable beats the task's 1 CPU)."""
    pytest.importorskip("grpc")
    pytest.importorskip("xgboost")
    out = run_json(CONNECT.format(root=str(ROOT)))
    assert out == {"cat_same": True, "xgb_same": True, "lgb_rows": 600, "lgb_threads": [3], "xgb_threads": [3]}
