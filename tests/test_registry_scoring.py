"""Scoring registered models: ``spark_udf`` / ``spark.load_model`` / the CLI on ``models:/`` URIs
from a real ``mlflow server`` (fixture ``mlflow_server``), the provenance they record, and
executors that never talk to the tracking server (``local-cluster``)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

pytest.importorskip("mlflow.server", reason="the full mlflow package runs the tracking server")

import spark_models.sklearn  # noqa: E402
from spark_models.cli import cli  # noqa: E402
from spark_models.commands.provenance import METADATA_KEY  # noqa: E402
from spark_models.models import infer_signature  # noqa: E402
from tests.isolation import run_json  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def tracking(mlflow_server, monkeypatch):
    """MLflow (and our resolver) pointed at the test server for one test, restored afterwards."""
    import mlflow

    previous = mlflow.get_tracking_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.url)
    mlflow.set_tracking_uri(mlflow_server.url)
    yield mlflow_server
    mlflow.set_tracking_uri(previous)


def register(server, local_dir, name: str, alias: str | None = "champion") -> tuple[str, str]:
    """Log ``local_dir`` as a run's artifacts (proxied through the server), register it as a new
    version of ``name`` and point ``alias`` at it; returns (version, run_id)."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(tracking_uri=server.url, registry_uri=server.url)
    run = client.create_run("0")
    client.log_artifacts(run.info.run_id, str(local_dir), "model")
    client.set_terminated(run.info.run_id)
    try:
        client.create_registered_model(name)
    except MlflowException:
        pass  # a later version of the same model
    version = client.create_model_version(name, f"{run.info.artifact_uri}/model", run_id=run.info.run_id).version
    if alias:
        client.set_registered_model_alias(name, alias, version)
    return str(version), run.info.run_id


def _linear(tmp_path, slope: float, tag: str):
    from sklearn.linear_model import LinearRegression

    X = pd.DataFrame({"a": np.arange(20, dtype=float), "b": np.arange(20, dtype=float) % 3})
    model = LinearRegression().fit(X, slope * X.a + X.b)
    path = tmp_path / tag
    spark_models.sklearn.save_model(model, path, signature=infer_signature(X, model.predict(X)))
    return X, path


def assert_provenance(info: dict, **expected: str) -> None:
    """``info`` has exactly these fields, plus where the artifacts came from (and a logged-model id
    when the registry links one), all strings."""
    assert {k: info.get(k) for k in expected} == expected
    assert set(info) - set(expected) <= {"artifact_uri", "model_id"}, info
    assert "model" in info.get("artifact_uri", "model") and all(isinstance(v, str) for v in info.values())


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.mark.spark
def test_spark_udf_scores_the_alias_and_picks_up_a_move(spark, tracking, tmp_path):
    from spark_models.pyfunc import spark_udf

    name = _name("churn")
    X, v1_dir = _linear(tmp_path, 1.0, "v1")
    _, v2_dir = _linear(tmp_path, 10.0, "v2")
    v1, run1 = register(tracking, v1_dir, name)
    df = spark.createDataFrame(X)

    u = spark_udf(spark, f"models:/{name}@champion")
    assert_provenance(u.model_info, uri=f"models:/{name}@champion", tracking_uri=tracking.url, registered_name=name,
                      version=v1, alias="champion", run_id=run1)
    first = [r.p for r in df.withColumn("p", u()).orderBy("a").collect()]
    np.testing.assert_allclose(first, X.a + X.b, atol=1e-6)

    v2, run2 = register(tracking, v2_dir, name)  # the alias moves: the next job scores version 2
    u2 = spark_udf(spark, f"models:/{name}@champion")
    assert (u2.model_info["version"], u2.model_info["run_id"]) == (v2, run2) and v2 != v1
    second = [r.p for r in df.withColumn("p", u2()).orderBy("a").collect()]
    np.testing.assert_allclose(second, 10 * X.a + X.b, atol=1e-5)
    # the UDF built before the move keeps scoring the version it resolved
    np.testing.assert_allclose([r.p for r in df.withColumn("p", u()).orderBy("a").collect()], first)
    pinned = spark_udf(spark, f"models:/{name}/{v1}")
    assert pinned.model_info["version"] == v1 and "alias" not in pinned.model_info


@pytest.mark.spark
def test_spark_udf_model_info_of_a_path(spark, tmp_path):
    from spark_models.pyfunc import spark_udf

    _, path = _linear(tmp_path, 1.0, "local")
    assert spark_udf(spark, str(path)).model_info == {"uri": str(path)}


@pytest.mark.spark
def test_spark_load_model_from_registry(spark, tracking, tmp_path):
    from pyspark.ml import Pipeline
    from pyspark.ml.feature import VectorAssembler
    from pyspark.ml.regression import LinearRegression

    import spark_models.spark

    train = spark.range(0, 50).selectExpr("cast(id as double) as x", "cast(2 * id + 1 as double) as label")
    fitted = Pipeline(stages=[VectorAssembler(inputCols=["x"], outputCol="features"),
                              LinearRegression(maxIter=5)]).fit(train)
    spark_models.spark.save_model(fitted, tmp_path / "pipe", mleap=False)
    name = _name("pipe")
    version, _ = register(tracking, tmp_path / "pipe", name)
    for uri in (f"models:/{name}@champion", f"models:/{name}/{version}", f"models:/{name}/latest"):
        loaded = spark_models.spark.load_model(uri)
        got = [r.prediction for r in loaded.transform(train).orderBy("x").collect()]
        want = [r.prediction for r in fitted.transform(train).orderBy("x").collect()]
        np.testing.assert_allclose(got, want, err_msg=uri)


def _cli(*args):
    return CliRunner().invoke(cli, list(args))


@pytest.fixture
def champion(tracking, tmp_path):
    name = _name("cli")
    X, path = _linear(tmp_path, 3.0, "cli-model")
    version, run_id = register(tracking, path, name)
    X.to_csv(tmp_path / "in.csv", index=False)
    return name, version, run_id, X, tmp_path, tracking.url


@pytest.mark.spark
def test_cli_predict_provenance_in_parquet_metadata(spark, champion):
    name, version, run_id, X, tmp, url = champion
    out = _cli("predict", "-m", f"models:/{name}@champion", "-i", str(tmp / "in.csv"), "-o", str(tmp / "out"),
               "--format", "parquet", "--provenance")
    assert out.exit_code == 0, out.output
    parts = sorted((tmp / "out").glob("part-*.parquet"))
    assert parts
    for part in parts:
        raw = pq.read_schema(part).metadata[METADATA_KEY.encode()]
        provenance = json.loads(raw)
        assert_provenance(provenance, uri=f"models:/{name}@champion", tracking_uri=url, registered_name=name,
                          version=version, alias="champion", run_id=run_id)
    got = spark.read.parquet(str(tmp / "out")).orderBy("a").toPandas()  # Spark still reads the tagged parts
    np.testing.assert_allclose(got["prediction"], 3 * X.a + X.b, atol=1e-6)
    assert list(got.columns) == ["a", "b", "prediction"]


def test_cli_predict_local_provenance_and_columns(champion):
    name, version, run_id, X, tmp, url = champion
    target = tmp / "local.parquet"
    out = _cli("predict", "-m", f"models:/{name}/{version}", "-i", str(tmp / "in.csv"), "-o", str(target),
               "--format", "parquet", "--local", "--provenance", "--provenance-columns")
    assert out.exit_code == 0, out.output
    provenance = json.loads(pq.read_schema(target).metadata[METADATA_KEY.encode()])
    assert (provenance["registered_name"], provenance["version"], provenance["run_id"]) == (name, version, run_id)
    assert "alias" not in provenance
    got = pd.read_parquet(target)
    assert list(got.columns) == ["a", "b", "prediction", "_model_uri", "_model_version", "_model_run_id", "_model_name"]
    assert set(got["_model_version"]) == {version} and set(got["_model_run_id"]) == {run_id}
    assert set(got["_model_name"]) == {name} and set(got["_model_uri"]) == {f"models:/{name}/{version}"}
    assert len(got) == len(X)


def test_cli_provenance_needs_parquet_csv_gets_columns(champion):
    name, version, run_id, X, tmp, url = champion
    refused = _cli("predict", "-m", f"models:/{name}@champion", "-i", str(tmp / "in.csv"), "-o", str(tmp / "o.csv"),
                   "--local", "--provenance")
    assert refused.exit_code == 1 and "--provenance-columns" in refused.output and "CSV" in refused.output
    assert not (tmp / "o.csv").exists()
    ok = _cli("predict", "-m", f"models:/{name}@champion", "-i", str(tmp / "in.csv"), "-o", str(tmp / "o.csv"),
              "--local", "--provenance-columns")
    assert ok.exit_code == 0, ok.output
    got = pd.read_csv(tmp / "o.csv", dtype={"_model_version": str})
    assert set(got["_model_version"]) == {version} and set(got["_model_name"]) == {name}


def test_cli_provenance_columns_must_not_clash(tracking, tmp_path):
    _, path = _linear(tmp_path, 1.0, "clash")
    pd.DataFrame({"a": [1.0], "b": [2.0], "_model_version": ["mine"]}).to_csv(tmp_path / "in.csv", index=False)
    out = _cli("predict", "-m", str(path), "-i", str(tmp_path / "in.csv"), "-o", str(tmp_path / "o.csv"),
               "--local", "--provenance-columns")
    assert out.exit_code == 1 and "_model_version" in out.output


def test_cli_info_shows_the_resolved_version(champion):
    name, version, run_id, _, _, _ = champion
    out = _cli("info", "-m", f"models:/{name}@champion")
    assert out.exit_code == 0, out.output
    assert f"Registered model: {name} version {version} (alias champion)" in out.output
    assert f"Run: {run_id}" in out.output
    data = json.loads(_cli("info", "-m", f"models:/{name}@champion", "--json").stdout)
    assert data["provenance"]["version"] == version and set(data["flavors"]) == {"python_function", "sklearn"}


LIGHT = ("spark_models.tracking", "spark_models.tracking.log")  # the package and log_model's definition

CLUSTER_SCRIPT = r'''
import json, os, shutil, sys, tempfile
for key in [k for k in os.environ if k.startswith("MLFLOW_")]:
    del os.environ[key]  # the Spark JVM, and so every executor, starts without tracking settings
os.environ["PYSPARK_PYTHON"] = sys.executable
os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"
os.environ["SPARK_MODELS_CACHE_DIR"] = tempfile.mkdtemp()
sys.path.insert(0, {root!r})
from tests.helpers.mlflow_server import free_port
from tests.helpers.sessions import spark_builder
import spark_models.pyfunc

class Probe(spark_models.pyfunc.PythonModel):
    """x + 1, and what the executor's Python worker saw: tracking settings and imported modules."""
    def predict(self, context, model_input):
        seen = {{"uri": os.environ.get("MLFLOW_TRACKING_URI"),
                "credentials": sorted(k for k in os.environ if k in ("MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_USERNAME",
                                                                     "MLFLOW_TRACKING_PASSWORD")),
                "modules": sorted(m for m in sys.modules if m.split(".")[0] in ("mlflow", "requests", "urllib3")
                                  or m.startswith("spark_models.tracking"))}}
        return [json.dumps({{"p": x + 1, **seen}}) for x in model_input["x"]]

dead = f"http://127.0.0.1:{{free_port()}}"  # nothing listens here
spark = (spark_builder("local-cluster[2,1,1024]").config("spark.executor.memory", "512m")
         .config("spark.executorEnv.MLFLOW_TRACKING_URI", dead).getOrCreate())

# the driver alone gets the server and a credential, after the executors' environment is fixed
os.environ["MLFLOW_TRACKING_URI"] = {url!r}
os.environ["MLFLOW_TRACKING_TOKEN"] = "driver-only-secret"
from mlflow import MlflowClient
path = tempfile.mkdtemp() + "/probe"
spark_models.pyfunc.save_model(path, python_model=Probe())
client = MlflowClient()
run = client.create_run("0")
client.log_artifacts(run.info.run_id, path, "model")
client.create_registered_model({name!r})
version = client.create_model_version({name!r}, run.info.artifact_uri + "/model", run_id=run.info.run_id).version
client.set_registered_model_alias({name!r}, "champion", version)
shutil.rmtree(path)

u = spark_models.pyfunc.spark_udf(spark, "models:/{name}@champion", result_type="string")
shutil.rmtree(os.environ["SPARK_MODELS_CACHE_DIR"])  # executors can only use the shipped archive now
df = spark.range(0, 400, numPartitions=4).selectExpr("cast(id as double) as x")
rows = [json.loads(r.p) | {{"x": r.x}} for r in df.withColumn("p", u("x")).collect()]
pids = df.rdd.mapPartitions(lambda _: [os.getpid()]).distinct().count()
seen = sorted({{json.dumps({{k: r[k] for k in ("uri", "credentials", "modules")}}) for r in rows}})
print(json.dumps({{"n": len(rows), "ok": all(r["p"] == r["x"] + 1 for r in rows), "seen": [json.loads(s) for s in seen],
                  "dead": dead, "info": u.model_info, "version": str(version), "run_id": run.info.run_id,
                  "executor_pids": pids}}))
spark.stop()
'''


@pytest.mark.spark
@pytest.mark.slow
def test_local_cluster_executors_never_talk_to_the_tracking_server(mlflow_server):
    name = _name("probe")
    out = run_json(CLUSTER_SCRIPT.format(root=str(ROOT), url=mlflow_server.url, name=name))
    assert out["n"] == 400 and out["ok"] and out["executor_pids"] >= 2
    # every worker: the dead tracking URI it was given, no credentials, no tracking client loaded
    # (spark_models.tracking.log, which the flavor shims re-export as log_model, does no I/O)
    assert [{**s, "modules": [m for m in s["modules"] if m not in LIGHT]} for s in out["seen"]] == [
        {"uri": out["dead"], "credentials": [], "modules": []}]
    assert_provenance(out["info"], uri=f"models:/{name}@champion", tracking_uri=mlflow_server.url,
                      registered_name=name, version=out["version"], alias="champion", run_id=out["run_id"])


@pytest.mark.slow
def test_cli_serve_resolves_the_alias_once_at_start(champion):
    from tests.test_serve_process import start_server, stop_server

    name, version, run_id, X, tmp, url = champion
    proc, client = start_server(f"models:/{name}@champion", "--workers", "2")
    try:
        client.wait_until_ready(timeout=120)
        got = client.predict(X.head(5))
    finally:
        log = stop_server(proc)
    predictions = got["predictions"] if isinstance(got, dict) else got
    np.testing.assert_allclose(np.asarray(predictions, dtype=float).ravel(), 3 * X.a.head(5) + X.b.head(5), atol=1e-6)
    assert f"version={version}" in log and f"run_id={run_id}" in log, log[-2000:]


def test_cli_info_and_local_predict_without_mlflow(champion):
    """The scoring image without MLflow: the CLI resolves models:/ through the REST API."""
    name, version, run_id, X, tmp, url = champion
    code = f"""
    import json, os, sys
    sys.path.insert(0, {str(ROOT)!r})
    os.environ["MLFLOW_TRACKING_URI"] = {url!r}
    os.environ["SPARK_MODELS_CACHE_DIR"] = {str(tmp / "rest-cache")!r}
    from click.testing import CliRunner
    from spark_models.cli import cli
    info = CliRunner().invoke(cli, ["info", "-m", "models:/{name}@champion", "--json"])
    scored = CliRunner().invoke(cli, ["predict", "-m", "models:/{name}@champion", "-i", {str(tmp / "in.csv")!r},
                                      "-o", {str(tmp / "rest.parquet")!r}, "--format", "parquet", "--local",
                                      "--provenance"])
    print(json.dumps({{"info": json.loads(info.stdout)["provenance"], "exit": scored.exit_code, "out": scored.output,
                      "mlflow": "mlflow" in sys.modules}}))
    """
    out = run_json(code, blocked=("mlflow",))
    assert out["exit"] == 0 and out["mlflow"] is False, out["out"]
    assert_provenance(out["info"], uri=f"models:/{name}@champion", tracking_uri=url, registered_name=name,
                      version=version, alias="champion", run_id=run_id)
    assert json.loads(pq.read_schema(tmp / "rest.parquet").metadata[METADATA_KEY.encode()]) == out["info"]
    np.testing.assert_allclose(pd.read_parquet(tmp / "rest.parquet")["prediction"], 3 * X.a + X.b, atol=1e-6)
