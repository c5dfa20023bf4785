"""The h2o flavor: MLflow's layout, the cluster runtime (MLflow's wrapper) and the MOJO runtime.

One H2O cluster (nthreads=1, 1 GB, on a free port) serves the module and is shut down at its end.

About MOJOs: the h2o wheel installed here (3.46.0.12 from PyPI) refuses MOJO export in the open-source
client (``download_mojo`` raises "MOJO export requires H2O-3 Secure"), so a model trained here
cannot get one. The MOJO runtime is tested on MOJOs written by hand in H2O's GLM MOJO format
(``model.ini`` and domain files, the format genmodel reads): H2O imports them
(``h2o.upload_mojo``), gives the binary model of that import (``h2o.download_model``) and
scores them in the cluster, so the cluster and MOJO runtimes score the same model; genmodel's
own ``h2o.mojo_predict_pandas`` and the closed-form GLM are the references.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

h2o = pytest.importorskip("h2o")

import spark_models.h2o as h2o_flavor  # noqa: E402
import spark_models.pyfunc  # noqa: E402
from spark_models.exceptions import InvalidArgumentError, NotSupportedError, UnsafeModelError  # noqa: E402
from spark_models.flavors import h2o_mojo  # noqa: E402
from spark_models.flavors.testing import check_flavor  # noqa: E402
from spark_models.mlmodel import Model  # noqa: E402
from tests.isolation import run_json  # noqa: E402

BETA = {"x": 0.0, "y": 0.5, "z": -0.5}  # the hand-written GLMs: cat c (x is the base level), 2a + b - 0.25


def _free_port() -> int:
    """A port p with p + 1 free too (H2O takes both)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        try:
            with socket.socket() as s:
                s.bind(("127.0.0.1", port + 1))
            return port
        except OSError:
            continue
    raise RuntimeError("no free port pair")


@pytest.fixture(scope="module")
def cluster():
    os.environ.setdefault("DO_NOT_TRACK", "1")
    port = _free_port()
    h2o.init(port=port, nthreads=1, max_mem_size="1G", verbose=False)
    h2o.no_progress()
    yield port
    h2o.cluster().shutdown()


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=50), "b": rng.normal(size=50), "c": rng.choice(["x", "y", "z"], 50)})
    return X, np.where(X.a + X.b > 0, "yes", "no"), 2 * X.a + X.b


@pytest.fixture(scope="module")
def gbm(cluster, data):
    from h2o.estimators import H2OGradientBoostingEstimator

    X, labels, _ = data
    frame = h2o.H2OFrame(X.assign(y=labels))
    frame["y"] = frame["y"].asfactor()
    model = H2OGradientBoostingEstimator(ntrees=5, max_depth=3, seed=1)
    model.train(x=["a", "b", "c"], y="y", training_frame=frame)
    return model


@pytest.fixture(scope="module")
def glm(cluster, data):
    from h2o.estimators import H2OGeneralizedLinearEstimator

    X, _, target = data
    model = H2OGeneralizedLinearEstimator(family="gaussian")
    model.train(x=["a", "b", "c"], y="y", training_frame=h2o.H2OFrame(X.assign(y=target)))
    return model


def write_glm_mojo(path: Path, binomial: bool) -> Path:
    """A GLM MOJO written by hand: beta = [c=y, c=z, a, b, intercept], logit or identity link."""
    family, link, category = ("binomial", "logit", "Binomial") if binomial else ("gaussian", "identity", "Regression")
    domains = "0: 3 d000.txt\n3: 2 d001.txt\n" if binomial else "0: 3 d000.txt\n"
    ini = f"""[info]
h2o_version = 3.46.0.12
mojo_version = 1.00
license = Apache License Version 2.0
algo = glm
algorithm = Generalized Linear Modeling
endianness = LITTLE_ENDIAN
category = {category}
uuid = {4242 if binomial else 4343}
supervised = true
n_features = 3
n_classes = {2 if binomial else 1}
n_columns = 4
n_domains = {2 if binomial else 1}
balance_classes = false
default_threshold = 0.5
prior_class_distrib = null
model_class_distrib = null
timestamp = 2025-01-01T00:00:00.000+00:00
use_all_factor_levels = false
cats = 1
cat_modes = [0]
cat_offsets = [0, 2]
nums = 2
num_means = [0.0, 0.0]
mean_imputation = true
beta = [{BETA['y']}, {BETA['z']}, 2.0, 1.0, -0.25]
family = {family}
link = {link}

[columns]
c
a
b
y

[domains]
{domains}"""
    values = {"family": ("enum", family), "link": ("enum", link), "lambda": ("double[]", [0.0]),
              "alpha": ("double[]", [0.0]), "tweedie_variance_power": ("double", 0.0),
              "tweedie_link_power": ("double", 1.0), "theta": ("double", 1e-10)}  # what H2O's import reads
    params = [{"name": k, "type": t, "default_value": v, "actual_value": v} for k, (t, v) in values.items()]
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("model.ini", ini)
        z.writestr("domains/d000.txt", "x\ny\nz\n")
        if binomial:
            z.writestr("domains/d001.txt", "no\nyes\n")
        z.writestr("experimental/modelDetails.json", json.dumps({"parameters": params}))
    return path


def closed_form(X: pd.DataFrame) -> np.ndarray:
    """The hand-written GLMs' linear predictor (missing numbers take the mean 0, unknown levels the mode x)."""
    return X.c.map(BETA).fillna(0.0).to_numpy() + 2 * X.a.fillna(0.0).to_numpy() + X.b.fillna(0.0).to_numpy() - 0.25


@pytest.fixture(scope="module")
def mojos(cluster, tmp_path_factory):
    """(zip, the H2O model imported from it) for the binomial and the regression hand-written MOJO."""
    root = tmp_path_factory.mktemp("mojos")
    out = {}
    for name, binomial in (("binomial", True), ("regression", False)):
        path = write_glm_mojo(root / f"{name}.zip", binomial)
        out[name] = (path, h2o.upload_mojo(str(path)))
    return out


@pytest.fixture(scope="module")
def mojo_model(mojos, tmp_path_factory):
    """The binomial MOJO's model directory: binary model (of the import) and the MOJO."""
    zip_path, imported = mojos["binomial"]
    path = tmp_path_factory.mktemp("saved") / "mojo_model"
    example = pd.DataFrame({"a": [0.1, -1.0], "b": [0.2, 0.5], "c": ["x", "y"]})
    h2o_flavor.save_model(imported, path, mojo_path=zip_path, input_example=example)
    return path


def cluster_predict(model, X: pd.DataFrame) -> pd.DataFrame:
    """What MLflow's _H2OModelWrapper returns."""
    out = model.predict(h2o.H2OFrame(X)).as_data_frame()
    out.index = X.index
    return out


def probe_rows() -> pd.DataFrame:
    """Missing numbers, an unseen level, a value with a comma: every way CSV could go wrong."""
    return pd.DataFrame({"a": [0.1, -1.0, 2.0, np.nan, 0.0, 1e-300], "b": [0.2, 0.5, -3.0, 1.0, 0.0, 7.25],
                         "c": ["x", "y", "z", "x", "w,1", None]}, index=[10, 11, 12, 13, 14, 15])


def h2o_processes() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, command line) of every process running the h2o wheel's jar."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if "h2o.jar" in cmd:
            found[int(entry.name)] = (ppid, cmd)
    return found


def h2o_servers() -> set[int]:
    """H2O clusters (every process running h2o.jar but our MOJO scoring JVMs)."""
    return {pid for pid, (_, cmd) in h2o_processes().items() if "py4j.GatewayServer" not in cmd}


def worker_jvms() -> set[int]:
    """MOJO scoring JVMs whose parent is a PySpark worker process."""
    found = set()
    for pid, (ppid, cmd) in h2o_processes().items():
        try:
            parent = Path(f"/proc/{ppid}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if "py4j.GatewayServer" in cmd and "pyspark" in parent:
            found.add(pid)
    return found


# --- layout and MLflow interoperability ------------------------------------------------------


def test_layout_is_mlflows(gbm, data, cluster, tmp_path):
    import mlflow.h2o

    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    h2o_flavor.save_model(gbm, ours, settings={"init": {"nthreads": 1}})
    mlflow.h2o.save_model(gbm, str(theirs), settings={"init": {"nthreads": 1}}, pip_requirements=["h2o"])
    mine, reference = Model.load(ours).flavors, Model.load(theirs).flavors
    assert set(reference["h2o"]) <= set(mine["h2o"]) and mine["h2o"]["data"] == reference["h2o"]["data"] == "model.h2o"
    assert mine["h2o"]["h2o_version"] == h2o.__version__
    assert mine["python_function"]["data"] == reference["python_function"]["data"]
    assert mine["python_function"]["loader_module"] == "spark_models.h2o"
    assert ("mojo_file" in mine["h2o"]) != ("mojo_skipped" in mine["h2o"])
    settings = [yaml.safe_load((root / "model.h2o" / "h2o.yaml").read_text()) for root in (ours, theirs)]
    assert set(settings[0]) == set(settings[1]) == {"full_file", "model_file", "model_dir", "init"}
    assert settings[0]["model_file"] == settings[1]["model_file"] and settings[0]["init"] == {"nthreads": 1}
    assert not os.path.isabs(settings[0]["full_file"]) and (ours / settings[0]["full_file"]).is_file()
    assert f"h2o=={h2o.__version__}" in (ours / "requirements.txt").read_text().split()
    assert h2o_flavor.default_pip_requirements()[1] == f"h2o=={h2o.__version__}"


def test_mojo_skipped_is_recorded_when_h2o_refuses_export(gbm, tmp_path):
    h2o_flavor.save_model(gbm, tmp_path / "auto")
    conf = Model.load(tmp_path / "auto").flavors["h2o"]
    if "mojo_file" in conf:
        pytest.skip(f"h2o {h2o.__version__} exports MOJOs")
    assert "H2O-3 Secure" in conf["mojo_skipped"] or "MOJO" in conf["mojo_skipped"]
    with pytest.raises(NotSupportedError, match="mojo=True"):
        h2o_flavor.save_model(gbm, tmp_path / "required", mojo=True)
    assert not (tmp_path / "required").exists()
    h2o_flavor.save_model(gbm, tmp_path / "off", mojo=False)
    assert Model.load(tmp_path / "off").flavors["h2o"]["mojo_skipped"] == "save_model(mojo=False)"


def test_bad_mojo_arguments(gbm, tmp_path):
    (tmp_path / "not.zip").write_text("hello")
    with pytest.raises(InvalidArgumentError, match="not an H2O MOJO"):
        h2o_flavor.save_model(gbm, tmp_path / "m1", mojo_path=tmp_path / "not.zip")
    with pytest.raises(InvalidArgumentError, match="contradicts"):
        h2o_flavor.save_model(gbm, tmp_path / "m2", mojo=False, mojo_path=tmp_path / "not.zip")
    assert not (tmp_path / "m1").exists() and not (tmp_path / "m2").exists()


@pytest.mark.slow
def test_mlflow_written_model_loads_without_mlflow(gbm, data, cluster, tmp_path):
    """mlflow.h2o.save_model's directory, scored by spark_models in a process where mlflow cannot be imported."""
    import mlflow.h2o
    import mlflow.pyfunc

    X = data[0]
    path = tmp_path / "mlflow_model"
    mlflow.h2o.save_model(gbm, str(path), settings={"init": {"port": cluster}}, pip_requirements=["h2o"])
    expected = mlflow.pyfunc.load_model(str(path)).predict(X)
    X.to_parquet(tmp_path / "X.parquet")
    got = run_json(f"""
import json, sys, pandas as pd, spark_models.pyfunc
X = pd.read_parquet({str(tmp_path / 'X.parquet')!r})
out = spark_models.pyfunc.load_model({str(path)!r}).predict(X)
print(json.dumps({{"pred": out.to_dict("list"), "mlflow": any(m.split(".")[0] == "mlflow" for m in sys.modules)}}),
      flush=True)
import os; os._exit(0)  # h2o prints "H2O session closed" at exit; the JSON must stay the last line
""", blocked=("mlflow",))
    assert got["mlflow"] is False
    pd.testing.assert_frame_equal(pd.DataFrame(got["pred"]), expected)


def test_ours_load_in_mlflow(gbm, mojo_model, mojos, data, cluster, tmp_path):
    import mlflow.h2o
    import mlflow.pyfunc

    X = data[0]
    path = tmp_path / "ours"
    h2o_flavor.save_model(gbm, path)
    expected = cluster_predict(gbm, X)
    pd.testing.assert_frame_equal(mlflow.pyfunc.load_model(str(path)).predict(X), expected)
    pd.testing.assert_frame_equal(cluster_predict(mlflow.h2o.load_model(str(path)), X), expected)
    from_mojo = mlflow.pyfunc.load_model(str(mojo_model)).predict(X)
    pd.testing.assert_frame_equal(from_mojo, cluster_predict(mojos["binomial"][1], X))


# --- the cluster runtime --------------------------------------------------------------------


@pytest.mark.parametrize("name", ["gbm", "glm"])
def test_round_trip_through_the_cluster(name, request, data, tmp_path):
    model, X = request.getfixturevalue(name), data[0]
    h2o_flavor.save_model(model, tmp_path / "m", input_example=X.head(3))
    expected = cluster_predict(model, X)
    pd.testing.assert_frame_equal(cluster_predict(h2o_flavor.load_model(str(tmp_path / "m")), X), expected)
    loaded = spark_models.pyfunc.load_model(tmp_path / "m")
    pd.testing.assert_frame_equal(loaded.predict(X), expected)
    assert [c.name for c in loaded.signature.outputs] == list(expected.columns)
    with pytest.raises(NotSupportedError, match="no MOJO"):
        spark_models.pyfunc.load_model(tmp_path / "m", model_config={"runtime": "mojo"})


def test_check_flavor_cluster_runtime(gbm, data, tmp_path):
    check_flavor(h2o_flavor.FLAVOR, gbm, data[0], tmp_path, native_predict=cluster_predict)


def test_runtime_config_is_checked(mojo_model):
    with pytest.raises(InvalidArgumentError, match="runtime"):
        spark_models.pyfunc.load_model(mojo_model, model_config={"runtime": "jvm"})
    with pytest.raises(InvalidArgumentError, match="mojo_jvm"):
        spark_models.pyfunc.load_model(mojo_model, model_config={"mojo_jvm": "thread"})


# --- the MOJO runtime -----------------------------------------------------------------------


def test_mojo_runtime_matches_the_cluster_genmodel_and_the_formula(mojo_model, mojos):
    zip_path, imported = mojos["binomial"]
    X = probe_rows()
    auto = spark_models.pyfunc.load_model(mojo_model)
    assert isinstance(auto.get_raw_model().get_raw_model(), h2o_mojo.MojoScorer)
    got = auto.predict(X)
    pd.testing.assert_frame_equal(got, cluster_predict(imported, X))
    reference = h2o.mojo_predict_pandas(X, str(zip_path), genmodel_jar_path=str(h2o_mojo.h2o_jar()))
    pd.testing.assert_frame_equal(got, reference.set_axis(X.index))
    p_yes = 1 / (1 + np.exp(-closed_form(X)))
    np.testing.assert_allclose(got["yes"], p_yes, rtol=1e-12)
    assert got["predict"].tolist() == ["yes" if p >= 0.5 else "no" for p in p_yes]
    per_call = spark_models.pyfunc.load_model(mojo_model, model_config={"mojo_jvm": "call"}).predict(X)
    pd.testing.assert_frame_equal(per_call, got)
    cluster = spark_models.pyfunc.load_model(mojo_model, model_config={"runtime": "cluster"})
    assert not isinstance(cluster.get_raw_model().get_raw_model(), h2o_mojo.MojoScorer)
    pd.testing.assert_frame_equal(cluster.predict(X), got)


def test_mojo_scoring_errors_name_the_value(mojos):
    scorer = h2o_mojo.MojoScorer(mojos["binomial"][0])
    bad = pd.DataFrame({"a": ["1,5"], "b": [0.0], "c": ["x"]})
    with pytest.raises(InvalidArgumentError, match=r"Unable to parse value: 1,5, from column: a"):
        scorer.predict(bad)
    with pytest.raises(InvalidArgumentError, match="Unable to parse"):
        h2o_mojo.MojoScorer(mojos["binomial"][0], {"mojo_jvm": "call"}).predict(bad)
    assert len(scorer.predict(probe_rows())) == 6  # the JVM survives a failed batch


def test_mojo_runtime_is_thread_safe(mojo_model):
    model = spark_models.pyfunc.load_model(mojo_model)
    frames = [probe_rows().sample(frac=1.0, random_state=i, replace=True).reset_index(drop=True) for i in range(8)]
    results: dict[int, pd.DataFrame] = {}
    threads = [threading.Thread(target=lambda i=i: results.__setitem__(i, model.predict(frames[i]))) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, frame in enumerate(frames):
        np.testing.assert_allclose(results[i]["yes"], 1 / (1 + np.exp(-closed_form(frame))), rtol=1e-12)


def test_empty_batch(mojo_model):
    model = spark_models.pyfunc.load_model(mojo_model)
    out = model.predict(probe_rows().head(0))
    assert len(out) == 0 and list(out.columns) == ["predict", "no", "yes"]


def test_imported_mojo_keeps_its_source(mojos, cluster, tmp_path):
    zip_path = mojos["regression"][0]
    imported = h2o.import_mojo(str(zip_path))
    h2o_flavor.save_model(imported, tmp_path / "m")
    conf = Model.load(tmp_path / "m").flavors["h2o"]
    assert (tmp_path / "m" / conf["mojo_file"]).read_bytes() == zip_path.read_bytes()


@pytest.mark.slow
def test_mojo_scores_in_a_fresh_process_without_a_cluster(mojo_model, mojos, tmp_path):
    X = probe_rows()
    X.to_parquet(tmp_path / "X.parquet")
    servers = h2o_servers()
    got = run_json(f"""
import json, os, sys, pandas as pd, spark_models.pyfunc
from spark_models.flavors import h2o_mojo  # noqa: E402
X = pd.read_parquet({str(tmp_path / 'X.parquet')!r})
pred = spark_models.pyfunc.load_model({str(mojo_model)!r}).predict(X)
import h2o, spark_models.h2o  # imported by the registry (checking h2o is installed), never initialised
connection = h2o.connection()
jvm = h2o_mojo.scoring_jvm_pid()
cmd = open(f"/proc/{{jvm}}/cmdline", "rb").read().replace(b"\\0", b" ").decode()
try:
    spark_models.h2o.load_model({str(mojo_model)!r})
    native = "loaded"
except Exception as e:
    native = type(e).__name__ + ": " + str(e)
print(json.dumps({{"pred": pred.to_dict("list"), "index": pred.index.tolist(), "jvm": jvm, "cmd": cmd,
                  "connection": connection is None and h2o.connection() is None, "native": native}}), flush=True)
os._exit(0)  # no atexit: the scoring JVM must still go away with this process
""", blocked=("mlflow",))
    assert got["connection"] is True
    assert "py4j.GatewayServer" in got["cmd"] and "--die-on-broken-pipe" in got["cmd"]
    assert got["native"].startswith("NotSupportedError") and "h2o.init()" in got["native"]
    assert h2o_servers() == servers, "an H2O cluster was started"
    expected = cluster_predict(mojos["binomial"][1], X)
    pd.testing.assert_frame_equal(pd.DataFrame(got["pred"], index=got["index"]), expected)
    deadline = time.monotonic() + 15
    while Path(f"/proc/{got['jvm']}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not Path(f"/proc/{got['jvm']}").exists(), "the scoring JVM outlived its Python process"


# --- trust ----------------------------------------------------------------------------------


def _with_init(src: Path, dst: Path, init: dict) -> Path:
    shutil.copytree(src, dst)
    settings_file = dst / "model.h2o" / "h2o.yaml"
    settings = yaml.safe_load(settings_file.read_text())
    settings_file.write_text(yaml.safe_dump({**settings, "init": init}))
    return dst


def test_allow_code_false(gbm, mojo_model, data, tmp_path):
    h2o_flavor.save_model(gbm, tmp_path / "plain", settings={"init": {"nthreads": 1}})
    spark_models.pyfunc.load_model(tmp_path / "plain", allow_code=False).predict(data[0])
    risky = {"extra_classpath": ["model.h2o/evil.jar"], "jvm_custom_args": ["-javaagent:evil.jar"]}
    hostile = _with_init(tmp_path / "plain", tmp_path / "hostile", risky)
    with pytest.raises(UnsafeModelError, match="extra_classpath, jvm_custom_args"):
        spark_models.pyfunc.load_model(hostile, allow_code=False)
    hostile_mojo = _with_init(mojo_model, tmp_path / "hostile_mojo", risky)
    spark_models.pyfunc.load_model(hostile_mojo, allow_code=False).predict(probe_rows())  # init is never used
    with pytest.raises(UnsafeModelError, match="extra_classpath"):
        spark_models.pyfunc.load_model(hostile_mojo, allow_code=False, model_config={"runtime": "cluster"})


# --- Spark ----------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.spark
def test_check_flavor_with_spark_through_the_mojo(mojos, spark, tmp_path):
    zip_path, imported = mojos["regression"]
    X = probe_rows().dropna().reset_index(drop=True)
    check_flavor(h2o_flavor.FLAVOR, imported, X, tmp_path, native_predict=cluster_predict, spark=spark,
                 save=lambda m, p, **kw: h2o_flavor.save_model(m, p, mojo_path=zip_path, **kw))


@pytest.mark.slow
@pytest.mark.spark
def test_spark_udf_scores_the_mojo_in_the_workers(mojo_model, mojos, spark):
    from pyspark.sql.functions import col

    rng = np.random.default_rng(1)
    X = pd.DataFrame({"a": rng.normal(size=400), "b": rng.normal(size=400), "c": rng.choice(list("xyzw"), 400)})
    servers = h2o_servers()
    predict = spark_models.pyfunc.spark_udf(spark, str(mojo_model))
    df = spark.createDataFrame(X.assign(row=range(len(X)))).repartition(4)
    out = df.withColumn("p", predict()).select("row", col("p.predict"), col("p.yes")).toPandas().sort_values("row")
    expected = cluster_predict(mojos["binomial"][1], X)
    assert out["predict"].tolist() == expected["predict"].tolist()
    np.testing.assert_allclose(out["yes"].to_numpy(), expected["yes"].to_numpy(), rtol=1e-12)
    assert h2o_servers() == servers, "a Spark task started an H2O cluster"
    assert worker_jvms(), "no Spark worker scored through its own MOJO JVM"


@pytest.mark.slow
@pytest.mark.spark
def test_spark_refuses_to_start_a_cluster_in_tasks(gbm, mojo_model, spark, tmp_path):
    h2o_flavor.save_model(gbm, tmp_path / "no_mojo")
    with pytest.raises(NotSupportedError, match="no MOJO"):
        spark_models.pyfunc.spark_udf(spark, str(tmp_path / "no_mojo"))
    model_dir = str(mojo_model)

    def load_in_task(batches):
        for batch in batches:
            try:
                spark_models.pyfunc.load_model(model_dir, model_config={"runtime": "cluster"})
                message = "loaded"
            except NotSupportedError as e:
                message = str(e)
            yield pd.DataFrame({"message": [message] * len(batch)})

    messages = spark.range(2, numPartitions=1).mapInPandas(load_in_task, "message string").collect()
    assert all("inside a Spark task" in row.message for row in messages)
