"""The fastai flavor: MLflow 2.x's layout (``model.fastai`` by ``Learner.export``), pyfunc scoring
as MLflow's (``test_dl`` → ``get_preds`` → a ``predictions`` column of arrays), input checks,
threads, device, safe mode, spark_udf, worker imports, and MLflow 2.x interop both ways (MLflow 3
has no fastai flavor: it runs from a ``pip install --target`` of mlflow-skinny 2.x in a subprocess)."""

import inspect
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

pytest.importorskip("fastai.tabular.all")
torch = pytest.importorskip("torch")

from fastai.callback.schedule import ParamScheduler, SchedCos  # noqa: E402
from fastai.tabular.all import (  # noqa: E402
    Categorify,
    FillMissing,
    Normalize,
    RegressionBlock,
    TabularDataLoaders,
    tabular_learner,
)

import spark_models.fastai  # noqa: E402
import spark_models.pyfunc  # noqa: E402
from spark_models.environment import installed_version  # noqa: E402
from spark_models.exceptions import (  # noqa: E402
    ArtifactNotFoundError,
    InvalidArgumentError,
    MalformedModelError,
    SchemaEnforcementError,
    UnsafeModelError,
)
from spark_models.flavors.testing import check_flavor  # noqa: E402
from spark_models.mlmodel import Model  # noqa: E402
from tests.isolation import run_json  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MLFLOW_2 = "2.22.5"  # the last MLflow with mlflow.fastai (deprecated late in 2.x, removed in 3.0)
INPUTS = ["color", "x", "y"]
MLFLOW_OUTPUT_SCHEMA = [{"type": "array", "items": {"type": "float"}, "name": "predictions", "required": True}]


def frame(n=100, seed=0):
    """color (categorical) and x, y (continuous; x has missing values), plus the targets."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"color": rng.choice(["red", "green", "blue"], n), "x": rng.normal(size=n),
                       "y": rng.normal(size=n)})
    df["label"] = np.where(df.x + (df.color == "red") - df.y > 0.2, "yes", "no")
    df["value"] = 2 * df.x - df.y + (df.color == "blue")
    df.loc[::9, "x"] = np.nan
    return df


def train(df, target):
    """A tiny tabular Learner: 3 epochs on ~80 rows, a few hundred milliseconds."""
    kwargs = {"y_block": RegressionBlock()} if target == "value" else {}
    dls = TabularDataLoaders.from_df(df, procs=[Categorify, FillMissing, Normalize], cat_names=["color"],
                                     cont_names=["x", "y"], y_names=target, bs=32, valid_pct=0.2, seed=0, **kwargs)
    learner = tabular_learner(dls, layers=[8])
    with learner.no_bar(), learner.no_logging():
        learner.fit_one_cycle(3, 1e-2)
    return learner


def scoring_frame():
    """Rows to score: training-like rows, a missing x, an unseen and a missing category."""
    X = frame(12, seed=1)[["color", "x", "y"]]
    X.loc[3, "x"] = np.nan
    X.loc[5, "color"] = "purple"
    X.loc[7, "color"] = None
    return X


# The same helpers for the MLflow 2.x subprocess, which trains its own Learners.
TRAIN = """
import warnings
warnings.simplefilter("ignore")
import numpy as np, pandas as pd
from fastai.tabular.all import Categorify, FillMissing, Normalize, RegressionBlock, TabularDataLoaders, tabular_learner
""" + "\n\n".join(inspect.getsource(f) for f in (frame, train, scoring_frame))


@pytest.fixture(scope="module")
def clf():
    return train(frame(), "label")


@pytest.fixture(scope="module")
def reg():
    return train(frame(), "value")


@pytest.fixture(scope="module")
def X():
    return scoring_frame()


@pytest.fixture(autouse=True)
def _keep_torch_threads():
    """torch's thread count is process-wide: put it back after each test."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def native(learner, X):
    """What MLflow's pyfunc returns: test_dl → get_preds → a 'predictions' column of arrays."""
    with learner.no_bar():
        preds, _ = learner.get_preds(dl=learner.dls.test_dl(X))
    return pd.DataFrame({"predictions": list(preds.numpy())})


def stacked(frame_or_series):
    column = frame_or_series["predictions"] if isinstance(frame_or_series, pd.DataFrame) else frame_or_series
    return np.stack(list(column))


def edit_mlmodel(path: Path, change) -> None:
    meta = yaml.safe_load((path / "MLmodel").read_text())
    change(meta)
    (path / "MLmodel").write_text(yaml.safe_dump(meta))


# ---- conformance, layout, round trip ------------------------------------------------------

def test_passes_check_flavor(clf, reg, X, tmp_path):
    for name, learner in (("clf", clf), ("reg", reg)):
        check_flavor(spark_models.fastai.FLAVOR, learner, X, tmp_path / name, native_predict=native)


@pytest.mark.slow
@pytest.mark.spark
def test_passes_check_flavor_with_spark(spark, clf, X, tmp_path):
    check_flavor(spark_models.fastai.FLAVOR, clf, X, tmp_path, native_predict=native, spark=spark)


def test_layout_is_mlflow_2_s(clf, X, tmp_model_dir):
    import fastai

    spark_models.fastai.save_model(clf, tmp_model_dir, input_example=X.head(3))
    meta = yaml.safe_load((tmp_model_dir / "MLmodel").read_text())
    assert meta["flavors"]["fastai"] == {"fastai_version": fastai.__version__, "data": "model.fastai", "code": None}
    pyfunc = meta["flavors"]["python_function"]
    assert pyfunc["loader_module"] == "spark_models.fastai" and pyfunc["data"] == "model.fastai"
    assert (tmp_model_dir / "model.fastai").is_file()
    assert json.loads(meta["signature"]["outputs"]) == MLFLOW_OUTPUT_SCHEMA
    assert [c["name"] for c in json.loads(meta["signature"]["inputs"])] == INPUTS
    requirements = (tmp_model_dir / "requirements.txt").read_text().splitlines()
    assert f"fastai=={fastai.__version__}" in requirements
    assert f"torch=={installed_version('torch')}" in requirements and "+" not in installed_version("torch")
    assert spark_models.fastai.default_pip_requirements()[1:] == [f"fastai=={fastai.__version__}",
                                                                 f"torch=={installed_version('torch')}"]


def test_round_trip_native_and_pyfunc(clf, reg, X, tmp_path):
    from fastai.tabular.learner import TabularLearner

    for name, learner in (("clf", clf), ("reg", reg)):
        spark_models.fastai.save_model(learner, tmp_path / name)
        loaded = spark_models.fastai.load_model(tmp_path / name)
        assert isinstance(loaded, TabularLearner)
        expected = native(learner, X)
        pd.testing.assert_frame_equal(native(loaded, X), expected)
        out = spark_models.pyfunc.load_model(tmp_path / name).predict(X)
        assert list(out.columns) == ["predictions"] and len(out) == len(X)
        assert all(isinstance(v, np.ndarray) and v.dtype == np.float32 for v in out["predictions"])
        np.testing.assert_array_equal(stacked(out), stacked(expected))
    assert stacked(native(clf, X)).shape == (len(X), 2)  # class probabilities
    assert stacked(native(reg, X)).shape == (len(X), 1)  # n_out values


def test_rows_keep_their_order_and_index_and_input_is_untouched(clf, X, tmp_model_dir):
    spark_models.fastai.save_model(clf, tmp_model_dir)
    model = spark_models.pyfunc.load_model(tmp_model_dir)
    expected = stacked(native(clf, X))
    big = pd.concat([X] * 30, ignore_index=True)  # several of fastai's batches
    # float32 results can move by an ulp with the batch size (BLAS kernels): a tolerance far below row differences
    np.testing.assert_allclose(stacked(model.predict(big)), np.concatenate([expected] * 30), rtol=1e-6, atol=1e-7)
    order = np.random.default_rng(3).permutation(len(X))
    shuffled = X.iloc[order].set_index(pd.Index(order * 10 + 7))
    before = shuffled.copy()
    out = model.predict(shuffled)
    pd.testing.assert_frame_equal(shuffled, before)
    assert list(out.index) == list(shuffled.index)
    np.testing.assert_allclose(stacked(out), expected[order], rtol=1e-6, atol=1e-7)


def test_param_schedulers_are_left_out_of_the_export_as_in_mlflow(reg, tmp_model_dir):
    scheduler = ParamScheduler({"lr": SchedCos(1e-3, 1e-5)})
    reg.add_cb(scheduler)
    try:
        spark_models.fastai.save_model(reg, tmp_model_dir)
        assert scheduler in reg.cbs
    finally:
        reg.remove_cb(scheduler)
    assert not any(isinstance(cb, ParamScheduler) for cb in spark_models.fastai.load_model(tmp_model_dir).cbs)


# ---- input and model errors -----------------------------------------------------------------

def test_missing_columns_are_named(clf, X, tmp_path):
    spark_models.fastai.save_model(clf, tmp_path / "plain")
    spark_models.fastai.save_model(clf, tmp_path / "signed", input_example=X.head(2))
    plain = spark_models.pyfunc.load_model(tmp_path / "plain")
    with pytest.raises(SchemaEnforcementError, match=r"lacks: \['color', 'y'\]"):
        plain.predict(X[["x"]])
    # x_na, which FillMissing derives, is not an input; extra columns are ignored
    np.testing.assert_array_equal(stacked(plain.predict(X.assign(other=1))), stacked(native(clf, X)))
    with pytest.raises(SchemaEnforcementError, match="pandas DataFrame"):
        plain.predict(X.to_numpy())
    with pytest.raises(SchemaEnforcementError, match="'y'"):
        spark_models.pyfunc.load_model(tmp_path / "signed").predict(X.drop(columns=["y"]))


def test_no_rows_and_ignored_params(clf, X, tmp_model_dir, caplog):
    spark_models.fastai.save_model(clf, tmp_model_dir)
    wrapper = spark_models.pyfunc.load_model(tmp_model_dir).get_raw_model()
    empty = wrapper.predict(X.head(0))
    assert list(empty.columns) == ["predictions"] and len(empty) == 0
    with caplog.at_level("WARNING", logger="spark_models.flavors.fastai"):
        np.testing.assert_array_equal(stacked(wrapper.predict(X, params={"k": 1})), stacked(native(clf, X)))
    assert "ignoring ['k']" in caplog.text


def test_save_and_load_errors(clf, tmp_path):
    with pytest.raises(InvalidArgumentError, match="must be a fastai Learner"):
        spark_models.fastai.save_model(object(), tmp_path / "a")
    assert not (tmp_path / "a").exists()
    spark_models.fastai.save_model(clf, tmp_path / "m")
    (tmp_path / "m" / "model.fastai").write_bytes(b"not a pickle")
    with pytest.raises(MalformedModelError, match="cannot load this Learner .written by fastai"):
        spark_models.fastai.load_model(tmp_path / "m")
    (tmp_path / "m" / "model.fastai").unlink()
    with pytest.raises(ArtifactNotFoundError, match="model.fastai"):
        spark_models.pyfunc.load_model(tmp_path / "m")


# ---- safe mode, threads, device ----------------------------------------------------------

def test_safe_mode_refuses_the_pickle(clf, tmp_model_dir, monkeypatch):
    spark_models.fastai.save_model(clf, tmp_model_dir)
    for load in (spark_models.fastai.load_model, spark_models.pyfunc.load_model):
        with pytest.raises(UnsafeModelError, match="unpickles the fastai Learner export 'model.fastai'"):
            load(tmp_model_dir, allow_code=False)
    monkeypatch.setenv("SPARK_MODELS_ALLOW_CODE", "0")
    with pytest.raises(UnsafeModelError, match="allow_code=False"):
        spark_models.pyfunc.load_model(tmp_model_dir)
    assert spark_models.fastai.FLAVOR.runs_code is not None


def test_threads_go_to_torch(clf, X, tmp_model_dir, monkeypatch):
    spark_models.fastai.save_model(clf, tmp_model_dir)
    monkeypatch.delenv("SPARK_MODELS_NUM_THREADS", raising=False)
    torch.set_num_threads(2)
    spark_models.pyfunc.load_model(tmp_model_dir).predict(X)
    assert torch.get_num_threads() == 2  # no setting: torch's own
    spark_models.pyfunc.load_model(tmp_model_dir, model_config={"num_threads": 1}).predict(X)
    assert torch.get_num_threads() == 1
    torch.set_num_threads(2)
    monkeypatch.setenv("SPARK_MODELS_NUM_THREADS", "1")
    out = spark_models.pyfunc.load_model(tmp_model_dir).predict(X)
    assert torch.get_num_threads() == 1
    np.testing.assert_allclose(stacked(out), stacked(native(clf, X)), rtol=1e-6, atol=1e-7)  # other thread count
    with pytest.raises(InvalidArgumentError, match="positive number of threads"):
        spark_models.pyfunc.load_model(tmp_model_dir, model_config={"num_threads": 0})


def test_device_comes_from_model_config(clf, X, tmp_model_dir):
    spark_models.fastai.save_model(clf, tmp_model_dir)
    on_cpu = spark_models.pyfunc.load_model(tmp_model_dir, model_config={"device": "cpu"})
    assert next(on_cpu.get_raw_model().learner.model.parameters()).device.type == "cpu"
    np.testing.assert_array_equal(stacked(on_cpu.predict(X)), stacked(native(clf, X)))
    with pytest.raises(InvalidArgumentError, match="must be 'cpu', 'cuda'"):
        spark_models.pyfunc.load_model(tmp_model_dir, model_config={"device": "tpu"})
    if not torch.cuda.is_available():
        with pytest.raises(InvalidArgumentError, match="asks for 'cuda:0'.* no cuda device"):
            spark_models.pyfunc.load_model(tmp_model_dir, model_config={"device": "cuda:0"})


# ---- Spark -------------------------------------------------------------------------------

@pytest.mark.spark
def test_spark_udf_scores_like_pyfunc_in_input_order(spark, clf, X, tmp_model_dir):
    """Nulls (a missing category, a missing x that FillMissing fills), an unseen category, rows
    spread over partitions: the same arrays as pyfunc, row for row."""
    spark_models.fastai.save_model(clf, tmp_model_dir, input_example=X.head(3))
    expected = stacked(spark_models.pyfunc.load_model(tmp_model_dir).predict(X))
    rows = [(i, r.color, None if np.isnan(r.x) else float(r.x), float(r.y)) for i, r in enumerate(X.itertuples())]
    df = spark.createDataFrame(rows, "id long, color string, x double, y double").repartition(3)
    u = spark_models.pyfunc.spark_udf(spark, str(tmp_model_dir))
    assert u.return_type.simpleString() == "array<float>"
    out = df.withColumn("p", u()).orderBy("id").toPandas()
    assert list(out["id"]) == list(range(len(X)))
    # Spark's batches are not pyfunc's one batch: float32 may differ in the last ulp (see above)
    np.testing.assert_allclose(np.stack(list(out["p"])), expected, rtol=1e-6, atol=1e-7)
    with pytest.raises(UnsafeModelError, match="unpickles"):
        spark_models.pyfunc.spark_udf(spark, str(tmp_model_dir), allow_code=False)


# ---- processes: imports, MLflow 2.x ---------------------------------------------------------

HEAVY = ("fastai", "torch", "mlflow", "sklearn", "tensorflow", "keras", "torchvision", "xgboost", "lightgbm",
         "spacy", "onnxruntime")
IMPORTS = r'''
import json, sys
import pandas as pd
{body}
print(json.dumps(sorted({{m.split(".")[0] for m in sys.modules}} & set({heavy!r}))))
'''


@pytest.mark.slow
def test_scoring_imports_fastai_and_torch_and_nothing_else_heavy(clf, X, tmp_model_dir, tmp_path):
    spark_models.fastai.save_model(clf, tmp_model_dir)
    X.to_parquet(tmp_path / "X.parquet")
    score = (f"import spark_models.pyfunc\nm = spark_models.pyfunc.load_model({str(tmp_model_dir)!r})\n"
             f"m.predict(pd.read_parquet({str(tmp_path / 'X.parquet')!r}))")
    scored = run_json(IMPORTS.format(body=score, heavy=HEAVY), blocked=("mlflow",))
    library_alone = run_json(IMPORTS.format(body="import fastai.tabular.all", heavy=HEAVY))
    assert {"fastai", "torch"} <= set(scored)
    assert not {"mlflow", "tensorflow", "keras", "torchvision", "xgboost", "lightgbm"} & set(scored)
    # fastai.learner imports scikit-learn itself (fastai.metrics): scoring adds nothing to fastai's own imports.
    assert set(scored) <= set(library_alone)


@pytest.fixture(scope="session")
def mlflow2(tmp_path_factory) -> Path:
    """mlflow-skinny 2.x (no dependencies: this venv's serve it) installed once per session into
    a directory that goes first on a subprocess's PYTHONPATH."""
    target = tmp_path_factory.mktemp("mlflow2")
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                           "--no-deps", "--target", str(target), f"mlflow-skinny=={MLFLOW_2}"],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, f"could not install mlflow-skinny=={MLFLOW_2}:\n{proc.stderr[-2000:]}"
    return target


def run_mlflow2(target: Path, code: str, cwd: Path):
    """Run ``code`` (printing one JSON document last) with MLflow 2.x imported from ``target``, in
    ``cwd`` (MLflow 2 creates ``mlruns/`` in the working directory)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(target), str(ROOT)])}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=cwd, timeout=600,
                          check=False)
    if proc.returncode != 0:
        raise AssertionError(f"MLflow {MLFLOW_2} subprocess failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


MLFLOW_WRITES = r'''
import json, sys, mlflow, mlflow.fastai, mlflow.pyfunc
assert mlflow.__version__ == {version!r}, mlflow.__version__
root = {root!r}
X = scoring_frame()
X.to_parquet(root + "/X.parquet")
out = {{}}
for name, target in (("clf", "label"), ("reg", "value")):
    learner = train(frame(), target)
    # pip_requirements: skips MLflow's requirement inference (a subprocess loading the model; slow)
    extra = {{"input_example": X.head(3)}} if name == "clf" else {{}}
    mlflow.fastai.save_model(learner, root + "/" + name, pip_requirements=["fastai"], **extra)
    predictions = mlflow.pyfunc.load_model(root + "/" + name).predict(X)
    out[name] = {{"columns": list(predictions.columns), "cell": type(predictions.iloc[0, 0]).__name__,
                 "values": np.stack(predictions["predictions"].tolist()).tolist()}}
print(json.dumps(out))
'''

READS_WITHOUT_MLFLOW = r'''
import json, sys, numpy as np, pandas as pd, spark_models.fastai, spark_models.pyfunc
from spark_models.exceptions import UnsafeModelError
root = {root!r}
X = pd.read_parquet(root + "/X.parquet")
out = {{}}
for name in ("clf", "reg"):
    predictions = spark_models.pyfunc.load_model(root + "/" + name).predict(X)
    out[name] = {{"columns": list(predictions.columns), "cell": type(predictions.iloc[0, 0]).__name__,
                 "values": np.stack(predictions["predictions"].tolist()).tolist()}}
    out[name + ":class"] = type(spark_models.fastai.load_model(root + "/" + name)).__name__
    try:
        spark_models.pyfunc.load_model(root + "/" + name, allow_code=False)
    except UnsafeModelError:
        out[name + ":safe"] = "refused"
out["mlflow_loaded"] = any(m.split(".")[0] == "mlflow" for m in sys.modules)
print(json.dumps(out))
'''


@pytest.mark.slow
def test_mlflow_2_written_models_load_where_mlflow_cannot_be_imported(mlflow2, tmp_path):
    expected = run_mlflow2(mlflow2, TRAIN + MLFLOW_WRITES.format(version=MLFLOW_2, root=str(tmp_path)),
                           tmp_path)
    assert expected["clf"]["columns"] == ["predictions"] and expected["clf"]["cell"] == "ndarray"
    meta = Model.load(tmp_path / "clf")
    assert meta.flavors["python_function"]["loader_module"] == "mlflow.fastai"
    assert set(meta.flavors["fastai"]) == {"fastai_version", "data", "code"}
    got = run_json(READS_WITHOUT_MLFLOW.format(root=str(tmp_path)), blocked=("mlflow",))
    assert got.pop("mlflow_loaded") is False
    assert {k: got.pop(k) for k in ("clf:class", "reg:class", "clf:safe", "reg:safe")} == {
        "clf:class": "TabularLearner", "reg:class": "TabularLearner", "clf:safe": "refused", "reg:safe": "refused"}
    assert got == expected


MLFLOW_READS = r'''
import json, warnings, numpy as np, pandas as pd, mlflow, mlflow.fastai, mlflow.pyfunc
warnings.simplefilter("ignore")
assert mlflow.__version__ == {version!r}, mlflow.__version__
root = {root!r}
X = pd.read_parquet(root + "/X.parquet")
out = {{}}
for name in ("clf", "reg"):
    model = mlflow.pyfunc.load_model(root + "/" + name)
    predictions = model.predict(X)
    learner = mlflow.fastai.load_model(root + "/" + name)
    preds, _ = learner.get_preds(dl=learner.dls.test_dl(X))
    out[name] = {{"columns": list(predictions.columns), "cell": type(predictions.iloc[0, 0]).__name__,
                 "values": np.stack(predictions["predictions"].tolist()).tolist(), "native": preds.numpy().tolist(),
                 "class": type(learner).__name__, "loader": model.metadata.flavors["python_function"]["loader_module"],
                 "outputs": model.metadata.get_output_schema().to_dict() if name == "clf" else None}}
print(json.dumps(out))
'''


@pytest.mark.slow
def test_our_models_load_in_mlflow_2(mlflow2, clf, reg, X, tmp_path):
    X.to_parquet(tmp_path / "X.parquet")
    ours = {}
    for name, learner in (("clf", clf), ("reg", reg)):
        extra = {"input_example": X.head(3)} if name == "clf" else {}
        spark_models.fastai.save_model(learner, tmp_path / name, **extra)
        ours[name] = stacked(spark_models.pyfunc.load_model(tmp_path / name).predict(X)).tolist()
    theirs = run_mlflow2(mlflow2, MLFLOW_READS.format(version=MLFLOW_2, root=str(tmp_path)), tmp_path)
    for name in ("clf", "reg"):
        got = theirs[name]
        assert (got["columns"], got["cell"], got["class"]) == (["predictions"], "ndarray", "TabularLearner")
        assert got["loader"] == "spark_models.fastai"
        assert got["values"] == ours[name] and got["native"] == ours[name]
    assert theirs["clf"]["outputs"] == MLFLOW_OUTPUT_SCHEMA


def test_no_fastai_in_mlflow_3():
    """Why the interop tests above need MLflow 2.x: MLflow 3 removed mlflow.fastai."""
    mlflow = pytest.importorskip("mlflow")
    if int(mlflow.__version__.split(".")[0]) < 3:
        pytest.skip("MLflow 2.x still has mlflow.fastai")
    with warnings.catch_warnings(), pytest.raises(ImportError):
        warnings.simplefilter("ignore")
        import mlflow.fastai
