"""Benchmark: gradient-boosted trees (xgboost, lightgbm) through spark_udf, a hand-written pandas
UDF and MLflow's spark_udf, with the thread knob on and off.

Run:  python bench/gbdt.py [--rows 1000000] [--repeats 3] [--first-repeats 3] [--libs xgboost,lightgbm]

Workload: local[2], N rows x 20 double columns (cached), one 200-tree regression model per
library (xgboost depth 6, lightgbm 31 leaves) trained on 50,000 rows. Every job writes to
Spark's ``noop`` sink so each prediction is computed. Prints, per library:

- raw single-process ``booster.predict`` on a numpy matrix with 1 thread and with the library's
  default (all cores); the floor is the 1-thread time / cores;
- warm (best of N in one process, methods interleaved): a hand-written
  ``Iterator[Tuple[pd.Series, ...]]`` pandas UDF (booster captured in the closure, library
  default threads), our ``spark_udf`` (1 thread per task: the default inside Spark), our
  ``spark_udf`` with ``model_config={"num_threads": cores}`` (the library default's thread
  count, so each of the 2 workers runs 2 threads), and MLflow's
  ``spark_udf(env_manager="local")`` on the same booster saved by ``mlflow.<library>``;
- first job in a fresh process (median over processes; UDF creation included);
- ratios against the baselines measured in the same run. Times are never asserted.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

FEATURES = [f"f{i}" for i in range(20)]
CORES = 2
TREES = 200
WARM_METHODS = ("hand", "ours", "ours-all-threads", "mlflow")
FIRST_METHODS = ("hand", "ours", "mlflow")


def _train(lib: str):
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.random((50_000, len(FEATURES))), columns=FEATURES)
    y = X.f0 + X.f1 * X.f2 - X.f3 + np.sin(6 * X.f4) + X.f5 * X.f6 * X.f7 + rng.normal(0, 0.1, len(X))
    if lib == "xgboost":
        import xgboost as xgb

        return xgb.train({"max_depth": 6, "eta": 0.1}, xgb.DMatrix(X, y), TREES), X
    import lightgbm as lgb

    return lgb.train({"objective": "regression", "verbose": -1}, lgb.Dataset(X, y), TREES), X


def _native_predict(lib: str, model, matrix: np.ndarray, threads: int | None = None) -> np.ndarray:
    """``booster.predict`` on a numpy matrix; ``threads`` 0 is the library's default (all cores)."""
    if lib == "xgboost":
        import xgboost as xgb

        if threads is not None:
            model.set_param({"nthread": threads})
        return model.predict(xgb.DMatrix(matrix, feature_names=FEATURES))
    return model.predict(matrix, **({"num_threads": threads} if threads is not None else {}))


def _save_models(root: Path, lib: str, mlflow: bool) -> dict[str, str]:
    """Our model directory and, when MLflow is importable, the same booster saved by MLflow."""
    import importlib

    from spark_models.models import infer_signature

    model, X = _train(lib)
    sample = X.head(100)
    paths = {"ours": str(root / f"{lib}-ours")}
    output = _native_predict(lib, model, sample.to_numpy())
    importlib.import_module(f"spark_models.{lib}").save_model(model, paths["ours"], signature=infer_signature(sample, output))
    if mlflow:
        import mlflow.models

        paths["mlflow"] = str(root / f"{lib}-mlflow")
        importlib.import_module(f"mlflow.{lib}").save_model(
            model, paths["mlflow"], signature=mlflow.models.infer_signature(sample, output), pip_requirements=[lib])
    return paths


def _raw_predict_seconds(lib: str, path: str, rows: int) -> dict[str, float]:
    import importlib

    model = importlib.import_module(f"spark_models.{lib}").load_model(path)
    matrix = np.random.default_rng(1).random((rows, len(FEATURES)))
    out = {}
    for label, threads in (("1 thread", 1), ("default", 0)):
        best = float("inf")
        for _ in range(2):
            start = time.perf_counter()
            _native_predict(lib, model, matrix, threads)
            best = min(best, time.perf_counter() - start)
        out[label] = best
    return out


# ---- inside a child process ------------------------------------------------------------

def _session():
    from bench.sessions import bench_session

    spark = bench_session(f"local[{CORES}]")
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def _input_frame(spark, rows: int):
    from pyspark.sql import functions as F

    df = spark.range(rows).select(*[F.rand(seed=i).alias(c) for i, c in enumerate(FEATURES)]).cache()
    df.count()
    return df


def _hand_written_udf(lib: str, path: str):
    """What a user writes by hand: load on the driver, capture in the closure, predict on numpy
    with the library's default threads."""
    import importlib
    from typing import Iterator, Tuple

    from pyspark.sql.functions import pandas_udf

    model = importlib.import_module(f"spark_models.{lib}").load_model(path)

    @pandas_udf("double")
    def predict(batches: Iterator[Tuple[pd.Series, ...]]) -> Iterator[pd.Series]:
        for columns in batches:
            yield pd.Series(_native_predict(lib, model, np.column_stack(columns)), dtype="float64")

    return lambda: predict(*FEATURES)


def _no_model_udf():
    """Spark's Arrow round trip alone: the same columns in, zeros out, no model."""
    from typing import Iterator, Tuple

    from pyspark.sql.functions import pandas_udf

    @pandas_udf("double")
    def zeros(batches: Iterator[Tuple[pd.Series, ...]]) -> Iterator[pd.Series]:
        for columns in batches:
            yield pd.Series(np.zeros(len(columns[0])))

    return lambda: zeros(*FEATURES)


def _make_udf(method: str, spark, lib: str, paths: dict[str, str]):
    if method == "no-model":
        return _no_model_udf()
    if method == "hand":
        return _hand_written_udf(lib, paths["ours"])
    if method in ("ours", "ours-all-threads"):
        import spark_models.pyfunc

        config = {"num_threads": CORES} if method == "ours-all-threads" else None
        u = spark_models.pyfunc.spark_udf(spark, paths["ours"], result_type="double", model_config=config)
        return lambda: u()
    import mlflow.pyfunc

    u = mlflow.pyfunc.spark_udf(spark, paths["mlflow"], result_type="double", env_manager="local")
    return lambda: u(*FEATURES)


def _run_job(df, column) -> float:
    start = time.perf_counter()
    df.withColumn("prediction", column).write.format("noop").mode("overwrite").save()
    return time.perf_counter() - start


def _child_first(method: str, lib: str, paths: dict[str, str], rows: int) -> dict:
    spark = _session()
    df = _input_frame(spark, rows)
    start = time.perf_counter()
    _run_job(df, _make_udf(method, spark, lib, paths)())
    return {"first": time.perf_counter() - start}


def _child_warm(methods: list[str], lib: str, paths: dict[str, str], rows: int, repeats: int) -> dict:
    spark = _session()
    df = _input_frame(spark, rows)
    columns = {m: _make_udf(m, spark, lib, paths)() for m in ["no-model", *methods]}
    for column in columns.values():
        _run_job(df, column)  # warm-up: workers started, model loaded
    times = {m: [] for m in columns}
    for _ in range(repeats):  # interleaved, so drift on a noisy machine hits every method alike
        for method, column in columns.items():
            times[method].append(_run_job(df, column))
    return {m: min(t) for m, t in times.items()}


# ---- orchestration ---------------------------------------------------------------------

def _child(args: dict) -> dict:
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(args)], capture_output=True, text=True, env=env,
                          check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark child {args} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _run_child(args: dict) -> dict:
    if args["kind"] == "first":
        return _child_first(args["method"], args["lib"], args["paths"], args["rows"])
    return _child_warm(args["methods"], args["lib"], args["paths"], args["rows"], args["repeats"])


def _first_jobs(methods: list[str], lib: str, paths: dict[str, str], rows: int, repeats: int) -> dict:
    """Median first-job time over ``repeats`` fresh processes per method, interleaved."""
    times = {m: [] for m in methods}
    for _ in range(repeats):
        for method in methods:
            times[method].append(_child({"kind": "first", "method": method, "lib": lib, "paths": paths, "rows": rows})["first"])
    return {m: float(np.median(t)) for m, t in times.items()}


def _has_mlflow() -> bool:
    try:
        import mlflow.pyfunc  # noqa: F401
    except ImportError:
        return False
    return True


def _report(lib: str, rows: int, raw: dict, warm: dict, first: dict) -> None:
    floor = raw["1 thread"] / CORES
    trip = warm.pop("no-model")
    print(f"\n== {lib}: {TREES} trees, {rows:,} rows x {len(FEATURES)} features; raw predict {raw['1 thread']:.2f}s "
          f"with 1 thread, {raw['default']:.2f}s with the library default ({CORES} cores); floor {floor:.2f}s; "
          f"Spark's Arrow round trip without a model {trip:.2f}s")
    print(f"{'method':<18}{'warm s':>9}{'/hand':>8}{'/floor':>8}{'first s':>10}{'first-hand':>12}")
    for method, seconds in warm.items():
        line = f"{method:<18}{seconds:>9.2f}{seconds / warm['hand']:>8.2f}{seconds / floor:>8.2f}"
        if method in first:
            line += f"{first[method]:>10.2f}{first[method] - first['hand']:>+12.2f}"
        print(line)
    print(f"ours / (floor + Arrow round trip): {warm['ours'] / (floor + trip):.2f}")
    print(f"thread knob: {CORES} threads per worker (the library default's count) / 1 thread per worker "
          f"(spark.task.cpus): {warm['ours-all-threads'] / warm['ours']:.2f}")
    if "mlflow" in warm:
        print(f"MLflow / ours (above 1: ours is faster): warm {warm['mlflow'] / warm['ours']:.2f}, "
              f"first job {first['mlflow'] / first['ours']:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--first-repeats", type=int, default=3, help="fresh processes per method (median)")
    parser.add_argument("--libs", default="xgboost,lightgbm")
    parser.add_argument("--child")
    ns = parser.parse_args()
    if ns.child is not None:
        print(json.dumps(_run_child(json.loads(ns.child))))
        return
    mlflow = _has_mlflow()
    warm_methods = [m for m in WARM_METHODS if m != "mlflow" or mlflow]
    first_methods = [m for m in FIRST_METHODS if m != "mlflow" or mlflow]
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, Python {platform.python_version()}")
    with tempfile.TemporaryDirectory() as tmp:
        for lib in ns.libs.split(","):
            paths = _save_models(Path(tmp), lib, mlflow)
            raw = _raw_predict_seconds(lib, paths["ours"], ns.rows)
            warm = _child({"kind": "warm", "methods": warm_methods, "lib": lib, "paths": paths, "rows": ns.rows,
                           "repeats": ns.repeats})
            first = _first_jobs(first_methods, lib, paths, ns.rows, ns.first_repeats)
            _report(lib, ns.rows, raw, warm, first)


if __name__ == "__main__":
    main()
