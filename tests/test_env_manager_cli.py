"""``predict`` and ``serve`` with ``--env-manager uv``: real processes, the model's own scikit-learn."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from spark_models.serving.client import ScoringServerError
from tests.test_serve_process import start_server, stop_server

pytestmark = pytest.mark.slow


def _cli(*args: str, env_cache) -> subprocess.CompletedProcess:
    env = {**os.environ, "SPARK_MODELS_ENV_CACHE": str(env_cache)}
    return subprocess.run([sys.executable, "-m", "spark_models.cli", *args], capture_output=True, text=True,
                          timeout=600, env=env)


def test_predict_local_scores_in_the_models_environment(old_model, env_cache, tmp_path):
    model_dir, inputs, expected = old_model
    inputs.to_parquet(tmp_path / "in.parquet")
    done = _cli("predict", "-m", str(model_dir), "-i", str(tmp_path / "in.parquet"), "-o", str(tmp_path / "out.parquet"),
                "--local", "--env-manager", "uv", env_cache=env_cache)
    assert done.returncode == 0, done.stderr
    out = pd.read_parquet(tmp_path / "out.parquet")
    np.testing.assert_array_equal(out.prediction.to_numpy(), expected)
    pd.testing.assert_frame_equal(out[list(inputs.columns)], inputs)


def test_predict_refuses_an_unknown_manager(old_model, env_cache, tmp_path):
    done = _cli("predict", "-m", str(old_model[0]), "-i", "x.csv", "-o", "-", "--env-manager", "pip", env_cache=env_cache)
    assert done.returncode == 2 and "'pip' is not one of" in done.stderr


def test_serve_scores_in_the_models_environment(old_model, env_cache, monkeypatch):
    model_dir, inputs, expected = old_model
    monkeypatch.setenv("SPARK_MODELS_ENV_CACHE", str(env_cache))
    proc, client = start_server(model_dir, "--env-manager", "uv")
    try:
        client.wait_until_ready(timeout=300)
        body = json.dumps({"dataframe_split": {"columns": list(inputs.columns), "data": inputs.to_numpy().tolist()}}).encode()
        answer = client.post(body)
        bad = json.dumps({"dataframe_split": {"columns": ["a"], "data": [[1.0]]}}).encode()
        with pytest.raises(ScoringServerError) as refused:
            client.post(bad)
    finally:
        log = stop_server(proc)
    np.testing.assert_allclose(answer["predictions"], expected, rtol=1e-12)  # JSON carries 15 decimals
    assert refused.value.status == 400 and "b" in refused.value.body, log


def test_predict_through_spark_scores_in_the_models_environment(old_model, env_cache, tmp_path):
    model_dir, inputs, expected = old_model
    inputs.to_parquet(tmp_path / "in.parquet")
    done = _cli("predict", "-m", str(model_dir), "-i", str(tmp_path / "in.parquet"), "-o", str(tmp_path / "out"),
                "--master", "local[2]", "--env-manager", "uv", env_cache=env_cache)
    assert done.returncode == 0, done.stderr
    out = pd.read_parquet(tmp_path / "out")
    np.testing.assert_array_equal(out.prediction.to_numpy(), expected)  # the input file's row order is kept
