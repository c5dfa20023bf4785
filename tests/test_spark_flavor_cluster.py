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

LOG_CAPTURE = r'''
import logging
class _Captured(logging.Handler):
    def __init__(self):
        super().__init__()
        self.records = []
    def emit(self, record):
        self.records.append((record.levelname, record.getMessage()))
captured = _Captured()
for _name in ("spark_models.flavors.spark", "spark_models.staging"):
    logging.getLogger(_name).addHandler(captured)
    logging.getLogger(_name).setLevel(logging.INFO)
def staged_paths():
    return [m.rsplit(" through ", 1)[1] for _, m in captured.records if " through " in m]
'''

CLUSTER = r'''
import json, os, sys, tempfile
from pathlib import Path
os.environ["PYSPARK_PYTHON"] = sys.executable
os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"
sys.path.insert(0, {root!r})
from tests.helpers.sessions import spark_builder
import spark_models.spark
from spark_models.mlmodel import Model
spark = spark_builder("local-cluster[2,1,1024]").config("spark.executor.memory", "512m").getOrCreate()
''' + PIPELINE + LOG_CAPTURE + r'''
base = Path(tempfile.mkdtemp())
dfs = base / "dfs"  # not created here: only staging through it creates it
out = {{}}
logging.getLogger("mleap_bridge.ops.tree_export").addHandler(captured)
logging.getLogger("mleap_bridge.ops.tree_export").setLevel(logging.DEBUG)
for name, model in (("lr", lr), ("rf", rf)):
    spark_models.spark.save_model(model, base / name, dfs_tmpdir=dfs.as_uri())
    staged_after_save = sorted(os.listdir(dfs))
    loaded = spark_models.spark.load_model(str(base / name), dfs_tmpdir=dfs.as_uri())
    out[name] = {{"same": preds(loaded) == preds(model), "left_in_dfs": staged_after_save + sorted(os.listdir(dfs)),
                 "has_data": (base / name / "sparkml" / "stages").is_dir(),
                 "bundle": "mleap" in Model.load(base / name).flavors}}
out["tree_reads"] = [m for _, m in captured.records if m.startswith("Read ")]
# the default staging dir on a non-local master: /tmp/spark-models-dfs on the default (here local) file system
default_root = Path("/tmp/spark-models-dfs")
before = set(os.listdir(default_root)) if default_root.is_dir() else set()
captured.records.clear()
spark_models.spark.save_model(lr, base / "default")
loaded = spark_models.spark.load_model(str(base / "default"))
after = set(os.listdir(default_root)) if default_root.is_dir() else set()
out["default"] = {{"same": preds(loaded) == preds(lr), "staged": staged_paths(),
                  "still_there": [p for p in staged_paths() if Path(p).exists()], "left_over": sorted(after - before)}}
print(json.dumps(out))
spark.stop()
'''


def test_save_and_load_stage_through_a_dfs_dir_under_local_cluster():
    out = run_json(CLUSTER.format(root=ROOT))
    for name in ("lr", "rf"):
        assert out[name] == {"same": True, "left_in_dfs": [], "has_data": True, "bundle": True}, name
    reads = out["tree_reads"]  # the forest's nodes come from the sparkml/ copied back from the DFS
    assert len(reads) == 1 and "/rf/sparkml/stages/1_" in reads[0], reads
    default = out["default"]
    assert default["same"] is True
    assert len(default["staged"]) == 2 and all(p.startswith("/tmp/spark-models-dfs/") for p in default["staged"])
    assert default["still_there"] == [] and default["left_over"] == []


CONNECT = r'''
import json, os, shutil, sys, tempfile
from pathlib import Path
os.environ["PYSPARK_PYTHON"] = sys.executable
from pyspark.sql import SparkSession
from pyspark.sql.connect.session import SparkSession as RemoteSparkSession

# A local Connect server on a free (ephemeral) port: remote("local[2]") always dials 15002, so
# parallel runs would collide.
server = (SparkSession.builder.master("local[2]").config("spark.ui.enabled", "false")
          .config("spark.plugins", "org.apache.spark.sql.connect.SparkConnectPlugin")
          .config("spark.connect.grpc.binding.port", "0").getOrCreate())
port = getattr(getattr(server._jvm, "org.apache.spark.sql.connect.service.SparkConnectService$"), "MODULE$").localPort()
os.environ["SPARK_CONNECT_MODE_ENABLED"] = "1"  # as remote("local") sets it: pyspark.ml then runs over Connect
spark = RemoteSparkSession.builder.remote(f"sc://localhost:{port}").getOrCreate()
assert SparkSession.getActiveSession() is spark
import pandas as pd
import spark_models.pyfunc, spark_models.spark
from spark_models.mlmodel import Model
''' + PIPELINE + LOG_CAPTURE + r'''
from pyspark.ml import PipelineModel
from pyspark.ml.util import JavaMLReadable, JavaMLWritable
from pyspark.ml.wrapper import JavaTransformer

class ThirdParty(JavaTransformer, JavaMLReadable, JavaMLWritable):
    # a stage from a library whose JVM classes the Connect server does not have
    def __init__(self):
        super().__init__()
        self._java_obj = self._new_java_obj("com.example.ml.ThirdPartyTransformer", self.uid)

def error_of(call):
    try:
        call()
    except Exception as e:
        return [type(e).__name__, str(e)]
    return None

base = Path(tempfile.mkdtemp())
frame = pd.DataFrame({"x": [1.0, 5.0, 6.0], "kind": ["a", "z", "c"]})
out = {}
spark_models.spark.save_model(lr, base / "lr", dfs_tmpdir=(base / "dfs").as_uri())
out["dfs_warning"] = [m for level, m in captured.records if level == "WARNING" and "dfs_tmpdir" in m]
out["dfs_created"] = (base / "dfs").exists()
out["layout"] = sorted(os.listdir(base / "lr" / "sparkml"))
out["same"] = preds(spark_models.spark.load_model(str(base / "lr"))) == preds(lr)
for runtime in ("auto", "spark"):
    model = spark_models.pyfunc.load_model(str(base / "lr"), model_config={"runtime": runtime})
    out[runtime] = [type(model._model_impl).__name__, model.predict(frame).tolist() == preds(lr)]
spark_models.spark.save_model(rf, base / "rf")  # the forest's nodes are read from the sparkml/ the server wrote
rf_pyfunc = spark_models.pyfunc.load_model(str(base / "rf"))
out["rf"] = ["mleap" in Model.load(base / "rf").flavors, type(rf_pyfunc._model_impl).__name__,
             rf_pyfunc.predict(frame).tolist() == preds(rf)]
import mleap_bridge
mleap_bridge.to_bundle(rf, base / "rf_direct")  # a temporary save by the (local) server
out["rf_direct"] = mleap_bridge.load_bundle(base / "rf_direct").transform(frame)["prediction"].tolist() == preds(rf)
spark_models.spark.save_model(lr, base / "lr_plain", mleap=False)
out["udf_refused"] = error_of(lambda: spark_models.pyfunc.spark_udf(spark, str(base / "lr_plain")))
out["save_unsupported"] = error_of(lambda: spark_models.spark.save_model(PipelineModel([ThirdParty()]), base / "tp"))
out["tp_removed"] = not (base / "tp").exists()
size = "spark.connect.session.connectML.mlCache.memoryControl.maxModelSize"
spark.conf.set(size, "16")  # a Connect-only limit on the models the server holds
out["load_unsupported"] = error_of(lambda: spark_models.spark.load_model(str(base / "lr")))
spark.conf.unset(size)
shutil.copytree(base / "lr", base / "broken")
for part in (base / "broken" / "sparkml" / "metadata").iterdir():
    part.unlink() if part.name.startswith(".") else part.write_text("{not json")
out["load_broken"] = error_of(lambda: spark_models.spark.load_model(str(base / "broken")))
out["log"] = captured.records
print(json.dumps(out))
spark.stop()
server.stop()
'''


def test_spark_connect_session_saves_loads_and_names_what_it_cannot_do():
    pytest.importorskip("grpc")
    out = run_json(CONNECT)
    assert out["layout"] == ["metadata", "stages"] and out["same"] is True, out
    assert len(out["dfs_warning"]) == 1 and "ignored under Spark Connect" in out["dfs_warning"][0]
    assert out["dfs_created"] is False
    assert out["auto"] == ["BundlePyfunc", True] and out["spark"] == ["SparkPipelinePyfunc", True]
    assert out["rf"] == [True, "BundlePyfunc", True] and out["rf_direct"] is True  # Connect-fitted forests get a bundle
    kind, message = out["udf_refused"]  # no classic session to convert a bundle-less pipeline with
    assert kind == "NotSupportedError" and "/lr_plain" in message and "classic SparkSession" in message
    assert "spark_models.spark.transform(df, " in message and "save_model(spark_models.spark.load_model(" in message
    kind, message = out["save_unsupported"]
    assert kind == "NotSupportedError" and "Spark Connect cannot save" in message
    assert "ThirdParty" in message and "com.example.ml.ThirdPartyTransformer" in message and "/tp/sparkml" in message
    assert "JVM stacktrace" not in message and out["tp_removed"] is True
    kind, message = out["load_unsupported"]
    assert kind == "NotSupportedError" and "Spark Connect cannot load" in message and "/lr/sparkml" in message
    assert "MODEL_SIZE_OVERFLOW" in message
    assert out["load_broken"][0] == "JSONDecodeError"  # an ordinary failure is not relabelled as unsupported
