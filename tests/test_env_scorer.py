"""The persistent scorer process: real child processes (this interpreter) scoring real models."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import spark_models.pyfunc
import spark_models.sklearn
from spark_models.envs.options import CACHE_ENV, Timeouts
from spark_models.envs.overlay import code_overlay
from spark_models.envs.scorer import EnvScorer, shared_scorer
from spark_models.exceptions import ModelNotFoundError, SchemaEnforcementError, ScorerProcessError, ScorerTimeoutError
from spark_models.schema.inference import infer_signature

ENV_KEY = "env0123abcd"
CRASH, SLEEP = -1.0, -2.0  # marker values of column x


def _models():
    """Custom models, defined here so that they are pickled by value (the child cannot import tests)."""

    class Behaves(spark_models.pyfunc.PythonModel):
        """x * k; crashes, sleeps, prints or raises on marker inputs."""

        def load_context(self, context):
            config = context.model_config
            if config.get("pid_file"):
                Path(config["pid_file"]).write_text(str(os.getpid()))
            time.sleep(config.get("load_sleep", 0))

        def predict(self, context, model_input, params=None):
            x = model_input["x"]
            if (x == CRASH).any():
                print("crash marker seen, exiting", file=sys.stderr, flush=True)
                os._exit(7)
            if (x == SLEEP).any():
                time.sleep(60)
            if (x == -3.0).any():
                raise ValueError("x may not be -3")
            print("a model that prints")
            os.write(1, b"and one that writes to fd 1\n")
            return x * (params or {}).get("k", 1.0)

    class Frames(spark_models.pyfunc.PythonModel):
        def predict(self, context, model_input, params=None):
            return pd.DataFrame({"double": model_input["x"] * 2, 3: model_input["x"].astype(str)})

    class Tensors(spark_models.pyfunc.PythonModel):
        def predict(self, context, model_input, params=None):
            return model_input["a"] @ model_input["b"]

    return Behaves, Frames, Tensors


@pytest.fixture(scope="module", autouse=True)
def private_cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(CACHE_ENV, str(tmp_path_factory.mktemp("env-cache")))
        yield


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(200, 3)), columns=["a", "b", "c"])
    y = (X.a + X.b > 0).astype(int)
    clf = LogisticRegression().fit(X, y)
    spark_models.sklearn.save_model(clf, root / "sklearn", signature=infer_signature(X, clf.predict(X)))
    behaves, frames, tensors = _models()
    for name, model in {"behaves": behaves(), "frames": frames(), "tensors": tensors()}.items():
        spark_models.pyfunc.save_model(root / name, python_model=model)
    return root, X


def _scorer(model_dir: Path, log_dir: Path, **kwargs) -> EnvScorer:
    return EnvScorer(sys.executable, model_dir, model_uri=f"file://{model_dir}", env_key=ENV_KEY,
                     log_path=log_dir / "logs" / "scorer.log", **kwargs)


def _running(pid: int) -> bool:
    """True while ``pid`` runs (a zombie nobody reaped has stopped)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def _wait_gone(pid: int, seconds: float = 20.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not _running(pid):
            return True
        time.sleep(0.05)
    return False


def _names_where(error: BaseException, scorer: EnvScorer) -> None:
    assert scorer.model_uri in str(error) and ENV_KEY in str(error) and str(scorer.log_path) in str(error)


def test_predictions_equal_in_process(models, tmp_path):
    root, X = models
    batch = X.set_axis(range(100, 300))
    with _scorer(root / "sklearn", tmp_path) as scorer:
        np.testing.assert_array_equal(scorer.predict(batch), spark_models.pyfunc.load_model(root / "sklearn").predict(batch))
        assert scorer.info["pid"] == scorer.pid and scorer.info["python"] == sys.version.split()[0]
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0]}, index=[7, 8, 9])
    for name, params in (("behaves", {"k": 3.0}), ("frames", None)):
        expected = spark_models.pyfunc.load_model(root / name).predict(frame, params=params)
        with _scorer(root / name, tmp_path) as scorer:
            got = scorer.predict(frame, params=params)
        if isinstance(expected, pd.Series):
            pd.testing.assert_series_equal(got, expected)
        else:
            pd.testing.assert_frame_equal(got, expected)
            assert list(got.columns) == ["double", 3]
    tensors = {"a": np.arange(6.0).reshape(2, 3), "b": np.ones((3, 4), dtype=np.float32)}
    with _scorer(root / "tensors", tmp_path) as scorer:
        got = scorer.predict(tensors)
    np.testing.assert_array_equal(got, tensors["a"] @ tensors["b"])
    assert got.dtype == np.float64 and got.shape == (2, 4)


def test_model_errors_keep_their_class_and_the_child_keeps_running(models, tmp_path):
    root, X = models
    with _scorer(root / "sklearn", tmp_path) as scorer:
        scorer.start()
        pid = scorer.pid
        with pytest.raises(SchemaEnforcementError) as error:
            scorer.predict(X.drop(columns="c"))
        assert "c" in str(error.value)
        _names_where(error.value, scorer)
        assert scorer.predict(X).shape == (len(X),) and scorer.pid == pid
    with _scorer(root / "behaves", tmp_path) as scorer:
        scorer.start()
        pid = scorer.pid
        with pytest.raises(ScorerProcessError, match="x may not be -3") as error:
            scorer.predict(pd.DataFrame({"x": [-3.0]}))
        assert not isinstance(error.value, ScorerTimeoutError)
        _names_where(error.value, scorer)
        assert scorer.pid == pid  # a model error is no crash: no restart
    with _scorer(tmp_path / "missing", tmp_path) as scorer:
        with pytest.raises(ModelNotFoundError) as error:
            scorer.start()
        _names_where(error.value, scorer)


def test_printing_models_do_not_break_the_protocol(models, tmp_path):
    root, _ = models
    with _scorer(root / "behaves", tmp_path) as scorer:
        for _ in range(3):
            assert scorer.predict(pd.DataFrame({"x": [1.0, 2.0]})).tolist() == [1.0, 2.0]
    log = scorer.log_path.read_text()
    assert "a model that prints" in log and "and one that writes to fd 1" in log


def test_a_child_killed_between_batches_is_restarted(models, tmp_path):
    root, _ = models
    frame = pd.DataFrame({"x": [1.0]})
    with _scorer(root / "behaves", tmp_path) as scorer:
        assert scorer.predict(frame).tolist() == [1.0]
        old = scorer.pid
        os.kill(old, signal.SIGKILL)
        assert _wait_gone(old)
        assert scorer.predict(frame).tolist() == [1.0]
        assert scorer.pid not in (None, old)


def test_a_batch_that_always_crashes_reports_the_log_tail(models, tmp_path):
    root, _ = models
    with _scorer(root / "behaves", tmp_path) as scorer:
        with pytest.raises(ScorerProcessError) as error:
            scorer.predict(pd.DataFrame({"x": [CRASH]}))
        message = str(error.value)
        assert not isinstance(error.value, ScorerTimeoutError)
        assert "crash marker seen" in message and "exit code 7" in message and "restart" in message
        _names_where(error.value, scorer)
        assert scorer.log_path.read_text().count("crash marker seen") == 2  # tried, restarted, tried again
        assert scorer.predict(pd.DataFrame({"x": [2.0]})).tolist() == [2.0]


def test_batch_timeout_kills_the_child(models, tmp_path):
    root, _ = models
    with _scorer(root / "behaves", tmp_path, timeouts=Timeouts(batch=1.0)) as scorer:
        scorer.start()
        pid = scorer.pid
        with pytest.raises(ScorerTimeoutError) as error:
            scorer.predict(pd.DataFrame({"x": [SLEEP]}))
        _names_where(error.value, scorer)
        assert not _running(pid) and scorer.pid is None
        assert scorer.predict(pd.DataFrame({"x": [4.0]})).tolist() == [4.0]  # a new child


def test_load_timeout_kills_the_child(models, tmp_path):
    root, _ = models
    pid_file = tmp_path / "pid"
    config = {"pid_file": str(pid_file), "load_sleep": 60}
    with _scorer(root / "behaves", tmp_path, model_config=config, timeouts={"load": 4.0}) as scorer:
        with pytest.raises(ScorerTimeoutError) as error:
            scorer.start()
        _names_where(error.value, scorer)
        assert scorer.pid is None
    assert pid_file.is_file() and not _running(int(pid_file.read_text()))


PARENT = """
import sys
import pandas as pd
from pathlib import Path
from spark_models.envs.scorer import EnvScorer

scorer = EnvScorer(sys.executable, sys.argv[1], model_uri="m", env_key="k", log_path=Path(sys.argv[2]))
scorer.start()
print(scorer.pid, flush=True)
scorer.predict(pd.DataFrame({"x": [-2.0]}))  # sleeps in the child
"""


def test_the_child_dies_with_its_parent(models, tmp_path):
    root, _ = models
    parent = subprocess.Popen([sys.executable, "-c", textwrap.dedent(PARENT), str(root / "behaves"),
                               str(tmp_path / "parent.log")], stdout=subprocess.PIPE, text=True)
    try:
        child = int(parent.stdout.readline())
        assert _running(child)
        time.sleep(0.2)  # let the batch reach the child
        parent.kill()
        parent.wait()
        assert _wait_gone(child)
    finally:
        parent.kill()
        parent.wait()


def test_shared_scorer_is_one_process(models, tmp_path):
    root, _ = models
    kwargs = {"model_uri": "shared", "env_key": ENV_KEY, "log_path": tmp_path / "shared.log"}
    first = shared_scorer(sys.executable, root / "behaves", **kwargs)
    try:
        assert shared_scorer(sys.executable, str(root / "behaves"), **kwargs) is first
        assert shared_scorer(sys.executable, root / "behaves", model_config={"k": 1}, **kwargs) is not first
        first.predict(pd.DataFrame({"x": [1.0]}))
        pid = first.pid
        shared_scorer(sys.executable, root / "behaves", **kwargs).predict(pd.DataFrame({"x": [1.0]}))
        assert first.pid == pid
    finally:
        first.close()


def test_code_overlay_is_a_reused_copy(tmp_path):
    overlay = code_overlay(tmp_path / "cache")
    assert (overlay / "spark_models" / "envs" / "child.py").is_file()
    assert not list(overlay.rglob("__pycache__"))
    assert code_overlay(tmp_path / "cache") == overlay and overlay.parent == tmp_path / "cache" / "code"


def test_a_child_started_from_a_thread_outlives_the_thread(models, tmp_path):
    import threading

    root, _ = models
    with _scorer(root / "behaves", tmp_path) as scorer:
        starter = threading.Thread(target=scorer.start)
        starter.start()
        starter.join()
        pid = scorer.pid
        assert scorer.predict(pd.DataFrame({"x": [5.0]})).tolist() == [5.0]
        assert scorer.pid == pid
