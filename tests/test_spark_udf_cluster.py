"""spark_udf where executors do not share the driver's disk: local-cluster[2,1,1024]."""

import pytest

from tests.isolation import run_json

pytestmark = [pytest.mark.spark, pytest.mark.slow]

SCRIPT = r'''
import json, os, shutil, sys, tempfile
os.environ["PYSPARK_PYTHON"] = sys.executable
os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"
sys.path.insert(0, {root!r})
from conftest import spark_builder
import spark_models.pyfunc

class AddOne(spark_models.pyfunc.PythonModel):
    def predict(self, context, model_input):
        return model_input["x"] + 1

class HeavyImports(spark_models.pyfunc.PythonModel):
    """Reports which heavy packages the executor's Python worker has imported."""
    def predict(self, context, model_input):
        heavy = ("mlflow", "sklearn", "scipy", "matplotlib", "IPython")
        loaded = ",".join(m for m in heavy if m in sys.modules)
        return [loaded] * len(model_input)

path = tempfile.mkdtemp() + "/m"
spark_models.pyfunc.save_model(path, python_model=AddOne())
spark_models.pyfunc.save_model(path + "-imports", python_model=HeavyImports())
spark = spark_builder("local-cluster[2,1,1024]").config("spark.executor.memory", "512m").getOrCreate()
u = spark_models.pyfunc.spark_udf(spark, path)
shutil.rmtree(path)  # executors can only use the shipped archive now
df = spark.range(0, 2000, numPartitions=4).selectExpr("cast(id as double) as x")
rows = df.withColumn("p", u("x")).collect()
imports = {{r.m for r in df.select(spark_models.pyfunc.spark_udf(spark, path + "-imports", result_type="string")("x").alias("m")).collect()}}
pids = df.rdd.mapPartitions(lambda _: [os.getpid()]).distinct().count()
print(json.dumps({{"n": len(rows), "ok": all(r.p == r.x + 1 for r in rows), "executor_pids": pids, "worker_imports": sorted(imports)}}))
spark.stop()
'''


def test_local_cluster_ships_model_to_separate_executors():
    from pathlib import Path

    out = run_json(SCRIPT.format(root=str(Path(__file__).resolve().parents[1])))
    assert out == {"n": 2000, "ok": True, "executor_pids": out["executor_pids"], "worker_imports": [""]}
    assert out["executor_pids"] >= 2


CONNECT_SCRIPT = r'''
import json, os, sys, tempfile
os.environ["PYSPARK_PYTHON"] = sys.executable
from pyspark.sql import SparkSession
import spark_models.pyfunc

class Scale(spark_models.pyfunc.PythonModel):
    def predict(self, context, model_input):
        return model_input["x"] * 3

path = tempfile.mkdtemp() + "/m"
spark_models.pyfunc.save_model(path, python_model=Scale())
spark = SparkSession.builder.remote("local[2]").config("spark.ui.enabled", "false").getOrCreate()
assert type(spark).__module__.startswith("pyspark.sql.connect")
u = spark_models.pyfunc.spark_udf(spark, path, result_type="double")
df = spark.range(0, 500, numPartitions=3).selectExpr("cast(id as double) as x")
rows = df.withColumn("p", u("x")).orderBy("x").collect()
print(json.dumps({"n": len(rows), "ok": all(r.p == r.x * 3 for r in rows), "ordered": [r.x for r in rows] == sorted(r.x for r in rows)}))
spark.stop()
'''


def test_spark_connect_session():
    pytest.importorskip("grpc")
    assert run_json(CONNECT_SCRIPT) == {"n": 500, "ok": True, "ordered": True}
