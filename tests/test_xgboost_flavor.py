"""The xgboost flavor: MLflow 3's layout, pyfunc scoring (DMatrix, predict_fn, params, column
names, categories, nulls), trust, threads, and scoring in Spark (local, local-cluster)."""

import json
import uuid
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

import spark_models.pyfunc
import spark_models.xgboost
from spark_models.exceptions import (
    InvalidArgumentError,
    MalformedModelError,
    SchemaEnforcementError,
    UnsafeModelError,
)
from spark_models.flavors.testing import check_flavor
from spark_models.models import infer_signature
from tests.isolation import run_json

xgb = pytest.importorskip("xgboost")

ROOT = Path(__file__).resolve().parents[1]
FEATURES = ["a", "b", "c"]


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(300, 3)), columns=FEATURES)
    return X, (X.a + X.b * X.c > 0).astype(int)


@pytest.fixture(scope="module")
def booster(data):
    X, y = data
    return xgb.train({"objective": "binary:logistic", "max_depth": 3}, xgb.DMatrix(X, y), 10)


@pytest.fixture(scope="module")
def classifier(data):
    X, y = data
    return xgb.XGBClassifier(n_estimators=10, max_depth=3).fit(X, y)


def native(model, X):
    return model.predict(xgb.DMatrix(X)) if isinstance(model, xgb.Booster) else model.predict(X)


def nthread(model) -> int:
    booster = model if isinstance(model, xgb.Booster) else model.get_booster()
    return int(json.loads(booster.save_config())["learner"]["generic_param"]["nthread"])


def edit_mlmodel(path: Path, change) -> None:
    meta = yaml.safe_load((path / "MLmodel").read_text())
    change(meta["flavors"])
    (path / "MLmodel").write_text(yaml.safe_dump(meta))


# ---- conformance and layout --------------------------------------------------------------

@pytest.mark.spark
def test_booster_passes_check_flavor_with_spark(spark, booster, data, tmp_path):
    check_flavor(spark_models.xgboost.FLAVOR, booster, data[0], tmp_path, native_predict=native, spark=spark)


@pytest.mark.spark
def test_sklearn_api_passes_check_flavor_with_spark(spark, classifier, data, tmp_path):
    check_flavor(spark_models.xgboost.FLAVOR, classifier, data[0], tmp_path, spark=spark)


@pytest.mark.parametrize("model_format", ["ubj", "json", "xgb"])
@pytest.mark.parametrize("kind", ["booster", "classifier"])
def test_layout_has_mlflow_s_keys_and_reloads_identically(kind, model_format, request, data, tmp_path):
    model, X = request.getfixturevalue(kind), data[0]
    spark_models.xgboost.save_model(model, tmp_path / "m", model_format=model_format)
    conf = yaml.safe_load((tmp_path / "m" / "MLmodel").read_text())["flavors"]
    cls = "xgboost.core.Booster" if kind == "booster" else "xgboost.sklearn.XGBClassifier"
    assert conf["xgboost"] == {"xgb_version": xgb.__version__, "data": f"model.{model_format}", "model_class": cls,
                               "model_format": model_format, "code": None}
    assert conf["python_function"]["data"] == f"model.{model_format}"
    assert conf["python_function"]["loader_module"] == "spark_models.xgboost"
    assert (tmp_path / "m" / f"model.{model_format}").is_file()
    loaded = spark_models.xgboost.load_model(tmp_path / "m", allow_code=False)
    assert type(loaded) is type(model)
    np.testing.assert_array_equal(native(loaded, X), native(model, X))
    pyfunc = spark_models.pyfunc.load_model(tmp_path / "m", allow_code=False)
    np.testing.assert_array_equal(pyfunc.predict(X), native(model, X))


def test_requirements_pin_the_installed_distribution(booster, classifier, tmp_path):
    dists = metadata.packages_distributions()["xgboost"]
    dist = "xgboost" if "xgboost" in dists else dists[0]
    pin = f"{dist}=={metadata.version(dist).split('+')[0]}"
    assert pin in spark_models.xgboost.default_pip_requirements()
    spark_models.xgboost.save_model(booster, tmp_path / "b")
    spark_models.xgboost.save_model(classifier, tmp_path / "c")
    assert pin in (tmp_path / "b" / "requirements.txt").read_text().splitlines()
    assert "scikit-learn" not in (tmp_path / "b" / "requirements.txt").read_text()
    sklearn_pins = [r for r in (tmp_path / "c" / "requirements.txt").read_text().splitlines() if r.startswith("scikit-learn==")]
    assert sklearn_pins, "the scikit-learn API needs scikit-learn to load"


def test_model_without_model_class_is_a_booster(booster, data, tmp_path):
    """MLflow < 1.22 wrote no model_class (nor model_format)."""
    spark_models.xgboost.save_model(booster, tmp_path / "m")
    edit_mlmodel(tmp_path / "m", lambda f: [f["xgboost"].pop(k) for k in ("model_class", "model_format")])
    assert isinstance(spark_models.xgboost.load_model(tmp_path / "m", allow_code=False), xgb.Booster)
    np.testing.assert_array_equal(spark_models.pyfunc.load_model(tmp_path / "m").predict(data[0]), native(booster, data[0]))


def test_save_refusals(booster, tmp_path):
    with pytest.raises(InvalidArgumentError, match="model_format"):
        spark_models.xgboost.save_model(booster, tmp_path / "a", model_format="bin")
    with pytest.raises(InvalidArgumentError, match="not fitted"):
        spark_models.xgboost.save_model(xgb.XGBRegressor(), tmp_path / "b")
    with pytest.raises(InvalidArgumentError, match="xgboost.Booster"):
        spark_models.xgboost.save_model({"not": "a model"}, tmp_path / "c")
    assert not any((tmp_path / n).exists() for n in "abc")


def test_unreadable_model_file_is_malformed(booster, tmp_path):
    spark_models.xgboost.save_model(booster, tmp_path / "m")
    (tmp_path / "m" / "model.ubj").write_bytes(b"not a model")
    with pytest.raises(MalformedModelError, match="cannot read this model"):
        spark_models.xgboost.load_model(tmp_path / "m")


# ---- trust -------------------------------------------------------------------------------

def test_model_class_outside_xgboost_is_code(booster, tmp_path):
    spark_models.xgboost.save_model(booster, tmp_path / "m")
    edit_mlmodel(tmp_path / "m", lambda f: f["xgboost"].update(model_class="collections.OrderedDict"))
    for load in (spark_models.xgboost.load_model, spark_models.pyfunc.load_model):
        with pytest.raises(UnsafeModelError, match="model_class 'collections.OrderedDict'"):
            load(tmp_path / "m", allow_code=False)
    with pytest.raises(MalformedModelError, match="not an xgboost Booster"):
        spark_models.xgboost.load_model(tmp_path / "m")  # allow_code=True imports it, then refuses it
    edit_mlmodel(tmp_path / "m", lambda f: f["xgboost"].update(model_class="xgboost.core.DMatrix"))
    with pytest.raises(MalformedModelError, match="not an xgboost Booster"):
        spark_models.xgboost.load_model(tmp_path / "m", allow_code=False)


# ---- pyfunc behaviour --------------------------------------------------------------------

def test_predict_fn_picks_the_method(classifier, booster, data, tmp_path):
    X = data[0]
    spark_models.xgboost.save_model(classifier, tmp_path / "c")
    proba = spark_models.pyfunc.load_model(tmp_path / "c", model_config={"predict_fn": "predict_proba"})
    np.testing.assert_array_equal(proba.predict(X), classifier.predict_proba(X))
    np.testing.assert_array_equal(spark_models.pyfunc.load_model(tmp_path / "c").predict(X), classifier.predict(X))
    edit_mlmodel(tmp_path / "c", lambda f: f["python_function"].update(predict_fn="apply"))
    np.testing.assert_array_equal(spark_models.pyfunc.load_model(tmp_path / "c").predict(X), classifier.apply(X))
    overridden = spark_models.pyfunc.load_model(tmp_path / "c", model_config={"predict_fn": "predict_proba"})
    np.testing.assert_array_equal(overridden.predict(X), classifier.predict_proba(X))
    with pytest.raises(InvalidArgumentError, match="must be one of"):
        spark_models.pyfunc.load_model(tmp_path / "c", model_config={"predict_fn": "__class__"})
    spark_models.xgboost.save_model(booster, tmp_path / "b")
    with pytest.raises(InvalidArgumentError, match="a Booster has only predict"):
        spark_models.pyfunc.load_model(tmp_path / "b", model_config={"predict_fn": "predict_proba"})


def test_params_become_keyword_arguments(booster, data, tmp_path, caplog):
    X = data[0]
    signature = infer_signature(X, native(booster, X), params={"output_margin": False, "shoe_size": 1})
    spark_models.xgboost.save_model(booster, tmp_path / "m", signature=signature)
    model = spark_models.pyfunc.load_model(tmp_path / "m")
    np.testing.assert_array_equal(model.predict(X, params={"output_margin": True}),
                                  booster.predict(xgb.DMatrix(X), output_margin=True))
    with caplog.at_level("WARNING", logger="spark_models.flavors.xgboost"):
        np.testing.assert_array_equal(model.predict(X, params={"shoe_size": 3}), native(booster, X))
    assert "['shoe_size'] are not accepted by Booster.predict()" in caplog.text


def test_columns_are_taken_by_feature_name(booster, data, tmp_path):
    """MLflow refuses a frame whose columns are in another order (feature_names mismatch); the
    columns are selected by the booster's names here, extra ones dropped."""
    X = data[0]
    spark_models.xgboost.save_model(booster, tmp_path / "m")  # no signature: nothing reorders before us
    shuffled = X[["c", "a", "b"]].assign(extra=1.0)
    np.testing.assert_array_equal(spark_models.pyfunc.load_model(tmp_path / "m").predict(shuffled), native(booster, X))
    with pytest.raises(ValueError, match="feature_names mismatch"):
        booster.predict(xgb.DMatrix(shuffled))


def test_nan_and_pandas_missing_values_are_missing(booster, data, tmp_path):
    X = data[0].head(6).copy()
    X.iloc[0, 0] = X.iloc[3, 2] = np.nan
    spark_models.xgboost.save_model(booster, tmp_path / "m", signature=infer_signature(data[0], native(booster, data[0])))
    np.testing.assert_array_equal(spark_models.pyfunc.load_model(tmp_path / "m").predict(X), native(booster, X))


@pytest.fixture(scope="module")
def categorical():
    rng = np.random.default_rng(1)
    X = pd.DataFrame({"a": rng.normal(size=400), "k": pd.Categorical(rng.choice(["x", "y", "z"], 400))})
    y = ((X.k == "y") | (X.a > 1)).astype(int)
    return xgb.XGBClassifier(n_estimators=5, enable_categorical=True, max_cat_to_onehot=1).fit(X, y)


def test_categories_are_recoded_by_value(categorical, tmp_path):
    """Strings (what spark_udf hands) and category columns in any order score as xgboost scores the
    same values as a category column; unseen values too (xgboost does not treat them as missing)."""
    booster = categorical.get_booster()
    spark_models.xgboost.save_model(booster, tmp_path / "b")
    spark_models.xgboost.save_model(categorical, tmp_path / "c")
    values = ["y", "x", "w", None, "z", "y"]
    frame = pd.DataFrame({"k": values, "a": [0.0, 0.0, 0.0, 0.0, 2.0, -1.0]})
    as_category = frame[["a", "k"]].assign(k=pd.Categorical(values))
    expected = booster.predict(xgb.DMatrix(as_category, enable_categorical=True))
    assert expected[2] != expected[3], "an unseen value and a missing one score differently in xgboost"
    model = spark_models.pyfunc.load_model(tmp_path / "b")
    reordered = frame.assign(k=pd.Categorical(values, categories=["z", "w", "y", "x", "v"]))
    for form in (frame, reordered):
        np.testing.assert_array_equal(model.predict(form), expected)
    proba = spark_models.pyfunc.load_model(tmp_path / "c", model_config={"predict_fn": "predict_proba"})
    np.testing.assert_array_equal(proba.predict(frame), categorical.predict_proba(as_category))


def test_model_trained_on_category_codes_takes_numbers_and_refuses_text(tmp_path):
    """Without stored categories (trained on codes) numbers are codes, as in xgboost; text cannot
    be mapped and is refused, naming the column."""
    rng = np.random.default_rng(2)
    a, codes = rng.normal(size=300), rng.integers(0, 3, 300).astype(float)
    train = xgb.DMatrix(np.column_stack([a, codes]), ((codes == 1) | (a > 1)).astype(int), feature_names=["a", "k"],
                        feature_types=["q", "c"], enable_categorical=True)
    booster = xgb.train({"max_cat_to_onehot": 1}, train, 5)
    spark_models.xgboost.save_model(booster, tmp_path / "m")
    model = spark_models.pyfunc.load_model(tmp_path / "m")
    frame = pd.DataFrame({"a": [0.0, 0.0, 0.0], "k": [1.0, 0.0, 2.0]})
    np.testing.assert_array_equal(model.predict(frame), booster.predict(xgb.DMatrix(frame)))
    with pytest.raises(SchemaEnforcementError, match="Column 'k' is a categorical feature .* holds object"):
        model.predict(frame.assign(k=["y", "x", "z"]))


# ---- threads -----------------------------------------------------------------------------

def test_thread_knob_outside_spark(booster, classifier, data, tmp_path, monkeypatch):
    X = data[0]
    for name, model in (("b", booster), ("c", classifier)):
        spark_models.xgboost.save_model(model, tmp_path / name)
    monkeypatch.delenv("SPARK_MODELS_NUM_THREADS", raising=False)
    default = spark_models.pyfunc.load_model(tmp_path / "b").get_raw_model()
    default.predict(X)
    assert default.threads is None and nthread(default.get_raw_model()) == 0  # xgboost's own default: all cores
    configured = spark_models.pyfunc.load_model(tmp_path / "c", model_config={"num_threads": 3}).get_raw_model()
    configured.predict(X)
    assert configured.get_raw_model().n_jobs == 3 and nthread(configured.get_raw_model()) == 3
    monkeypatch.setenv("SPARK_MODELS_NUM_THREADS", "2")
    from_env = spark_models.pyfunc.load_model(tmp_path / "b").get_raw_model()
    np.testing.assert_array_equal(from_env.predict(X), native(booster, X))
    assert nthread(from_env.get_raw_model()) == 2
    config_wins = spark_models.pyfunc.load_model(tmp_path / "b", model_config={"num_threads": 1}).get_raw_model()
    config_wins.predict(X)
    assert nthread(config_wins.get_raw_model()) == 1
    with pytest.raises(InvalidArgumentError, match="positive number of threads"):
        spark_models.pyfunc.load_model(tmp_path / "b", model_config={"num_threads": 0}).predict(X)


PROBE = '''
import json, os
import xgboost as xgb

def _record(event, booster):
    threads = json.loads(booster.save_config())["learner"]["generic_param"]["nthread"]
    with open({log!r}, "a") as f:
        f.write(f"{{event}} {{os.getpid()}} {{id(booster)}} {{threads}}\\n")

class ProbeBooster(xgb.Booster):
    """A Booster that records (process, object) when it loads and the nthread each predict runs with."""
    def load_model(self, fname):
        super().load_model(fname)
        _record("load", self)

    def predict(self, *args, **kwargs):
        _record("predict", self)
        return super().predict(*args, **kwargs)

    def inplace_predict(self, *args, **kwargs):
        _record("predict", self)
        return super().inplace_predict(*args, **kwargs)
'''


def save_probe(booster, X, path: Path, log: Path) -> None:
    """The booster as a model whose model_class is ProbeBooster, shipped in the model's code/."""
    module = f"xgb_probe_{uuid.uuid4().hex[:8]}"  # Python workers outlive tests: one module name per model
    source = path.parent / f"{module}.py"
    source.write_text(PROBE.format(log=str(log)))
    spark_models.xgboost.save_model(booster, path, code_paths=[source], signature=infer_signature(X, native(booster, X)))
    edit_mlmodel(path, lambda f: f["xgboost"].update(model_class=f"{module}.ProbeBooster"))


def events(log: Path, kind: str) -> list[tuple[int, int, int]]:
    """(process id, model object id, threads) of each ``kind`` event in a probe's log."""
    lines = [line.split() for line in log.read_text().splitlines()]
    return [(int(pid), int(obj), int(threads)) for event, pid, obj, threads in lines if event == kind]


@pytest.mark.spark
def test_inside_spark_tasks_the_booster_runs_with_the_task_s_cpus(spark, booster, data, tmp_path):
    X, log = data[0], tmp_path / "events.txt"
    save_probe(booster, X, tmp_path / "m", log)
    df = spark.createDataFrame(X).repartition(3)
    for model_config, threads in ((None, 1), ({"num_threads": 3}, 3)):  # spark.task.cpus is 1 here
        u = spark_models.pyfunc.spark_udf(spark, str(tmp_path / "m"), model_config=model_config)
        log.write_text("")
        assert df.withColumn("p", u()).filter("p is null").count() == 0
        predicts = events(log, "predict")
        assert predicts and {t for _, _, t in predicts} == {threads}, (model_config, predicts)


@pytest.mark.spark
def test_spark_nulls_reach_the_booster_as_missing(spark, booster, data, tmp_path):
    X = data[0].head(40).copy()
    X.iloc[::3, 0] = np.nan
    X.iloc[1::4, 2] = np.nan
    spark_models.xgboost.save_model(booster, tmp_path / "m", signature=infer_signature(X, native(booster, X)))
    rows = [(i, *(None if np.isnan(v) else float(v) for v in r)) for i, r in enumerate(X.itertuples(index=False))]
    df = spark.createDataFrame(rows, "id long, a double, b double, c double")
    assert df.filter("a is null or c is null").count() > 10
    out = df.withColumn("p", spark_models.pyfunc.spark_udf(spark, str(tmp_path / "m"))()).orderBy("id").toPandas()
    np.testing.assert_array_equal(out["p"].to_numpy(np.float32), native(booster, X))


# ---- processes: imports, MLflow, local-cluster --------------------------------------------

HEAVY = ("xgboost", "lightgbm", "sklearn", "mlflow")
IMPORTS = r'''
import json, sys
import pandas as pd
{body}
print(json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)))
'''


@pytest.mark.slow
def test_scoring_imports_xgboost_and_nothing_else_heavy(booster, data, tmp_path):
    spark_models.xgboost.save_model(booster, tmp_path / "m")
    data[0].to_parquet(tmp_path / "X.parquet")
    score = (f"import spark_models.pyfunc\nm = spark_models.pyfunc.load_model({str(tmp_path / 'm')!r})\n"
             f"m.predict(pd.read_parquet({str(tmp_path / 'X.parquet')!r}))")
    scored = run_json(IMPORTS.format(body=score, heavy=HEAVY))
    library_alone = run_json(IMPORTS.format(body="import xgboost", heavy=HEAVY))
    assert "xgboost" in scored and "lightgbm" not in scored and "mlflow" not in scored
    # xgboost imports scikit-learn itself when it is installed; scoring adds nothing to that.
    assert scored == library_alone


MLFLOW_WRITES = r'''
import json, numpy as np, pandas as pd, xgboost as xgb, mlflow.pyfunc, mlflow.xgboost
root = {root!r}
rng = np.random.default_rng(0)
X = pd.DataFrame(rng.normal(size=(200, 3)), columns=["a", "b", "c"])
y = (X.a + X.b > 0).astype(int)
X.to_parquet(root + "/X.parquet")
booster = xgb.train({{"objective": "binary:logistic"}}, xgb.DMatrix(X, y), 5)
clf = xgb.XGBClassifier(n_estimators=5).fit(X, y)
reg = xgb.XGBRegressor(n_estimators=5).fit(X, X.a)
cases = {{"booster_ubj": (booster, "ubj"), "booster_json": (booster, "json"), "booster_xgb": (booster, "xgb"),
          "clf_ubj": (clf, "ubj"), "clf_json": (clf, "json"), "reg_xgb": (reg, "xgb")}}
out = {{}}
for name, (model, fmt) in cases.items():
    mlflow.xgboost.save_model(model, root + "/" + name, model_format=fmt)
    out[name] = mlflow.pyfunc.load_model(root + "/" + name).predict(X).tolist()
print(json.dumps(out))
'''

READS_WITHOUT_MLFLOW = r'''
import json, sys, pandas as pd, spark_models.pyfunc, spark_models.xgboost
root = {root!r}
X = pd.read_parquet(root + "/X.parquet")
out = {{}}
for name in {names!r}:
    out[name] = spark_models.pyfunc.load_model(root + "/" + name, allow_code=False).predict(X).tolist()
    out[name + ":class"] = type(spark_models.xgboost.load_model(root + "/" + name)).__name__
out["mlflow_loaded"] = any(m.split(".")[0] == "mlflow" for m in sys.modules)
print(json.dumps(out))
'''


@pytest.mark.slow
def test_mlflow_written_models_load_where_mlflow_cannot_be_imported(tmp_path):
    pytest.importorskip("mlflow")
    expected = run_json(MLFLOW_WRITES.format(root=str(tmp_path)))
    got = run_json(READS_WITHOUT_MLFLOW.format(root=str(tmp_path), names=sorted(expected)), blocked=("mlflow",))
    assert got.pop("mlflow_loaded") is False
    classes = {name: got.pop(name + ":class") for name in expected}
    assert got == expected
    assert classes == {"booster_ubj": "Booster", "booster_json": "Booster", "booster_xgb": "Booster",
                       "clf_ubj": "XGBClassifier", "clf_json": "XGBClassifier", "reg_xgb": "XGBRegressor"}


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:.*Unknown file format. .xgb.:UserWarning")  # MLflow's own load of model.xgb
@pytest.mark.parametrize("model_format", ["ubj", "json", "xgb"])
def test_our_models_load_in_mlflow(booster, classifier, data, tmp_path, model_format):
    mlflow_pyfunc = pytest.importorskip("mlflow.pyfunc")
    import mlflow.xgboost

    X = data[0]
    for name, model in (("b", booster), ("c", classifier)):
        path = tmp_path / name
        spark_models.xgboost.save_model(model, path, model_format=model_format, input_example=X.head(3))
        ours = spark_models.pyfunc.load_model(path).predict(X)
        np.testing.assert_array_equal(mlflow_pyfunc.load_model(str(path)).predict(X), ours)
        theirs = mlflow.xgboost.load_model(str(path))
        assert type(theirs) is type(model)
        np.testing.assert_array_equal(native(theirs, X), ours)


LOCAL_CLUSTER = r'''
import json, os, shutil, sys, tempfile, time
os.environ["PYSPARK_PYTHON"] = sys.executable
os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"
sys.path.insert(0, {root!r})
import numpy as np, pandas as pd, xgboost as xgb, lightgbm as lgb
import spark_models.lightgbm, spark_models.pyfunc
from spark_models.models import infer_signature
from tests.helpers.sessions import spark_builder
from tests.test_xgboost_flavor import events, native, save_probe

base = tempfile.mkdtemp()
LOG = base + "/events.txt"

class ProbeRegressor(lgb.LGBMRegressor):
    """Cloudpickled by value: records (process, object) and the num_threads of each predict."""
    def predict(self, X, **kwargs):
        with open(LOG, "a") as f:
            f.write(f"lgb-predict {{os.getpid()}} {{id(self)}} {{kwargs.get('num_threads', 0)}}\n")
        return super().predict(X, **kwargs)

rng = np.random.default_rng(0)
X = pd.DataFrame(rng.normal(size=(600, 3)), columns=["a", "b", "c"])
booster = xgb.train({{"objective": "binary:logistic"}}, xgb.DMatrix(X, (X.a > 0).astype(int)), 10)
from pathlib import Path
save_probe(booster, X, Path(base) / "xgb", Path(LOG))
reg = ProbeRegressor(n_estimators=10, verbose=-1).fit(X, X.a * X.b)
spark_models.lightgbm.save_model(reg, base + "/lgb", serialization_format="cloudpickle",
                                 signature=infer_signature(X, reg.predict(X)))
expected_x, expected_l = native(booster, X), reg.predict(X)
spark = (spark_builder("local-cluster[2,2,1024]").config("spark.executor.memory", "512m")
         .config("spark.task.cpus", "2").getOrCreate())
for _ in range(120):  # both executors registered (the driver counts too)
    if spark.sparkContext._jsc.sc().getExecutorMemoryStatus().size() >= 3:
        break
    time.sleep(0.5)
ux = spark_models.pyfunc.spark_udf(spark, base + "/xgb")
ul = spark_models.pyfunc.spark_udf(spark, base + "/lgb")
shutil.rmtree(base + "/xgb"); shutil.rmtree(base + "/lgb")  # executors can only use the shipped archives
open(LOG, "w").close()
df = spark.createDataFrame(X.assign(id=range(len(X)))).repartition(6)
out = df.select("id", ux().alias("px"), ul().alias("pl")).orderBy("id").toPandas()
result = {{"xgb_same": bool((out.px.to_numpy(np.float32) == expected_x).all()),
          "lgb_same": bool((out.pl.to_numpy() == expected_l).all())}}
for kind in ("load", "predict", "lgb-predict"):
    result[kind] = events(Path(LOG), kind)
result["driver"] = os.getpid()
print(json.dumps(result))
spark.stop()
'''


@pytest.mark.slow
@pytest.mark.spark
def test_local_cluster_ships_models_loaded_once_per_worker_with_task_cpus_threads():
    """Both gradient-boosting flavors under local-cluster[2,2,1024] with spark.task.cpus=2: the
    models are shipped (their directories are gone), each Python worker loads each once (one
    model object serves all its predicts), and every predict runs with 2 threads (xgboost's
    nthread, LightGBM's num_threads)."""
    pytest.importorskip("lightgbm")
    out = run_json(LOCAL_CLUSTER.format(root=str(ROOT)))
    assert out["xgb_same"] and out["lgb_same"]
    loads = [pid for pid, _, _ in out["load"]]
    assert len(loads) == len(set(loads)) >= 2, f"xgboost model loaded twice in a worker, or in one executor: {loads}"
    for kind in ("predict", "lgb-predict"):
        objects = {}
        for pid, obj, _ in out[kind]:
            objects.setdefault(pid, set()).add(obj)
        assert len(objects) >= 2 and out["driver"] not in objects, objects
        assert all(len(ids) == 1 for ids in objects.values()), f"{kind}: more than one model object in a worker: {objects}"
        assert {threads for _, _, threads in out[kind]} == {2}, out[kind]
    assert set(loads) == {pid for pid, _, _ in out["predict"]}
