"""env_manager="uv" through Spark Connect: the environment (and its archive) reach the server's workers."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.isolation import run_json

pytestmark = [pytest.mark.spark, pytest.mark.slow]

SCRIPT = r'''
import json, os, sys
os.environ["PYSPARK_PYTHON"] = sys.executable
os.environ["SPARK_MODELS_ENV_CACHE"] = {cache!r}
sys.path.insert(0, {root!r})
import numpy as np, pandas as pd
from pyspark.sql import SparkSession
from udf import spark_udf

spark = SparkSession.builder.remote("local[2]").config("spark.ui.enabled", "false").getOrCreate()
inputs = pd.read_parquet({inputs!r})
expected = np.load({expected!r})
df = spark.createDataFrame(inputs.assign(id=np.arange(len(inputs)))).repartition(3)
out = {{"connect": type(spark).__module__}}
for label, kwargs in (("built", {{}}), ("shipped", {{"ship_env": True}})):
    u = spark_udf(spark, {model_dir!r}, env_manager="uv", **kwargs)
    got = df.withColumn("p", u()).toPandas().sort_values("id")
    out[label] = got.id.tolist() == list(range(len(inputs))) and bool(np.array_equal(got.p.to_numpy(), expected))
    out[label + "_archive"] = u.environment.archive
spark.stop()
print(json.dumps(out))
'''


def test_env_manager_through_spark_connect(old_model, env_root):
    model_dir, _, _ = old_model
    cache = env_root / "cache"
    cache.mkdir(mode=0o700, exist_ok=True)
    out = run_json(SCRIPT.format(root=str(Path(__file__).resolve().parents[1]), cache=str(cache),
                                 model_dir=str(model_dir), inputs=str(model_dir.parent / "inputs.parquet"),
                                 expected=str(model_dir.parent / "expected.npy")), timeout=600)
    assert out["connect"].startswith("pyspark.sql.connect")
    assert out["built"] and out["built_archive"] is None
    assert out["shipped"] and out["shipped_archive"].endswith(".tar.gz")
