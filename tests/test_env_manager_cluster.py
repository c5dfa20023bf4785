"""env_manager="uv" under local-cluster[2,1,1024]: separate executors, one build, faults and cancellation."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.isolation import run_json

pytestmark = [pytest.mark.spark, pytest.mark.slow]

SCRIPT = r'''
import json, os, signal, sys, threading, time
os.environ["PYSPARK_PYTHON"] = sys.executable
os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"
os.environ["SPARK_MODELS_ENV_CACHE"] = {cache!r}
sys.path.insert(0, {root!r})
import numpy as np, pandas as pd
from tests.helpers.sessions import spark_builder
import spark_models.pyfunc
from spark_models.envs.build import builds_of, ensure_env
from spark_models.envs.spec import env_spec
from udf import spark_udf

EVER = set()
BOOT = ("from spark_models.envs" + ".child import main").encode()  # split: this script's own command line has it too

def _descends_from_us(pid):
    me = os.getpid()
    while pid > 1:
        if pid == me:
            return True
        try:
            with open(f"/proc/{{pid}}/stat") as f:
                pid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            return False
    return False

def children():
    """PIDs of live scorer processes started under this script (Spark's executors and their workers)."""
    found = set()
    for pid in map(int, filter(str.isdigit, os.listdir("/proc"))):
        try:
            with open(f"/proc/{{pid}}/cmdline", "rb") as f:
                if BOOT not in f.read() or pid == os.getpid():
                    continue
        except OSError:
            continue
        if pid in EVER or _descends_from_us(pid):
            found.add(pid)
    EVER.update(found)
    return found

def gone(pids, seconds=30):
    deadline = time.time() + seconds
    while time.time() < deadline and pids & children():
        time.sleep(0.2)
    return not (pids & children())

class Doubler(spark_models.pyfunc.PythonModel):
    def __init__(self, sleep):
        self.sleep = sleep
    def predict(self, context, model_input, params=None):
        time.sleep(self.sleep)
        return model_input["x"] * 2

spark = (spark_builder("local-cluster[2,1,1024]").config("spark.executor.memory", "512m")
         .config("spark.task.maxFailures", "4").config("spark.sql.execution.arrow.maxRecordsPerBatch", "500")
         .config("spark.python.task.killTimeout", "1s").getOrCreate())
sc = spark.sparkContext
out = {{}}

# 1. a model pinned to another scikit-learn, scored by both executors in its environment
model_dir = {model_dir!r}
inputs = pd.read_parquet({inputs!r})
expected = np.load({expected!r})
u = spark_udf(spark, model_dir, env_manager="uv")
df = spark.createDataFrame(inputs.assign(id=np.arange(len(inputs)))).repartition(4)
got = df.withColumn("p", u()).toPandas().sort_values("id")
out["old_ids"] = got.id.tolist() == list(range(len(inputs)))
out["old_equal"] = bool(np.array_equal(got.p.to_numpy(), expected))
out["executors"] = df.rdd.mapPartitions(lambda _: [os.getppid()]).distinct().count()  # one daemon per executor

# 2. two executors needing an environment nobody built yet: one build
fresh = {fresh!r}
spec = env_spec(model_dir)
def build(_):
    import socket
    yield (str(ensure_env(spec, cache_dir=fresh).root), os.getppid())
built = sc.parallelize(range(2), 2).mapPartitions(build).collect()
out["race_roots"] = len({{r for r, _ in built}})
out["race_pids"] = len({{p for _, p in built}})
out["race_builds"] = len(builds_of(spec.key, fresh))

# 3. the scorer process killed mid-job: every row scored exactly once
path = {tmp!r} + "/doubler"
spark_models.pyfunc.save_model(path, python_model=Doubler(0.05))
d = spark_udf(spark, path, env_manager="uv")
rows = spark.range(0, 40000, numPartitions=8).selectExpr("id", "cast(id as double) as x")
killed = []
def killer():
    time.sleep(1.0)  # the job is under way
    deadline = time.time() + 60
    while time.time() < deadline and not killed:
        for pid in children():
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            except ProcessLookupError:
                pass
        time.sleep(0.3)
k = threading.Thread(target=killer)
warm = rows.limit(10).withColumn("p", d("x")).collect()  # the scorers exist now
k.start()
scored = rows.withColumn("p", d("x")).toPandas().sort_values("id")
k.join()
out["fault_killed"] = len(killed)
out["fault_ids"] = scored.id.tolist() == list(range(40000))
out["fault_values"] = bool((scored.p == scored.x * 2).all())

# 4. a job cancelled while its scorers work: none of them survives
slow_path = {tmp!r} + "/slow"
spark_models.pyfunc.save_model(slow_path, python_model=Doubler(5.0))
s = spark_udf(spark, slow_path, env_manager="uv")
before = children()
seen = set()
errors = []
def run():
    try:
        spark.range(0, 100000, numPartitions=4).selectExpr("cast(id as double) as x").withColumn("p", s("x")).collect()
    except Exception as e:
        errors.append(type(e).__name__)
t = threading.Thread(target=run)
t.start()
deadline = time.time() + 120
while time.time() < deadline and len(children() - before) < 2:
    time.sleep(0.2)
time.sleep(1.0)
seen = children() - before
sc.cancelAllJobs()
t.join(120)
out["cancel_seen"] = len(seen)
out["cancel_error"] = errors
out["cancel_gone"] = gone(seen)
spark.stop()
out["all_gone"] = gone(set(EVER))
print(json.dumps(out))
'''


def test_env_manager_on_separate_executors(old_model, env_root, tmp_path):
    model_dir, _, _ = old_model
    cache = env_root / "cache"
    cache.mkdir(mode=0o700, exist_ok=True)
    out = run_json(SCRIPT.format(root=str(Path(__file__).resolve().parents[1]), cache=str(cache),
                                 model_dir=str(model_dir), inputs=str(model_dir.parent / "inputs.parquet"),
                                 expected=str(model_dir.parent / "expected.npy"), fresh=str(tmp_path / "fresh"),
                                 tmp=str(tmp_path)), timeout=900)
    assert out["executors"] == 2
    assert out["old_ids"] and out["old_equal"]
    assert (out["race_roots"], out["race_pids"], out["race_builds"]) == (1, 2, 1)
    assert out["fault_killed"] >= 1 and out["fault_ids"] and out["fault_values"]
    assert out["cancel_seen"] >= 2 and out["cancel_error"] and out["cancel_gone"]
    assert out["all_gone"]
