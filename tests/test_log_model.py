"""``log_model`` for every flavor (spark_models.tracking.log): logged with real MLflow to a real
tracking server (the ``mlflow_server`` fixture) and to a local SQLite store, then loaded back by
MLflow's own ``mlflow.pyfunc.load_model`` through ``models:/m-<id>``, ``runs:/<run>/<name>`` and
``models:/<name>/<version>``."""

from __future__ import annotations

import importlib
import json
import sys
import uuid

import numpy as np
import pandas as pd
import pytest

import spark_models.pyfunc
from spark_models.exceptions import InvalidArgumentError
from spark_models.flavors.contract import PYFUNC
from spark_models.flavors.registry import available_flavors
from spark_models.tracking.log import LoggedModelInfo
from tests.isolation import run_json, run_python

mlflow = pytest.importorskip("mlflow")

X = np.arange(24, dtype=np.float64).reshape(8, 3)
Y = X @ np.array([1.0, -2.0, 0.5]) + 3.0


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _use_tracking(monkeypatch, uri: str, artifact_location: str | None = None) -> str:
    """Point MLflow at ``uri`` with a fresh experiment; restored when the test ends."""
    previous = mlflow.get_tracking_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    experiment_id = mlflow.MlflowClient(uri).create_experiment(_unique("log-model"), artifact_location=artifact_location)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_ID", experiment_id)
    return previous


@pytest.fixture
def server_tracking(mlflow_server, monkeypatch):
    previous = _use_tracking(monkeypatch, mlflow_server.url)
    yield mlflow_server.url
    while mlflow.active_run():
        mlflow.end_run()
    mlflow.set_tracking_uri(previous)


@pytest.fixture
def sqlite_tracking(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    previous = _use_tracking(monkeypatch, uri, (tmp_path / "artifacts").as_uri())
    yield uri
    while mlflow.active_run():
        mlflow.end_run()
    mlflow.set_tracking_uri(previous)


@pytest.fixture(scope="module")
def sk_model():
    from sklearn.linear_model import LinearRegression

    return LinearRegression().fit(X, Y)


def _predictions(uri: str, data) -> np.ndarray:
    return np.asarray(mlflow.pyfunc.load_model(uri).predict(data), dtype=np.float64).ravel()


def _assert_loads_everywhere(info: LoggedModelInfo, registered: str | None, data, expected) -> None:
    """MLflow's own loader, through every URI form, predicts ``expected``."""
    uris = [info.model_uri, f"runs:/{info.run_id}/{info.artifact_path}"]
    if registered:
        uris.append(f"models:/{registered}/{info.registered_model_version}")
    for uri in uris:
        np.testing.assert_allclose(_predictions(uri, data), np.asarray(expected, dtype=np.float64).ravel(),
                                   rtol=1e-6, err_msg=uri)


def _mlmodel(uri: str) -> dict:
    return mlflow.models.Model.load(uri).to_dict()


def _assert_ids_like_mlflow(info: LoggedModelInfo) -> None:
    """The MLmodel carries run_id / artifact_path / model_id / model_uuid as MLflow writes them."""
    logged = mlflow.MlflowClient().get_logged_model(info.model_id)
    written = _mlmodel(info.model_uri)
    assert written["model_id"] == info.model_id == logged.model_id
    assert written["model_uuid"] == info.model_id
    assert written["run_id"] == info.run_id == logged.source_run_id
    assert written["artifact_path"] == logged.artifact_location == info.artifact_uri
    assert logged.name == info.artifact_path


# --- sklearn, against the server, beside mlflow.sklearn.log_model ---------------------------------


def test_sklearn_logged_and_registered_like_mlflow(server_tracking, sk_model):
    import spark_models.sklearn

    registered = _unique("sk")
    with mlflow.start_run() as run:
        info = spark_models.sklearn.log_model(sk_model, name="ours", registered_model_name=registered,
                                              input_example=X[:2], metadata={"team": "churn"})
        reference = mlflow.sklearn.log_model(sk_model, name="reference", input_example=X[:2])
        assert mlflow.active_run().info.run_id == run.info.run_id  # the active run is used, not ended

    assert isinstance(info, LoggedModelInfo)
    assert info.model_uri == f"models:/{info.model_id}" and info.model_id.startswith("m-")
    assert info.run_id == run.info.run_id and info.artifact_path == "ours"
    assert info.registered_model_version == 1
    assert info.flavors[PYFUNC]["loader_module"] == "spark_models.sklearn" and "sklearn" in info.flavors
    assert info.signature is not None and info.metadata == {"team": "churn"}
    assert info.runs_uri == f"runs:/{run.info.run_id}/ours"
    _assert_loads_everywhere(info, registered, X, sk_model.predict(X))

    _assert_ids_like_mlflow(info)
    ours, theirs = _mlmodel(info.model_uri), _mlmodel(reference.model_uri)
    ids = ("run_id", "artifact_path", "model_id", "model_uuid", "utc_time_created", "mlflow_version")
    assert {k for k in ids if k in ours} == {k for k in ids if k in theirs} == set(ids)
    assert ours["run_id"] == theirs["run_id"] == run.info.run_id
    assert ours["metadata"] == {"team": "churn"}
    outputs = {o.model_id for o in mlflow.get_run(run.info.run_id).outputs.model_outputs}
    assert {info.model_id, reference.model_id} <= outputs  # linked to the run as MLflow links its own


def test_second_log_under_the_same_name_is_version_2(server_tracking, sk_model):
    import spark_models.sklearn

    registered = _unique("sk-v")
    with mlflow.start_run():
        first = spark_models.sklearn.log_model(sk_model, name="m", registered_model_name=registered)
        second = spark_models.sklearn.log_model(sk_model, "m", registered_model_name=registered)
    assert (first.registered_model_version, second.registered_model_version) == (1, 2)
    assert first.model_id != second.model_id
    client = mlflow.MlflowClient()
    sources = {v: client.get_model_version(registered, str(v)).source for v in (1, 2)}
    assert sources == {1: f"models:/{first.model_id}", 2: f"models:/{second.model_id}"}


def test_without_a_run_it_does_what_mlflow_does(server_tracking, sk_model):
    import spark_models.sklearn

    assert mlflow.active_run() is None
    ours = spark_models.sklearn.log_model(sk_model, name="loose")
    assert mlflow.active_run() is None
    theirs = mlflow.sklearn.log_model(sk_model, name="loose-ref")
    assert mlflow.active_run() is None
    assert (ours.run_id is None) == (theirs.run_id is None)
    assert ours.model_uri.startswith("models:/m-")
    written, reference = _mlmodel(ours.model_uri), _mlmodel(theirs.model_uri)
    assert written.get("run_id") == reference.get("run_id")
    np.testing.assert_allclose(_predictions(ours.model_uri, X), sk_model.predict(X))


def test_run_id_argument_logs_to_that_run(server_tracking, sk_model):
    import spark_models.sklearn

    with mlflow.start_run() as run:
        pass
    info = spark_models.sklearn.log_model(sk_model, name="later", run_id=run.info.run_id)
    assert info.run_id == run.info.run_id and mlflow.active_run() is None
    np.testing.assert_allclose(_predictions(f"runs:/{run.info.run_id}/later", X), sk_model.predict(X))


# --- MLflow 2's artifact_path, on a local SQLite store ----------------------------------------------


def test_artifact_path_is_mlflow2s_name(sqlite_tracking, sk_model):
    import spark_models.sklearn

    registered = _unique("sk-sqlite")
    with mlflow.start_run() as run:
        info = spark_models.sklearn.log_model(sk_model, artifact_path="legacy", registered_model_name=registered)
    assert info.artifact_path == "legacy" and info.run_id == run.info.run_id
    assert info.model_uri == f"models:/{info.model_id}"
    _assert_loads_everywhere(info, registered, X, sk_model.predict(X))
    _assert_ids_like_mlflow(info)


def test_name_and_a_different_artifact_path_are_refused(sqlite_tracking, sk_model):
    import spark_models.sklearn

    with pytest.raises(InvalidArgumentError, match="not both"):
        spark_models.sklearn.log_model(sk_model, name="a", artifact_path="b")
    assert mlflow.search_logged_models(output_format="list") == []


def test_bad_save_argument_is_the_flavors_error_and_logs_no_artifacts(sqlite_tracking, sk_model):
    import spark_models.sklearn

    with pytest.raises(InvalidArgumentError):
        spark_models.sklearn.log_model(sk_model, name="bad", serialization_format="no-such-format")
    models = mlflow.search_logged_models(output_format="list")  # MLflow marks the one it began FAILED
    assert [(m.name, m.status) for m in models] == [("bad", mlflow.entities.LoggedModelStatus.FAILED)]


# --- xgboost and pytorch ----------------------------------------------------------------------------


@pytest.mark.slow
def test_xgboost_registered_on_sqlite(sqlite_tracking):
    xgb = pytest.importorskip("xgboost")
    import spark_models.xgboost

    model = xgb.XGBRegressor(n_estimators=5, max_depth=2, n_jobs=1).fit(X, Y)
    registered = _unique("xgb")
    with mlflow.start_run():
        info = spark_models.xgboost.log_model(model, name="booster", registered_model_name=registered,
                                              input_example=pd.DataFrame(X[:2], columns=["a", "b", "c"]))
    assert info.registered_model_version == 1 and info.flavors[PYFUNC]["loader_module"] == "spark_models.xgboost"
    frame = pd.DataFrame(X, columns=["a", "b", "c"])
    _assert_loads_everywhere(info, registered, frame, model.predict(X))
    _assert_ids_like_mlflow(info)


@pytest.mark.slow
def test_pytorch_mlp_on_the_server(server_tracking):
    torch = pytest.importorskip("torch")
    import spark_models.pytorch
    from tests.helpers.torch_models import make_mlp

    net = make_mlp().eval()
    data = np.random.default_rng(0).normal(size=(6, 3)).astype(np.float32)
    with torch.no_grad():
        expected = net(torch.from_numpy(data)).numpy()
    registered = _unique("torch")
    with mlflow.start_run():
        info = spark_models.pytorch.log_model(net, name="mlp", registered_model_name=registered, input_example=data[:2])
    assert info.flavors[PYFUNC]["loader_module"] == "spark_models.pytorch" and "pytorch" in info.flavors
    _assert_loads_everywhere(info, registered, data, expected)
    _assert_ids_like_mlflow(info)
    native = mlflow.pytorch.load_model(info.model_uri)
    with torch.no_grad():
        np.testing.assert_allclose(native(torch.from_numpy(data)).numpy(), expected, rtol=1e-6)


# --- pyfunc ------------------------------------------------------------------------------------------


class AddOffset(spark_models.pyfunc.PythonModel):
    """Adds the number stored in the ``offset`` artifact to every column."""

    def load_context(self, context):
        with open(context.artifacts["offset"]) as f:
            self.offset = float(f.read())

    def predict(self, context, model_input, params=None):
        return model_input + self.offset


def test_custom_python_model_with_artifacts(server_tracking, tmp_path):
    offset = tmp_path / "offset.txt"
    offset.write_text("2.5")
    frame = pd.DataFrame(X, columns=["a", "b", "c"])
    registered = _unique("pyfunc")
    with mlflow.start_run() as run:
        info = spark_models.pyfunc.log_model(name="custom", python_model=AddOffset(), artifacts={"offset": str(offset)},
                                             registered_model_name=registered, input_example=frame.head(2))
    assert info.run_id == run.info.run_id and info.registered_model_version == 1
    assert info.flavors[PYFUNC]["loader_module"] == "spark_models.pyfunc.model"
    _assert_loads_everywhere(info, registered, frame, (frame + 2.5).to_numpy())
    _assert_ids_like_mlflow(info)
    ours = spark_models.pyfunc.load_model(mlflow.artifacts.download_artifacts(f"runs:/{run.info.run_id}/custom"))
    np.testing.assert_allclose(ours.predict(frame).to_numpy(), (frame + 2.5).to_numpy())


LOADER_MODULE = '''
import pathlib
import pandas as pd


class _Scale:
    def __init__(self, factor):
        self.factor = factor

    def predict(self, data, params=None):
        return pd.DataFrame({"out": data.sum(axis=1) * self.factor})


def _load_pyfunc(path):
    return _Scale(float(pathlib.Path(path).read_text()))
'''


def test_loader_module_with_data_path_mlflow2_style(sqlite_tracking, tmp_path):
    module_name = f"scale_loader_{uuid.uuid4().hex[:6]}"
    module = tmp_path / f"{module_name}.py"
    module.write_text(LOADER_MODULE)
    factor = tmp_path / "factor.txt"
    factor.write_text("3")
    frame = pd.DataFrame(X, columns=["a", "b", "c"])
    with mlflow.start_run() as run:
        info = spark_models.pyfunc.log_model(artifact_path="scaled", loader_module=module_name, data_path=str(factor),
                                             code_paths=[str(module)])
    try:
        assert info.artifact_path == "scaled" and info.flavors[PYFUNC]["loader_module"] == module_name
        expected = frame.sum(axis=1).to_numpy() * 3
        for uri in (info.model_uri, f"runs:/{run.info.run_id}/scaled"):
            np.testing.assert_allclose(_predictions(uri, frame), expected, err_msg=uri)
    finally:
        sys.modules.pop(module_name, None)


def test_pyfunc_log_model_refuses_bad_combinations_before_logging(sqlite_tracking):
    with pytest.raises(InvalidArgumentError, match="exactly one"):
        spark_models.pyfunc.log_model(name="x")
    with pytest.raises(InvalidArgumentError, match="infer_code_paths"):
        spark_models.pyfunc.log_model(name="x", python_model=AddOffset(), infer_code_paths=True)
    assert mlflow.search_logged_models(output_format="list") == []


def test_pyfunc_log_model_takes_mlflows_arguments():
    import inspect

    ours = inspect.signature(spark_models.pyfunc.log_model).parameters
    theirs = inspect.signature(mlflow.pyfunc.log_model).parameters
    expected = ["artifact_path", "loader_module", "data_path", "code_paths", "infer_code_paths", "conda_env",
                "python_model", "artifacts", "registered_model_name", "signature", "input_example",
                "await_registration_for", "pip_requirements", "extra_pip_requirements", "metadata", "model_config",
                "name", "params", "tags", "model_type", "step", "model_id"]
    assert set(expected) <= set(ours) and set(expected) <= set(theirs)
    assert list(ours)[:8] == list(theirs)[:8]  # the positional order MLflow's callers rely on


def _mlflow2_model_log(cls, artifact_path, flavor, registered_model_name=None, await_registration_for=300,
                       metadata=None, run_id=None, resources=None, **kwargs):
    """The signature of MLflow 2.x's ``Model.log`` (not installed here)."""


def test_mlflow2_gets_artifact_path_and_refuses_mlflow3_only_arguments():
    from spark_models.exceptions import NotSupportedError
    from spark_models.tracking.log import _model_log_kwargs

    kwargs = _model_log_kwargs(_mlflow2_model_log, "m", "2.22.1",
                               {"registered_model_name": "r", "await_registration_for": 300, "metadata": None,
                                "params": None, "tags": None, "step": 0})
    assert kwargs == {"artifact_path": "m", "registered_model_name": "r", "await_registration_for": 300}
    with pytest.raises(NotSupportedError, match="needs MLflow 3"):
        _model_log_kwargs(_mlflow2_model_log, "m", "2.22.1", {"tags": {"a": "b"}})
    mlflow3 = _model_log_kwargs(mlflow.models.Model.log, "m", mlflow.__version__, {"tags": {"a": "b"}})
    assert mlflow3 == {"artifact_path": None, "name": "m", "tags": {"a": "b"}}


# --- without MLflow; every shim ------------------------------------------------------------------------

WITHOUT_MLFLOW = '''
import json
import numpy as np
from sklearn.linear_model import LinearRegression
import spark_models.pyfunc
import spark_models.sklearn
from spark_models.exceptions import MissingDependencyError

out = {}
model = LinearRegression().fit(np.eye(3), np.arange(3.0))
for key, call in (("sklearn", lambda: spark_models.sklearn.log_model(model, name="m")),
                  ("pyfunc", lambda: spark_models.pyfunc.log_model(name="m", loader_module="x"))):
    try:
        call()
        out[key] = None
    except MissingDependencyError as e:
        out[key] = str(e)
print(json.dumps(out))
'''


def test_without_mlflow_logging_says_it_needs_mlflow():
    got = run_json(WITHOUT_MLFLOW, blocked=("mlflow",))
    for key in ("sklearn", "pyfunc"):
        assert got[key] is not None, key
        assert "needs MLflow" in got[key] and "training-side" in got[key] and "pip install mlflow" in got[key]


def test_importing_the_shims_does_not_import_mlflow():
    """The shims are the loader_module scoring workers import: log_model must not drag MLflow in."""
    modules = sorted("spark_models.pyfunc" if n == PYFUNC else f"spark_models.{n}" for n in available_flavors())
    proc = run_python("import importlib, json, sys\n"
                      f"for name in {modules!r}:\n    importlib.import_module(name)\n"
                      "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == 'mlflow')))")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == []


@pytest.mark.parametrize("name", available_flavors())
def test_every_flavor_module_exposes_log_model(name):
    module = importlib.import_module("spark_models.pyfunc" if name == PYFUNC else f"spark_models.{name}")
    assert callable(module.log_model) and "log_model" in module.__all__
    assert module.log_model.__module__ == module.__name__
    if name != PYFUNC:
        import inspect

        params = inspect.signature(module.log_model).parameters
        assert list(params)[:2] == ["model", "name"]
        assert {"artifact_path", "registered_model_name", "signature", "input_example",
                "await_registration_for"} <= set(params)
