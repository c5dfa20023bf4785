"""Shared fixtures: one local SparkSession for the whole run, and a fresh model path."""

from __future__ import annotations

import os
import sys

import pytest

# Workers must run this interpreter, not whatever "python" is first on PATH.
os.environ["PYSPARK_PYTHON"] = sys.executable
os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")


def spark_builder(master: str = "local[2]"):
    """A SparkSession builder with the settings every test session uses."""
    from pyspark.sql import SparkSession

    return (
        SparkSession.builder.master(master)
        .appName("spark-models-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.default.parallelism", "2")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.driver.memory", "2g")
        .config("spark.sql.session.timeZone", "UTC")
    )


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
