"""``spark-models serve`` as a real process on 127.0.0.1: concurrent load, workers, startup errors."""

import json
import os
import signal
import socket
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import RandomForestClassifier

import spark_models.sklearn
from spark_models.models import infer_signature
from spark_models.serving.client import ScoringClient, run_load

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model_path, *extra):
    """A ``spark-models serve`` process and a client for it (the caller stops it)."""
    port = free_port()
    args = [sys.executable, "-m", "spark_models.cli", "serve", "-m", str(model_path), "-p", str(port), *extra]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    return proc, ScoringClient(f"http://127.0.0.1:{port}")


def stop_server(proc):
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    return proc.stdout.read().decode(errors="replace")


@pytest.fixture(scope="module")
def forest(tmp_path_factory):
    rng = np.random.default_rng(3)
    X = pd.DataFrame(rng.random((400, 4)), columns=list("abcd"))
    clf = RandomForestClassifier(n_estimators=20, max_depth=6, random_state=0).fit(X, (X.a + X.b > X.c + X.d).astype(int))
    path = tmp_path_factory.mktemp("served") / "rf"
    spark_models.sklearn.save_model(clf, path, signature=infer_signature(X, clf.predict(X)))
    return clf, X, path


@pytest.mark.parametrize("workers", ["1", "2"])
def test_concurrent_requests_are_all_answered_correctly(forest, workers):
    clf, X, path = forest
    proc, client = start_server(path, "--workers", workers)
    try:
        client.wait_until_ready(timeout=120)
        batches = [X.iloc[(i * 7) % 390:(i * 7) % 390 + 1 + i % 10] for i in range(200)]
        bodies = [json.dumps({"dataframe_split": json.loads(b.to_json(orient="split", index=False))}).encode()
                  for b in batches]
        result = run_load(client, bodies, concurrency=16)
        assert result.errors == []
        for batch, answer in zip(batches, result.responses):
            assert answer == {"predictions": clf.predict(batch).tolist()}
        assert result.throughput > 0 and result.percentile(99) >= result.percentile(50)
    finally:
        log = stop_server(proc)
    assert "Traceback" not in log, log


def test_a_model_that_cannot_load_fails_before_serving(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "spark_models.cli", "serve", "-m", str(tmp_path / "nothing"), "-p", str(free_port())],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 1
    assert "nothing" in proc.stderr and "Traceback" not in proc.stderr
