"""runs:/ and models:/ URIs against a real ``mlflow server``: with MLflow's client, and through the
REST API where mlflow cannot be imported; caching, moved aliases, auth headers, server errors."""

from __future__ import annotations

import http.server
import json
import os
import threading

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression

import spark_models.pyfunc
import spark_models.sklearn
from spark_models.exceptions import (
    InvalidModelUriError,
    MissingDependencyError,
    ModelNotFoundError,
    TrackingAuthError,
    TrackingServerError,
)
from spark_models.tracking.resolve import ModelSource, resolve_model_source
from spark_models.tracking.uris import parse_registry_uri
from tests.helpers.mlflow_server import free_port
from tests.isolation import run_json, run_python

mlflow = pytest.importorskip("mlflow")
NAME = "churn"
X = np.array([[0.0], [1.0], [2.5]])


@pytest.fixture(scope="module")
def registry(mlflow_server, tmp_path_factory):
    """Two versions of ``churn`` (y = 2x + 1, then y = 3x), alias champion → 1, and a run with plain artifacts."""
    import mlflow.sklearn
    from mlflow import MlflowClient

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", mlflow_server.url)
        mlflow.set_tracking_uri(mlflow_server.url)
        client = MlflowClient()
        experiment = client.create_experiment("registry-uris")  # no mlflow.set_experiment: it leaks global state
        infos, runs = [], []
        for y in ([1.0, 3.0], [0.0, 3.0]):
            with mlflow.start_run(experiment_id=experiment) as run:
                model = LinearRegression().fit([[0.0], [1.0]], y)
                infos.append(mlflow.sklearn.log_model(model, name="model", registered_model_name=NAME,
                                                      pip_requirements=["scikit-learn"]))
                runs.append(run.info.run_id)
        plain = tmp_path_factory.mktemp("plain") / "sk"
        spark_models.sklearn.save_model(LinearRegression().fit([[0.0], [1.0]], [5.0, 6.0]), plain)
        with mlflow.start_run(experiment_id=experiment) as run:
            mlflow.log_artifacts(str(plain), artifact_path="plain")
            plain_run = run.info.run_id
        client.set_registered_model_alias(NAME, "champion", "1")
        mlflow.set_tracking_uri(None)
    yield {"server": mlflow_server, "runs": runs, "plain_run": plain_run,
           "model_ids": [i.model_id for i in infos], "expected": [2 * X[:, 0] + 1, 3 * X[:, 0]]}


@pytest.fixture
def tracking(registry, monkeypatch, tmp_path):
    """MLFLOW_TRACKING_URI at the test server, a fresh private cache, fast retries."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", registry["server"].url)
    monkeypatch.setenv("SPARK_MODELS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("SPARK_MODELS_HTTP_BACKOFF", "0.01")
    mlflow.set_tracking_uri(registry["server"].url)
    yield registry
    mlflow.set_tracking_uri(None)


def _cases(reg):
    """(uri, expected ModelSource fields, index of the expected model)."""
    r, m = reg["runs"], reg["model_ids"]
    return [
        (f"runs:/{r[0]}/model", {"run_id": r[0], "model_id": m[0]}, 0),
        (f"models:/{NAME}/1", {"registered_name": NAME, "version": "1", "run_id": r[0], "model_id": m[0]}, 0),
        (f"models:/{NAME}@champion", {"registered_name": NAME, "version": "1", "alias": "champion", "run_id": r[0]}, 0),
        (f"models:/{NAME}/latest", {"registered_name": NAME, "version": "2", "run_id": r[1], "model_id": m[1]}, 1),
        (f"models:/{m[1]}", {"model_id": m[1], "run_id": r[1]}, 1),
    ]


def _check(source: dict, fields: dict, uri: str, server: str) -> None:
    assert source["uri"] == uri and source["tracking_uri"].rstrip("/") == server
    for key, value in fields.items():
        assert source.get(key) == value, (uri, key, source)
    assert "alias" in source if "alias" in fields else "alias" not in source


@pytest.mark.slow
@pytest.mark.parametrize("client", ["mlflow", "rest"])
def test_resolve_in_process(tracking, client, monkeypatch, caplog):
    monkeypatch.setenv("SPARK_MODELS_TRACKING_CLIENT", client)
    caplog.set_level("INFO", logger="spark_models.tracking.resolve")
    for uri, fields, index in _cases(tracking):
        source = resolve_model_source(uri)
        assert isinstance(source, ModelSource) and (source.local_dir / "MLmodel").is_file()
        assert source.local_dir.is_relative_to(os.environ["SPARK_MODELS_CACHE_DIR"])
        _check(source.as_dict(), fields, uri, tracking["server"].url)
        assert "local_dir" not in source.as_dict() and source.artifact_uri
        predictions = spark_models.pyfunc.load_model(source.local_dir).predict(X)
        np.testing.assert_allclose(np.asarray(predictions).ravel(), tracking["expected"][index], atol=1e-9)
    assert f"models:/{NAME}@champion" in caplog.text and "version 1" in caplog.text


@pytest.mark.slow
def test_resolve_where_mlflow_cannot_be_imported(tracking, tmp_path):
    cases = _cases(tracking)
    out = run_json(f"""
        import json, sys, numpy as np
        from spark_models.tracking.resolve import resolve_model_source
        import spark_models.pyfunc
        results = []
        for uri in {[c[0] for c in cases]!r}:
            source = resolve_model_source(uri)
            pred = spark_models.pyfunc.load_model(source.local_dir).predict(np.array({X.tolist()!r}))
            results.append([source.as_dict(), np.asarray(pred).ravel().tolist()])
        results.append("mlflow" in sys.modules or "requests" not in sys.modules)
        print(json.dumps(results))
    """, blocked=("mlflow",))
    assert out.pop() is False  # mlflow never imported, requests was used
    for (uri, fields, index), (source, pred) in zip(cases, out):
        _check(source, fields, uri, tracking["server"].url)
        np.testing.assert_allclose(pred, tracking["expected"][index], atol=1e-9)


@pytest.mark.slow
def test_plain_run_artifacts_and_pyfunc_load_model(tracking, monkeypatch):
    uri = f"runs:/{tracking['plain_run']}/plain"
    for client in ("mlflow", "rest"):
        monkeypatch.setenv("SPARK_MODELS_TRACKING_CLIENT", client)
        source = resolve_model_source(uri)
        assert source.run_id == tracking["plain_run"] and source.model_id is None
        assert source.artifact_uri.endswith(f"{tracking['plain_run']}/artifacts/plain")
        np.testing.assert_allclose(spark_models.pyfunc.load_model(uri).predict(X), X[:, 0] + 5, atol=1e-9)
    loaded = spark_models.pyfunc.load_model(f"models:/{NAME}@champion")  # through spark_models.uri
    np.testing.assert_allclose(loaded.predict(X), tracking["expected"][0], atol=1e-9)


def _artifact_downloads(log_path, model_id: str, filename: str) -> int:
    """How many times the server sent ``filename`` of the logged model (its access log)."""
    return sum(1 for line in log_path.read_text().splitlines()
               if "GET /api/2.0/mlflow-artifacts/artifacts/" in line and model_id in line and filename in line)


@pytest.mark.slow
@pytest.mark.parametrize("client", ["rest", "mlflow"])
def test_moved_alias_is_picked_up_and_a_version_is_downloaded_once(tracking, client, monkeypatch):
    from mlflow import MlflowClient

    monkeypatch.setenv("SPARK_MODELS_TRACKING_CLIENT", client)
    log, (m1, m2) = tracking["server"].log, tracking["model_ids"]
    uri = f"models:/{NAME}@champion"
    filename = resolve_model_source(f"runs:/{tracking['runs'][0]}/model").local_dir  # learn the model file's name
    filename = next(p.name for p in filename.iterdir() if p.name.startswith("model."))
    before = _artifact_downloads(log, m1, filename)
    first = resolve_model_source(uri)
    pkl = first.local_dir / filename
    stamp, downloads = pkl.stat().st_mtime_ns, _artifact_downloads(log, m1, filename)
    assert first.version == "1" and downloads == before + 1  # the first resolve downloaded it
    again = resolve_model_source(uri)
    assert again.local_dir == first.local_dir and pkl.stat().st_mtime_ns == stamp
    assert _artifact_downloads(log, m1, filename) == downloads  # the second resolve downloaded no model file
    assert oct(first.local_dir.parent.stat().st_mode & 0o777) == oct(0o700)
    MlflowClient().set_registered_model_alias(NAME, "champion", "2")
    try:
        moved = resolve_model_source(uri)
        assert moved.version == "2" and moved.model_id == m2 and moved.local_dir != first.local_dir
        np.testing.assert_allclose(spark_models.pyfunc.load_model(moved.local_dir).predict(X), tracking["expected"][1], atol=1e-9)
        assert resolve_model_source(f"models:/{NAME}/1").local_dir == first.local_dir  # same version, same entry
    finally:
        MlflowClient().set_registered_model_alias(NAME, "champion", "1")


@pytest.mark.parametrize("client", ["mlflow", "rest"])
@pytest.mark.parametrize("uri", [f"models:/{NAME}/99", "models:/nosuch@champion", f"models:/{NAME}@nosuch",
                                 "models:/m-00000000000000000000000000000000", "runs:/0123456789abcdef/model",
                                 "models:/nosuch/latest"])
def test_missing_models_on_the_real_server(tracking, monkeypatch, client, uri):
    monkeypatch.setenv("SPARK_MODELS_TRACKING_CLIENT", client)
    with pytest.raises(ModelNotFoundError) as e:
        resolve_model_source(uri)
    assert uri in str(e.value) and tracking["server"].url in str(e.value)


def test_fetch_model_cache_is_keyed_by_identity_and_content(tmp_path, monkeypatch):
    import fsspec

    from spark_models.tracking.artifacts import FsspecReader, fetch_model

    monkeypatch.setenv("SPARK_MODELS_CACHE_DIR", str(tmp_path / "cache"))
    local = tmp_path / "sk"
    spark_models.sklearn.save_model(LinearRegression().fit([[0.0], [1.0]], [1.0, 3.0]), local)
    fs = fsspec.filesystem("memory")
    for f in local.rglob("*"):
        if f.is_file():
            fs.pipe(f"/reg/sk/{f.relative_to(local).as_posix()}", f.read_bytes())
    first = fetch_model(FsspecReader("memory://reg/sk"), "models:churn/1")
    assert fetch_model(FsspecReader("memory://reg/sk"), "models:churn/1") == first
    assert fetch_model(FsspecReader("memory://reg/sk"), "models:churn/2") != first  # another version
    fs.pipe("/reg/sk/MLmodel", fs.cat_file("/reg/sk/MLmodel") + b"\nmodel_id: m-changed\n")
    changed = fetch_model(FsspecReader("memory://reg/sk"), "models:churn/1")
    assert changed != first and b"m-changed" in (changed / "MLmodel").read_bytes()
    assert oct(first.parent.stat().st_mode & 0o777) == oct(0o700) and not list(first.parent.glob(".download-*"))
    with pytest.raises(ModelNotFoundError, match="memory://reg/none.*models:churn/3"):
        fetch_model(FsspecReader("memory://reg/none"), "models:churn/3")


def test_dst_path(tracking, tmp_path, monkeypatch):
    monkeypatch.setenv("SPARK_MODELS_TRACKING_CLIENT", "rest")
    source = resolve_model_source(f"models:/{NAME}/2", dst_path=tmp_path / "here")
    assert source.local_dir == (tmp_path / "here").resolve() and (source.local_dir / "MLmodel").is_file()


# -- a tiny HTTP server (not MLflow) for auth headers and error statuses -------------------------

class _Handler(http.server.BaseHTTPRequestHandler):
    expected_auth = "Bearer secret"
    seen: list = []

    def log_message(self, *args):
        pass

    def _send(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        type(self).seen.append((self.path, self.headers.get("Authorization")))
        if self.headers.get("Authorization") != type(self).expected_auth:
            return self._send(401, {"error_code": "UNAUTHENTICATED", "message": "bad credentials"})
        if self.path.startswith("/api/2.0/mlflow/registered-models/alias"):
            return self._send(500, {"error_code": "INTERNAL_ERROR", "message": "database is locked"})
        return self._send(404, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "no such model version"})


@pytest.fixture
def fake_server(monkeypatch, tmp_path):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Handler.seen = []
    url = f"http://127.0.0.1:{server.server_address[1]}"
    for name in ("MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    monkeypatch.setenv("SPARK_MODELS_TRACKING_CLIENT", "rest")
    monkeypatch.setenv("SPARK_MODELS_HTTP_BACKOFF", "0.01")
    monkeypatch.setenv("SPARK_MODELS_CACHE_DIR", str(tmp_path / "cache"))
    yield url
    server.shutdown()
    server.server_close()


def test_token_auth_is_sent_and_404_names_uri_and_server(fake_server, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "secret")
    with pytest.raises(ModelNotFoundError, match=rf"models:/churn/7.*{fake_server}") as e:
        resolve_model_source("models:/churn/7")
    assert "no such model version" in str(e.value)
    assert _Handler.seen == [("/api/2.0/mlflow/model-versions/get?name=churn&version=7", "Bearer secret")]


def test_basic_auth_is_sent(fake_server, monkeypatch):
    monkeypatch.setattr(_Handler, "expected_auth", "Basic dXNlcjpwJHNz")  # user:p$ss
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "user")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "p$ss")
    with pytest.raises(ModelNotFoundError):
        resolve_model_source("models:/m-0123abcd")
    assert _Handler.seen == [("/api/2.0/mlflow/logged-models/m-0123abcd", "Basic dXNlcjpwJHNz")]


@pytest.mark.parametrize("token", [None, "wrong"])
def test_401_is_an_auth_error(fake_server, monkeypatch, token):
    if token:
        monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", token)
    with pytest.raises(TrackingAuthError, match=rf"HTTP 401.*runs:/abc/model.*{fake_server}.*MLFLOW_TRACKING_TOKEN"):
        resolve_model_source("runs:/abc/model")
    assert len(_Handler.seen) == 1  # not retried


@pytest.fixture
def mlflow_at(monkeypatch):
    """Point MLflow's client at a URL (its global state restored afterwards), with no retries."""
    monkeypatch.setenv("SPARK_MODELS_TRACKING_CLIENT", "mlflow")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    yield mlflow.set_tracking_uri
    mlflow.set_tracking_uri(None)


def test_errors_through_mlflows_client(fake_server, mlflow_at, monkeypatch):
    mlflow_at(fake_server)
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "wrong")
    with pytest.raises(TrackingAuthError, match=rf"runs:/abc/model.*{fake_server}"):
        resolve_model_source("runs:/abc/model")
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "secret")
    with pytest.raises(ModelNotFoundError, match=rf"models:/churn/7.*{fake_server}"):
        resolve_model_source("models:/churn/7")
    with pytest.raises(TrackingServerError, match=rf"models:/churn@champion.*{fake_server}"):
        resolve_model_source("models:/churn@champion")
    assert {auth for _, auth in _Handler.seen} == {"Bearer wrong", "Bearer secret"}
    down = f"http://127.0.0.1:{free_port()}"
    mlflow_at(down)
    with pytest.raises(TrackingServerError, match=rf"models:/churn/1.*{down}"):
        resolve_model_source("models:/churn/1")


def test_500_is_retried_then_a_server_error(fake_server, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "secret")
    monkeypatch.setenv("SPARK_MODELS_HTTP_RETRIES", "2")
    with pytest.raises(TrackingServerError, match=rf"HTTP 500.*models:/churn@champion.*{fake_server}.*database is locked"):
        resolve_model_source("models:/churn@champion")
    assert len(_Handler.seen) == 3  # the first try and two retries


def test_server_down_names_uri_and_server(monkeypatch, tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    monkeypatch.setenv("SPARK_MODELS_TRACKING_CLIENT", "rest")
    monkeypatch.setenv("SPARK_MODELS_HTTP_RETRIES", "1")
    monkeypatch.setenv("SPARK_MODELS_HTTP_BACKOFF", "0.01")
    with pytest.raises(TrackingServerError, match=rf"{url} is unreachable.*models:/churn/latest.*tried 2 times"):
        resolve_model_source("models:/churn/latest")


def test_server_down_without_mlflow_in_a_subprocess():
    url = f"http://127.0.0.1:{free_port()}"
    proc = run_python(f"""
        import os
        os.environ.update(MLFLOW_TRACKING_URI={url!r}, SPARK_MODELS_HTTP_RETRIES="0")
        from spark_models.exceptions import TrackingServerError
        import spark_models.pyfunc
        try:
            spark_models.pyfunc.load_model("models:/churn@champion")
        except TrackingServerError as e:
            print("CAUGHT", e)
    """, blocked=("mlflow",))
    assert proc.returncode == 0, proc.stderr
    assert "CAUGHT" in proc.stdout and url in proc.stdout and "models:/churn@champion" in proc.stdout


def test_without_mlflow_or_tracking_uri(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("SPARK_MODELS_TRACKING_CLIENT", "rest")
    with pytest.raises(MissingDependencyError, match="models:/churn/1.*MLFLOW_TRACKING_URI"):
        resolve_model_source("models:/churn/1")


def test_provenance_never_carries_credentials(tracking, monkeypatch):
    url = tracking["server"].url.replace("http://", "http://user:s3cret@")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    monkeypatch.setenv("SPARK_MODELS_TRACKING_CLIENT", "rest")
    source = resolve_model_source(f"models:/{NAME}/1")
    assert source.tracking_uri == tracking["server"].url and "s3cret" not in json.dumps(source.as_dict())


def test_non_http_tracking_uri_without_mlflow(monkeypatch, tmp_path):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    monkeypatch.setenv("SPARK_MODELS_TRACKING_CLIENT", "rest")
    with pytest.raises(MissingDependencyError, match=r"models:/churn/1.*needs MLflow.*sqlite:///.*not an http"):
        resolve_model_source("models:/churn/1")


# -- parsing --------------------------------------------------------------------------------------

@pytest.mark.parametrize("uri, expected", [
    ("runs:/abc123/model", {"kind": "run", "run_id": "abc123", "path": "model"}),
    ("runs:/abc123/a/b/", {"kind": "run", "path": "a/b"}),
    ("models:/churn/3", {"kind": "version", "name": "churn", "version": "3"}),
    ("models:/churn/LATEST", {"kind": "latest", "name": "churn", "latest": True}),
    ("models:/my model@champion", {"kind": "alias", "name": "my model", "alias": "champion"}),
    ("models:/m-0123abc", {"kind": "logged_model", "model_id": "m-0123abc"}),
])
def test_parse(uri, expected):
    parsed = parse_registry_uri(uri)
    for key, value in expected.items():
        assert getattr(parsed, key) == value, key


@pytest.mark.parametrize("uri", [
    "models:/", "models:/churn/", "models:/churn/Production", "models:/churn/1/extra", "models:/churn@",
    "models:/@champion", "models:/churn@champion/1", "runs:/", "runs:/abc/../secrets", "runs:/a b/model",
    "models://profile@databricks/churn/1", "models:/churn/1?x=1", "s3://bucket/model",
])
def test_bad_uris_name_the_uri(uri):
    with pytest.raises(InvalidModelUriError) as e:
        parse_registry_uri(uri)
    assert repr(uri) in str(e.value)


def test_local_paths_give_a_bare_source(tmp_path):
    path = tmp_path / "sk"
    spark_models.sklearn.save_model(LinearRegression().fit([[0.0], [1.0]], [1.0, 3.0]), path)
    source = resolve_model_source(path)
    assert source.local_dir == path.resolve() and source.as_dict() == {"uri": str(path)}
