"""Shared fixtures: one local SparkSession for the whole run, a fresh model path, and the
fitted Spark ML pipelines of ``tests/helpers/spark_pipelines.py``."""

from __future__ import annotations

import os
import sys

import pytest

from tests.helpers.sessions import spark_builder

pytest_plugins = ["tests.helpers.spark_pipelines", "tests.helpers.mlflow_server", "tests.helpers.env_models"]

# Workers must run this interpreter, not whatever "python" is first on PATH.
os.environ["PYSPARK_PYTHON"] = sys.executable
os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")


@pytest.fixture(scope="session")
def spark():
    """A local[2] SparkSession shared by all tests (UI off, Arrow on)."""
    session = spark_builder().getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture
def tmp_model_dir(tmp_path):
    """A path where a test may save one model (it does not exist yet)."""
    return tmp_path / "model"
