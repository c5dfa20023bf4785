"""The ``local`` deployment target with real supervisor and ``serve`` processes: create, predict,
zero-downtime update under load, crash restart, failed update, supervisor death, delete."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.tree import DecisionTreeRegressor

import spark_models.sklearn
from spark_models.deployments.local import LocalDeploymentClient, run_local, target_help
from spark_models.exceptions import DeploymentError, DeploymentNotFoundError, InvalidArgumentError, NotSupportedError
from spark_models.processes import free_port, marked_processes, process_start_time
from spark_models.models import infer_signature
from spark_models.serving.client import ScoringClient, ScoringServerError

pytestmark = pytest.mark.slow

X = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0], "b": [1.0, 0.0, 1.0, 0.0]})


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Two models with different predictions: (path, predictions) for A and B."""
    root = tmp_path_factory.mktemp("deploy-models")
    saved = []
    for name, scale in (("A", 1.0), ("B", 10.0)):
        model = DecisionTreeRegressor(random_state=0).fit(X, scale * np.arange(1.0, 5.0))
        spark_models.sklearn.save_model(model, root / name, signature=infer_signature(X, model.predict(X)))
        saved.append((str(root / name), model.predict(X).tolist()))
    return saved


def _client_fixture(root):
    client = LocalDeploymentClient(f"local:{root}")
    try:
        yield client
    finally:
        for deployment in client.list_deployments():
            client.delete_deployment(deployment["name"])


@pytest.fixture
def client(tmp_path):
    yield from _client_fixture(tmp_path / "state")


def _gone(pid: int, seconds: float = 20.0) -> bool:
    deadline = time.monotonic() + seconds
    while process_start_time(pid) is not None:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def _load_during(url, body, action, after_seconds=1.0, threads=4):
    """Run ``action`` while ``threads`` clients post ``body`` (a new connection each); the answers as
    (started after ``action`` returned, predictions), and the errors."""
    answers, errors, stop, finished = [], [], threading.Event(), []

    def hammer():
        scorer = ScoringClient(url, timeout=30)
        while not stop.is_set():
            after = bool(finished)
            try:
                answers.append((after, scorer.post(body)["predictions"]))
            except (OSError, ValueError, ScoringServerError) as e:  # every failure counts
                errors.append(repr(e))

    workers = [threading.Thread(target=hammer) for _ in range(threads)]
    for worker in workers:
        worker.start()
    try:
        time.sleep(0.3)
        result = action()
        finished.append(True)
        time.sleep(after_seconds)
    finally:
        stop.set()
        for worker in workers:
            worker.join(60)
    return result, answers, errors


def test_create_predict_update_under_load_delete(client, models):
    (path_a, expected_a), (path_b, expected_b) = models
    created = client.create_deployment("churn", path_a, config={"timeout": "60"})
    assert created["name"] == "churn" and created["flavor"] == "python_function"
    for described in (client.get_deployment("churn"), client.list_deployments()[0]):
        assert described["status"] == "ready" and described["alive"] is True
        assert process_start_time(described["supervisor"]["pid"]) == described["supervisor"]["start_time"]
        assert process_start_time(described["backend"]["pid"]) == described["backend"]["start_time"]
    assert client.predict("churn", X).get_predictions("ndarray").tolist() == expected_a
    old_backend = created["backend"]["pid"]

    body = json.dumps({"dataframe_split": {"columns": ["a", "b"], "data": X.values.tolist()}}).encode()
    updated, answers, errors = _load_during(created["url"], body, lambda: client.update_deployment("churn", path_b))
    assert errors == []
    assert updated["model_uri"] == path_b and updated["alive"] and updated["backend"]["pid"] != old_backend
    assert {tuple(p) for _, p in answers} <= {tuple(expected_a), tuple(expected_b)}
    assert any(p == expected_a for _, p in answers)  # the load ran while A served
    after = [p for started_after, p in answers if started_after]
    assert after and all(p == expected_b for p in after)
    assert len(answers) > 20
    assert client.predict("churn", {"dataframe_split": {"columns": ["a", "b"], "data": [[1.0, 0.0]]}}) == \
        {"predictions": [expected_b[1]]}

    pids = [updated["supervisor"]["pid"], updated["backend"]["pid"], old_backend]
    client.delete_deployment("churn")
    assert all(_gone(pid, 1.0) for pid in pids)
    assert not (client.root / "churn").exists()
    assert client.list_deployments() == []
    client.delete_deployment("churn")  # missing: not an error


def test_a_killed_backend_is_restarted(client, models):
    (path_a, expected_a), _ = models
    before = client.create_deployment("crashy", path_a)
    os.kill(before["backend"]["pid"], signal.SIGKILL)
    deadline = time.monotonic() + 60
    while True:
        now = client.get_deployment("crashy")
        if now["backend"] and now["backend"]["pid"] != before["backend"]["pid"] and now["status"] == "ready" \
                and now["alive"]:
            break
        assert time.monotonic() < deadline, now
        time.sleep(0.2)
    assert now["restarts"] == 1 and now["supervisor"]["pid"] == before["supervisor"]["pid"]
    assert client.predict("crashy", X)["predictions"] == expected_a
    assert "died" in Path(now["supervisor"]["log"]).read_text()

    os.kill(now["supervisor"]["pid"], signal.SIGTERM)  # a clean stop: the backend goes with it
    assert _gone(now["supervisor"]["pid"]) and _gone(now["backend"]["pid"], 1.0)
    assert client.get_deployment("crashy")["status"] == "stopped"


def test_a_failed_update_keeps_the_old_model_serving(client, models, tmp_path):
    (path_a, expected_a), _ = models
    client.create_deployment("steady", path_a)
    with pytest.raises(DeploymentError) as raised:
        client.update_deployment("steady", str(tmp_path / "no-such-model"))
    assert "no-such-model" in str(raised.value) and "serve-2.log" in str(raised.value)
    kept = client.get_deployment("steady")
    assert kept["model_uri"] == path_a and kept["status"] == "ready" and kept["alive"]
    assert client.predict("steady", X)["predictions"] == expected_a


def test_a_model_that_cannot_load_is_not_deployed(client, tmp_path):
    with pytest.raises(DeploymentError) as raised:
        client.create_deployment("broken", str(tmp_path / "missing"))
    assert "missing" in str(raised.value) and "supervisor.log" in str(raised.value)
    assert client.list_deployments() == [] and not (client.root / "broken").exists()


def test_refusals_and_a_killed_supervisor(models, tmp_path):
    (path_a, _), _ = models
    long_root = tmp_path / ("x" * 60) / ("y" * 40)  # too long for a Unix socket path inside it
    for client in _client_fixture(long_root):
        with pytest.raises(InvalidArgumentError):
            client.create_deployment("../escape", path_a)
        with pytest.raises(InvalidArgumentError):
            client.create_deployment("ok", path_a, config={"colour": "red"})
        with pytest.raises(NotSupportedError):
            client.create_deployment("ok", path_a, flavor="sklearn")
        with pytest.raises(DeploymentNotFoundError):
            client.get_deployment("nobody")
        first = client.create_deployment("twice", path_a, config={"workers": "2"})
        assert len(first["control_socket"]) < 100
        with pytest.raises(DeploymentError, match="twice"):
            client.create_deployment("twice", path_a)

        os.kill(first["supervisor"]["pid"], signal.SIGKILL)
        assert _gone(first["backend"]["pid"])  # it dies with its supervisor: no orphan serve
        (listed,) = client.list_deployments()
        assert listed["name"] == "twice" and listed["alive"] is False
        with pytest.raises(DeploymentError):
            client.update_deployment("twice", path_a)
        client.delete_deployment("twice")
        assert marked_processes(str(long_root / "twice")) == []  # nor the workers the dead backend forked
        assert client.list_deployments() == []
        assert not os.path.exists(os.path.dirname(first["control_socket"]))


def test_run_local_serves_in_the_foreground(models, tmp_path):
    (path_a, expected_a), _ = models
    port = free_port()
    code = f"from spark_models.deployments.local import run_local; run_local('local', 'fg', {path_a!r}, " \
           f"config={{'port': '{port}'}})"
    proc = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
    try:
        scorer = ScoringClient(f"http://127.0.0.1:{port}")
        scorer.wait_until_ready(timeout=60)
        assert scorer.predict(X) == expected_a
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    assert "local" in target_help() and "port" in target_help()
    with pytest.raises(NotSupportedError):
        run_local("local", "fg", path_a, flavor="onnx")


def test_the_cli_drives_the_local_target_end_to_end(models, tmp_path):
    from spark_models.deployments import get_deploy_client

    (path_a, expected_a), (path_b, expected_b) = models
    target = f"local:{tmp_path / 'state'}"
    assert type(get_deploy_client(target)).__name__ == "LocalDeploymentClient"  # found through the registry

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "spark_models.cli", "deployments", *args, "-t", target],
                              capture_output=True, text=True, timeout=300)

    port = free_port()
    try:
        created = cli("create", "--name", "m", "-m", path_a, "-C", f"port={port}")
        assert created.returncode == 0 and "python_function deployment m is created" in created.stdout, created.stderr
        described = json.loads(cli("get", "--name", "m").stdout)
        assert described["port"] == port and described["alive"] is True
        X.to_csv(tmp_path / "in.csv", index=False)
        scored = cli("predict", "--name", "m", "-I", str(tmp_path / "in.csv"), "-O", str(tmp_path / "a.json"))
        assert scored.returncode == 0, scored.stderr
        assert json.loads((tmp_path / "a.json").read_text())["predictions"] == expected_a
        assert cli("update", "--name", "m", "-m", path_b).returncode == 0
        cli("predict", "--name", "m", "-I", str(tmp_path / "in.csv"), "-O", str(tmp_path / "b.json"))
        assert json.loads((tmp_path / "b.json").read_text())["predictions"] == expected_b
        assert [d["name"] for d in json.loads(cli("list").stdout)] == ["m"]
        assert "port" in cli("help").stdout
    finally:
        deleted = cli("delete", "--name", "m")
    assert deleted.returncode == 0 and json.loads(cli("list").stdout) == []
