"""The image of ``build-docker`` follows SageMaker's inference container contract.

There is no Docker engine here, so the build context's entry point is run directly, as the
image would run it (``python /opt/ml/entrypoint.py serve``), with its model directory pointed
at the context's copy of the model and a PATH on which ``spark-models`` does not resolve: the
entry point must find the ``spark-models`` installed with its own interpreter.
"""

import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression

import spark_models.sklearn
from spark_models.exceptions import InvalidArgumentError, ModelNotFoundError
from spark_models.models import infer_signature
from spark_models.serving import sagemaker_entrypoint
from spark_models.serving.client import ScoringClient
from spark_models.serving.docker import build_context

from .test_serve_process import free_port

BARE_PATH = "/usr/bin:/bin"  # no spark-models here


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    rng = np.random.default_rng(7)
    X = pd.DataFrame(rng.random((50, 2)), columns=["a", "b"])
    model = LinearRegression().fit(X, 3 * X.a - 2 * X.b + 0.5)
    root = tmp_path_factory.mktemp("sagemaker")
    spark_models.sklearn.save_model(model, root / "lin", signature=infer_signature(X, model.predict(X)))
    return model, X, build_context(str(root / "lin"), root / "ctx")


def _entrypoint_env(ctx: Path, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("SAGEMAKER_BIND_TO_PORT", "WORKERS")}
    env.update({"PATH": BARE_PATH, "SPARK_MODELS_MODEL_DIR": str(ctx / "model"), **extra})
    return env


def _run_entrypoint(ctx: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ctx / "entrypoint.py"), *args], cwd=ctx, env=_entrypoint_env(ctx, **env),
                          capture_output=True, text=True, timeout=120)


def _load_context_entrypoint(ctx: Path):
    """The context's own copy of the entry script, as a module."""
    spec = importlib.util.spec_from_file_location("context_entrypoint", ctx / "entrypoint.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_dockerfile_follows_the_contract(fitted):
    _, _, ctx = fitted
    lines = (ctx / "Dockerfile").read_text().splitlines()
    assert "EXPOSE 8080" in lines
    assert "COPY model /opt/ml/model" in lines
    assert "COPY entrypoint.py /opt/ml/entrypoint.py" in lines
    assert lines[-2:] == ['ENTRYPOINT ["python", "/opt/ml/entrypoint.py"]', 'CMD ["serve"]']
    assert (ctx / "entrypoint.py").read_text() == Path(sagemaker_entrypoint.__file__).read_text()
    assert (ctx / "model" / "MLmodel").is_file()


def test_serve_command_defaults_to_port_8080_and_opt_ml_model(fitted):
    _, _, ctx = fitted
    entry = _load_context_entrypoint(ctx)
    assert (entry.MODEL_DIR, entry.PORT) == ("/opt/ml/model", 8080)
    if not Path("/opt/ml/model/MLmodel").exists():  # as on this machine: no model there
        with pytest.raises(ModelNotFoundError, match="/opt/ml/model"):
            entry.serve_command({})
    command = entry.serve_command({"SPARK_MODELS_MODEL_DIR": str(ctx / "model")})
    assert command[0] == str(Path(sys.executable).parent / "spark-models")  # this interpreter's, not PATH's
    assert command[1:] == ["serve", "-m", str(ctx / "model"), "-h", "0.0.0.0", "-p", "8080", "-w", "1"]
    multi = entry.serve_command({"SPARK_MODELS_MODEL_DIR": str(ctx / "model"), "SAGEMAKER_BIND_TO_PORT": "9001",
                                 "WORKERS": "3"}, ["--timeout", "60"])
    assert multi[-6:] == ["-p", "9001", "-w", "3", "--timeout", "60"]
    for bad in ({"SAGEMAKER_BIND_TO_PORT": "http"}, {"SAGEMAKER_BIND_TO_PORT": "70000"}, {"WORKERS": "0"}):
        with pytest.raises(InvalidArgumentError, match=next(iter(bad))):
            entry.serve_command({"SPARK_MODELS_MODEL_DIR": str(ctx / "model"), **bad})


def test_other_arguments_run_as_a_command(fitted):
    _, _, ctx = fitted
    echo = _run_entrypoint(ctx, "echo", "hi")
    assert (echo.returncode, echo.stdout) == (0, "hi\n")
    status = _run_entrypoint(ctx, "sh", "-c", "exit 3")
    assert status.returncode == 3  # the command replaced the entry point: its status is the container's
    missing = _run_entrypoint(ctx, "no-such-command-here")
    assert missing.returncode == 127
    assert "no-such-command-here" in missing.stderr and "Traceback" not in missing.stderr


@pytest.mark.parametrize("args", [["serve"], []], ids=["serve", "no-argument"])
def test_an_unknown_model_dir_is_one_line_and_exit_1(fitted, tmp_path, args):
    _, _, ctx = fitted
    out = _run_entrypoint(ctx, *args, SPARK_MODELS_MODEL_DIR=str(tmp_path / "nowhere"))
    assert out.returncode == 1
    assert out.stderr.strip().count("\n") == 0 and str(tmp_path / "nowhere") in out.stderr
    bad_port = _run_entrypoint(ctx, *args, SAGEMAKER_BIND_TO_PORT="eighty")
    assert bad_port.returncode == 1 and "SAGEMAKER_BIND_TO_PORT" in bad_port.stderr
    assert "Traceback" not in out.stderr + bad_port.stderr


def _port_8080_free() -> bool:
    with socket.socket() as s:
        try:
            s.bind(("0.0.0.0", 8080))
        except OSError:
            return False
    return True


def _start(ctx: Path, workers: str) -> tuple[subprocess.Popen, ScoringClient]:
    """``entrypoint.py serve`` on 8080 when it is free, else on SAGEMAKER_BIND_TO_PORT."""
    port, extra = (8080, {}) if _port_8080_free() else _other_port()
    proc = subprocess.Popen([sys.executable, str(ctx / "entrypoint.py"), "serve"], cwd=ctx,
                            env=_entrypoint_env(ctx, WORKERS=workers, **extra),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    return proc, ScoringClient(f"http://127.0.0.1:{port}")


def _other_port() -> tuple[int, dict]:
    port = free_port()
    return port, {"SAGEMAKER_BIND_TO_PORT": str(port)}


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.slow
@pytest.mark.parametrize("workers", ["1", "2"])
def test_serve_answers_ping_and_invocations_and_stops_on_sigterm(fitted, workers):
    model, X, ctx = fitted
    proc, client = _start(ctx, workers)
    try:
        client.wait_until_ready(timeout=120)
        cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes().split(b"\0")
        assert b"serve" in cmdline and not any(part.endswith(b"entrypoint.py") for part in cmdline)  # exec'd
        batch = X.iloc[:7]
        expected = model.predict(batch)
        csv = client.post(batch.to_csv(index=False).encode(), "text/csv")["predictions"]
        split = {"dataframe_split": json.loads(batch.to_json(orient="split", index=False))}
        as_json = client.post(json.dumps(split).encode(), "application/json")["predictions"]
        assert csv == pytest.approx(expected.tolist()) and as_json == pytest.approx(expected.tolist())
        os.kill(proc.pid, signal.SIGTERM)  # what `docker stop` sends PID 1
        assert proc.wait(timeout=30) is not None
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log = proc.stdout.read().decode(errors="replace")
    for _ in range(50):  # a worker that exited with its parent may wait a moment to be reaped
        if not _group_alive(proc.pid):
            break
        time.sleep(0.2)
    assert not _group_alive(proc.pid), f"processes outlived the server:\n{log}"
    assert "Traceback" not in log, log


@pytest.mark.slow
def test_a_model_that_cannot_load_exits_before_answering(fitted, tmp_path):
    _, _, ctx = fitted
    broken = tmp_path / "ctx"
    shutil.copytree(ctx, broken)
    (broken / "model" / "model.pkl").write_bytes(b"not a pickle")
    port, extra = _other_port()
    out = subprocess.run([sys.executable, str(broken / "entrypoint.py")], cwd=broken, env=_entrypoint_env(broken, **extra),
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 1, out.stderr
    assert not ScoringClient(f"http://127.0.0.1:{port}", timeout=2).ping()
    assert "Traceback" not in out.stderr

