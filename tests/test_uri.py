"""Model URIs: local paths, file://, fsspec URLs (cached), MLflow runs:/."""

import fsspec
import numpy as np
import pytest
from sklearn.linear_model import LinearRegression

import spark_models.pyfunc
import spark_models.sklearn
from spark_models.exceptions import InvalidModelUriError, MissingDependencyError, ModelNotFoundError
from spark_models.uri import resolve_model_uri


@pytest.fixture
def sk_model(tmp_path):
    model = LinearRegression().fit([[0.0], [1.0]], [1.0, 3.0])
    spark_models.sklearn.save_model(model, tmp_path / "sk")
    return tmp_path / "sk"


def test_local_and_file_uri(sk_model):
    assert resolve_model_uri(str(sk_model)) == sk_model.resolve()
    assert resolve_model_uri(sk_model.as_uri()) == sk_model.resolve()
    assert spark_models.pyfunc.load_model(sk_model.as_uri()).predict([[1.0]])[0] == pytest.approx(3.0)


def _upload(fs, local, remote):
    for f in local.rglob("*"):
        if f.is_file():
            fs.pipe(f"{remote}/{f.relative_to(local).as_posix()}", f.read_bytes())


def test_fsspec_url_downloaded_once_into_cache(sk_model, tmp_path, monkeypatch):
    monkeypatch.setenv("SPARK_MODELS_CACHE_DIR", str(tmp_path / "cache"))
    fs = fsspec.filesystem("memory")
    _upload(fs, sk_model, "/models/sk")
    first = resolve_model_uri("memory://models/sk")
    assert first.is_relative_to(tmp_path / "cache") and (first / "model.pkl").is_file()
    marker = first / "model.pkl"
    mtime = marker.stat().st_mtime_ns
    assert resolve_model_uri("memory://models/sk") == first and marker.stat().st_mtime_ns == mtime
    assert spark_models.pyfunc.load_model("memory://models/sk").predict(np.array([[1.0]]))[0] == pytest.approx(3.0)
    # A changed remote model (different MLmodel) is fetched again, into a new cache entry.
    fs.pipe("/models/sk/MLmodel", fs.cat_file("/models/sk/MLmodel") + b"\nrun_id: changed\n")
    assert resolve_model_uri("memory://models/sk") != first


def test_fsspec_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("SPARK_MODELS_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(ModelNotFoundError, match="memory://nowhere"):
        resolve_model_uri("memory://nowhere/model")
    fsspec.filesystem("memory").pipe("/afile", b"x")
    with pytest.raises(InvalidModelUriError, match="is a file"):
        resolve_model_uri("memory://afile")
    with pytest.raises((MissingDependencyError, InvalidModelUriError), match="nosuchproto"):
        resolve_model_uri("nosuchproto://bucket/model")


def test_dst_path(sk_model, tmp_path):
    fs = fsspec.filesystem("memory")
    _upload(fs, sk_model, "/models/dst")
    out = resolve_model_uri("memory://models/dst", dst_path=tmp_path / "here")
    assert out == tmp_path / "here" and (out / "MLmodel").is_file()


@pytest.mark.slow
def test_runs_uri_through_mlflow(sk_model, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    mlflow = pytest.importorskip("mlflow")
    mlflow.set_tracking_uri((tmp_path / "mlruns").as_uri())
    with mlflow.start_run() as run:
        mlflow.log_artifacts(str(sk_model), artifact_path="model")
    loaded = spark_models.pyfunc.load_model(f"runs:/{run.info.run_id}/model")
    assert loaded.predict([[1.0]])[0] == pytest.approx(3.0)
