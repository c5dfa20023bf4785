"""spark_udf where executors do not share the driver's disk: local-cluster[2,1,1024]."""

import pytest

from tests.isolation import run_json

pytestmark = [pytest.mark.spark, pytest.mark.slow]

SCRIPT = r'''
import json, os, shutil, sys, tempfile
os.environ["PYSPARK_PYTHON"] = sys.executable
os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"
sys.path.insert(0, {root!r})
from tests.helpers.sessions import spark_builder
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

# a Spark ML pipeline saved without a bundle: converted on the driver, the copy shipped to the executors
from pyspark.ml import Pipeline
from pyspark.ml.feature import VectorAssembler
from pyspark.ml.regression import GBTRegressor
import spark_models.spark
train = spark.range(0, 200).selectExpr("cast(id % 13 as double) as x", "cast(id % 5 as double) as z",
                                       "cast((id % 13) * (id % 5) as double) as label")
gbt = Pipeline(stages=[VectorAssembler(inputCols=["x", "z"], outputCol="features"),
                       GBTRegressor(maxIter=5, maxDepth=3, seed=1)]).fit(train)
spark_models.spark.save_model(gbt, path + "-gbt", mleap=False)
scored = gbt.transform(train).withColumn("p", spark_models.pyfunc.spark_udf(spark, path + "-gbt")("x", "z"))
gbt_ok = all(r.p == r.prediction for r in scored.collect())
print(json.dumps({{"n": len(rows), "ok": all(r.p == r.x + 1 for r in rows), "executor_pids": pids, "worker_imports": sorted(imports),
                  "gbt_ok": gbt_ok, "gbt_dir": sorted(os.listdir(path + "-gbt"))}}))
spark.stop()
'''


def test_local_cluster_ships_model_to_separate_executors():
    from pathlib import Path

    out = run_json(SCRIPT.format(root=str(Path(__file__).resolve().parents[1])))
    assert out == {"n": 2000, "ok": True, "executor_pids": out["executor_pids"], "worker_imports": [""], "gbt_ok": True,
                   "gbt_dir": ["MLmodel", "conda.yaml", "python_env.yaml", "requirements.txt", "sparkml"]}
    assert out["executor_pids"] >= 2


CONNECT_SCRIPT = r'''
import json, os, sys, tempfile
os.environ["PYSPARK_PYTHON"] = sys.executable
from pyspark.sql import SparkSession, functions as F
from pyspark.sql.connect.session import SparkSession as ConnectSession
import spark_models.pyfunc
from spark_models.exceptions import SchemaEnforcementError

class Scale(spark_models.pyfunc.PythonModel):
    def predict(self, context, model_input):
        return model_input["x"] * 3

class Seen(spark_models.pyfunc.PythonModel):
    def predict(self, context, model_input):
        return [",".join(model_input.columns)] * len(model_input)

path = tempfile.mkdtemp() + "/m"
spark_models.pyfunc.save_model(path, python_model=Scale())
spark_models.pyfunc.save_model(path + "-seen", python_model=Seen())
# A local Spark Connect server on a free (ephemeral) port, so parallel runs never collide.
server = (SparkSession.builder.master("local[2]").config("spark.ui.enabled", "false")
          .config("spark.plugins", "org.apache.spark.sql.connect.SparkConnectPlugin")
          .config("spark.connect.grpc.binding.port", "0").getOrCreate())
service = getattr(server._jvm, "org.apache.spark.sql.connect.service.SparkConnectService$")
port = getattr(service, "MODULE$").localPort()
os.environ["SPARK_CONNECT_MODE_ENABLED"] = "1"  # what builder.remote() sets: pyspark.sql.functions speak Connect
spark = ConnectSession.builder.remote(f"sc://localhost:{port}").getOrCreate()
assert type(spark).__module__.startswith("pyspark.sql.connect")
u = spark_models.pyfunc.spark_udf(spark, path, result_type="double")
df = spark.range(0, 500, numPartitions=3).selectExpr("cast(id as double) as x")
rows = df.withColumn("p", u("x")).orderBy("x").collect()
seen = spark_models.pyfunc.spark_udf(spark, path + "-seen", result_type="string")
names = df.withColumn("st", F.struct("x", F.col("x").alias("y"))).select(
    seen(F.col("x").alias("z")).alias("aliased"), seen(F.col("st")).alias("struct"),
    seen(F.col("x"), F.col("st.y")).alias("columns")).first().asDict()
try:
    u.validate(df, "x", F.col("nope"), "gone")
    missing = None
except SchemaEnforcementError as e:
    missing = str(e).split("lacks: ")[1].split(";")[0]
print(json.dumps({"n": len(rows), "ok": all(r.p == r.x * 3 for r in rows),
                  "ordered": [r.x for r in rows] == sorted(r.x for r in rows), "port": port,
                  "names": names, "missing": missing}))
spark.stop()
server.stop()
'''


def test_spark_connect_session():
    pytest.importorskip("grpc")
    out = run_json(CONNECT_SCRIPT)
    assert out["port"] != 15002
    assert out == {"n": 500, "ok": True, "ordered": True, "port": out["port"],
                   "names": {"aliased": "z", "struct": "x,y", "columns": "x,y"}, "missing": "['nope', 'gone']"}
