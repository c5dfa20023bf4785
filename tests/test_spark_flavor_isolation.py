"""Which scoring path starts Spark, checked in fresh interpreters (tests/isolation.py)."""

from pathlib import Path

import pytest

import spark_models.spark
from spark_models.models import ModelSignature
from spark_models.types import ColSpec, Schema
from tests.isolation import run_json
from tests.helpers.spark_pipelines import scoring_frame as _scoring_frame, spark_predictions as _spark_predictions

pytestmark = [pytest.mark.spark, pytest.mark.slow]
ROOT = str(Path(__file__).resolve().parents[1])

PREDICT = r'''
import json, os, sys
sys.path.insert(0, {root!r})
import pandas as pd
from pyspark.sql import SparkSession
import spark_models.pyfunc

def child_commands():
    """Command lines of this interpreter's child processes (a JVM shows up here)."""
    me, found = str(os.getpid()), []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{{pid}}/stat") as f:
                parent = f.read().rsplit(")", 1)[1].split()[1]
            if parent == me:
                with open(f"/proc/{{pid}}/cmdline") as f:
                    found.append(f.read().replace("\0", " "))
        except OSError:
            continue
    return found

before = SparkSession.getActiveSession()
model = spark_models.pyfunc.load_model({path!r}, model_config={config!r})
predictions = model.predict(pd.read_parquet({frame!r})).tolist()
from pyspark import SparkContext
session = SparkSession.getActiveSession()
print(json.dumps({{
    "impl": type(model._model_impl).__name__,
    "predictions": predictions,
    "session_before": before is not None,
    "master": session.sparkContext.master if session is not None else None,
    "spark_context": SparkContext._active_spark_context is not None,
    "gateway": SparkContext._gateway is not None,
    "java_children": [c for c in child_commands() if "java" in c],
}}))
'''


@pytest.fixture(scope="module")
def saved(spark, lr_pipeline, tmp_path_factory):  # noqa: F811
    base = tmp_path_factory.mktemp("isolation")
    sig = ModelSignature(
        Schema([ColSpec("double", "x1"), ColSpec("double", "x2"), ColSpec("string", "color", required=False)]),
        Schema([ColSpec("double", "prediction")]),
    )
    spark_models.spark.save_model(lr_pipeline, base / "m", signature=sig)
    frame = _scoring_frame()
    frame.to_parquet(base / "frame.parquet")
    return {"path": str(base / "m"), "frame": str(base / "frame.parquet"),
            "expected": _spark_predictions(spark, lr_pipeline, frame).tolist()}


def _run(saved, config):
    return run_json(PREDICT.format(root=ROOT, path=saved["path"], frame=saved["frame"], config=config))


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc to list child processes")
def test_the_mleap_path_never_starts_spark(saved):
    out = _run(saved, {})
    assert out["impl"] == "BundlePyfunc" and out["predictions"] == saved["expected"]
    assert out["session_before"] is False and out["master"] is None
    assert out["spark_context"] is False and out["gateway"] is False and out["java_children"] == []


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc to list child processes")
def test_the_spark_path_starts_a_local_session_when_there_is_none(saved):
    out = _run(saved, {"runtime": "spark"})
    assert out["impl"] == "SparkPipelinePyfunc" and out["predictions"] == saved["expected"]
    assert out["session_before"] is False and out["master"] == "local[*]"
    assert out["spark_context"] is True and out["gateway"] is True and len(out["java_children"]) == 1
