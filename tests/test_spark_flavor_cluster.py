"""spark flavor under local-cluster[2,1,1024] (separate executor JVMs) and Spark Connect."""

from pathlib import Path

import pytest

from tests.isolation import run_json

pytestmark = [pytest.mark.spark, pytest.mark.slow]
ROOT = str(Path(__file__).resolve().parents[1])

PIPELINE = r'''
from pyspark.ml import Pipeline
from pyspark.ml.classification import LogisticRegression
from pyspark.ml.feature import OneHotEncoder, StringIndexer, VectorAssembler
from pyspark.ml.regression import RandomForestRegressor

rows = [(float(i % 7), ["a", "b", "c"][i % 3], float((i % 7) > 3)) for i in range(60)]
train = spark.createDataFrame(rows, "x double, kind string, label double")
lr = Pipeline(stages=[
    StringIndexer(inputCol="kind", outputCol="kind_idx", handleInvalid="keep"),
    OneHotEncoder(inputCols=["kind_idx"], outputCols=["kind_vec"]),
    VectorAssembler(inputCols=["x", "kind_vec"], outputCol="features"),
    LogisticRegression(maxIter=10),
]).fit(train)
rf = Pipeline(stages=[
    VectorAssembler(inputCols=["x"], outputCol="features"),
    RandomForestRegressor(labelCol="label", numTrees=4, maxDepth=3, seed=1),
]).fit(train)
test = spark.createDataFrame([(1.0, "a"), (5.0, "z"), (6.0, "c")], "x double, kind string")

def preds(model):
    return [r.prediction for r in model.transform(test).select("prediction").collect()]
'''

CLUSTER = r'''
import json, os, sys, tempfile
from pathlib import Path
os.environ["PYSPARK_PYTHON"] = sys.executable
os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"
sys.path.insert(0, {root!r})
from conftest import spark_builder
import spark_models.spark
spark = spark_builder("local-cluster[2,1,1024]").config("spark.executor.memory", "512m").getOrCreate()
''' + PIPELINE + r'''
base = Path(tempfile.mkdtemp())
dfs = base / "dfs"  # not created here: only staging through it creates it
out = {{}}
for name, model in (("lr", lr), ("rf", rf)):
    spark_models.spark.save_model(model, base / name, dfs_tmpdir=dfs.as_uri())
    staged_after_save = sorted(os.listdir(dfs))
    loaded = spark_models.spark.load_model(str(base / name), dfs_tmpdir=dfs.as_uri())
    out[name] = {{"same": preds(loaded) == preds(model), "left_in_dfs": staged_after_save + sorted(os.listdir(dfs)),
                 "has_data": (base / name / "sparkml" / "stages").is_dir()}}
spark_models.spark.save_model(lr, base / "default")  # default staging dir on a non-local master
out["default"] = preds(spark_models.spark.load_model(str(base / "default"))) == preds(lr)
print(json.dumps(out))
spark.stop()
'''


def test_save_and_load_stage_through_a_dfs_dir_under_local_cluster():
    out = run_json(CLUSTER.format(root=ROOT))
    for name in ("lr", "rf"):
        assert out[name] == {"same": True, "left_in_dfs": [], "has_data": True}, name
    assert out["default"] is True


CONNECT = r'''
import json, os, sys, tempfile
from pathlib import Path
os.environ["PYSPARK_PYTHON"] = sys.executable
from pyspark.sql import SparkSession
import pandas as pd
import spark_models.pyfunc, spark_models.spark
spark = SparkSession.builder.remote("local[2]").config("spark.ui.enabled", "false").getOrCreate()
assert type(spark).__module__.startswith("pyspark.sql.connect")
''' + PIPELINE + r'''
base = Path(tempfile.mkdtemp())
spark_models.spark.save_model(lr, base / "lr")
loaded = spark_models.spark.load_model(str(base / "lr"))
pyfunc = spark_models.pyfunc.load_model(str(base / "lr")).predict(pd.DataFrame({"x": [1.0, 5.0, 6.0], "kind": ["a", "z", "c"]}))
print(json.dumps({"same": preds(loaded) == preds(lr), "pyfunc": pyfunc.tolist() == preds(lr),
                  "layout": sorted(os.listdir(base / "lr" / "sparkml"))}))
spark.stop()
'''


def test_spark_connect_session_saves_and_loads():
    pytest.importorskip("grpc")
    out = run_json(CONNECT)
    assert out == {"same": True, "pyfunc": True, "layout": ["metadata", "stages"]}
