"""Benchmark: spark_udf against the compute floor, a hand-written pandas UDF and MLflow.

Run:  python bench/spark_udf.py [--rows 1000000] [--repeats 3]

Workload: local[2], N rows x 8 double columns (cached), sklearn RandomForest (50 trees,
depth 8) and LogisticRegression. Every job writes to Spark's ``noop`` sink so each
prediction is computed. Prints, per model:

- raw single-process ``model.predict`` on a numpy matrix, and that / cores (the floor);
- warm (best of N, one process): hand-written ``Iterator[Tuple[pd.Series, ...]]`` pandas
  UDF, our ``spark_udf``, MLflow's ``spark_udf`` (if ``mlflow`` is importable);
- first job in a fresh process (median of 3 processes per method, UDF creation included);
- ratios against the baselines measured in the same run. Times are never asserted.
"""

import argparse
import json
import os
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

FEATURES = [f"f{i}" for i in range(8)]
CORES = 2
METHODS = ("hand", "ours", "mlflow")


def _training_data(rows: int = 20_000) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.random((rows, len(FEATURES))), columns=FEATURES)
    y = ((X.f0 + X.f1 * X.f2 - X.f3 + rng.normal(0, 0.1, rows)) > 0.3).astype(int).to_numpy()
    return X, y


def _save_models(root: Path) -> dict[str, str]:
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    import spark_models.sklearn
    from spark_models.models import infer_signature

    X, y = _training_data()
    models = {
        "rf": RandomForestClassifier(n_estimators=50, max_depth=8, random_state=0).fit(X, y),
        "lr": LogisticRegression().fit(X, y),
    }
    paths = {}
    for name, model in models.items():
        paths[name] = str(root / name)
        spark_models.sklearn.save_model(model, paths[name], signature=infer_signature(X, model.predict(X)))
    return paths


def _raw_predict_seconds(path: str, rows: int) -> float:
    import spark_models.sklearn

    model = spark_models.sklearn.load_model(path)
    X = np.random.default_rng(1).random((rows, len(FEATURES)))
    best = float("inf")
    for _ in range(2):
        start = time.perf_counter()
        model.predict(X)
        best = min(best, time.perf_counter() - start)
    return best


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


def _hand_written_udf(path: str):
    """What a user writes by hand: load on the driver, capture in the closure, predict on numpy."""
    from typing import Iterator, Tuple

    from pyspark.sql.functions import pandas_udf

    import spark_models.sklearn

    model = spark_models.sklearn.load_model(path)

    @pandas_udf("double")
    def predict(batches: Iterator[Tuple[pd.Series, ...]]) -> Iterator[pd.Series]:
        import warnings

        warnings.filterwarnings("ignore", message="X does not have valid feature names")
        for columns in batches:
            yield pd.Series(model.predict(np.column_stack(columns)), dtype="float64")

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


def _make_udf(method: str, spark, path: str):
    if method == "no-model":
        return _no_model_udf()
    if method == "hand":
        return _hand_written_udf(path)
    if method == "ours":
        import spark_models.pyfunc

        u = spark_models.pyfunc.spark_udf(spark, path, result_type="double")
        return lambda: u()
    import mlflow.pyfunc

    u = mlflow.pyfunc.spark_udf(spark, path, result_type="double", env_manager="local")
    return lambda: u(*FEATURES)


def _run_job(df, column) -> float:
    start = time.perf_counter()
    df.withColumn("prediction", column).write.format("noop").mode("overwrite").save()
    return time.perf_counter() - start


def _child_first(method: str, path: str, rows: int) -> dict:
    spark = _session()
    df = _input_frame(spark, rows)
    start = time.perf_counter()
    make = _make_udf(method, spark, path)
    _run_job(df, make())
    return {"first": time.perf_counter() - start}


def _child_warm(methods: list[str], path: str, rows: int, repeats: int) -> dict:
    spark = _session()
    df = _input_frame(spark, rows)
    columns = {m: _make_udf(m, spark, path)() for m in ["no-model", *methods]}
    for column in columns.values():
        _run_job(df, column)  # warm-up: workers started, model loaded
    times = {m: [] for m in columns}
    for _ in range(repeats):  # interleaved, so drift on a noisy machine hits every method alike
        for method, column in columns.items():
            times[method].append(_run_job(df, column))
    return {m: min(t) for m, t in times.items()}


# ---- orchestration ---------------------------------------------------------------------

def _child(args: list[str]) -> dict:
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    proc = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark child {args} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _first_jobs(methods: list[str], path: str, rows: int, repeats: int) -> dict:
    """Median first-job time over ``repeats`` fresh processes per method, interleaved."""
    times = {m: [] for m in methods}
    for _ in range(repeats):
        for method in methods:
            times[method].append(_child(["first", path, str(rows), method])["first"])
    return {m: float(np.median(t)) for m, t in times.items()}


def _has_mlflow() -> bool:
    try:
        import mlflow.pyfunc  # noqa: F401
    except ImportError:
        return False
    return True


def _report(name: str, raw: float, warm: dict, first: dict) -> None:
    floor = raw / CORES
    trip = warm.pop("no-model")
    print(f"\n== {name}: raw predict {raw:.2f}s single process, floor {floor:.2f}s on {CORES} cores; "
          f"Spark's Arrow round trip without a model {trip:.2f}s")
    print(f"{'method':<10}{'warm s':>9}{'/hand':>8}{'/floor':>8}{'first s':>10}{'first-hand':>12}")
    for method in warm:
        print(f"{method:<10}{warm[method]:>9.2f}{warm[method] / warm['hand']:>8.2f}{warm[method] / floor:>8.2f}"
              f"{first[method]:>10.2f}{first[method] - first['hand']:>+12.2f}")
    print(f"ours / (floor + Arrow round trip): {warm['ours'] / (floor + trip):.2f}")
    if "mlflow" in warm:
        print(f"ours vs MLflow: warm {warm['mlflow'] / warm['ours']:.2f}x faster, "
              f"first job {first['mlflow'] / first['ours']:.2f}x faster")


def main() -> None:
    import warnings

    warnings.filterwarnings("ignore", message="X does not have valid feature names")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--first-repeats", type=int, default=3, help="fresh processes per method (median)")
    parser.add_argument("--models", default="rf,lr")
    parser.add_argument("--child", nargs="*")
    ns = parser.parse_args()
    if ns.child is not None:
        kind, path, rows, *rest = ns.child
        result = (_child_first(rest[0], path, int(rows)) if kind == "first"
                  else _child_warm(rest[1:], path, int(rows), int(rest[0])))
        print(json.dumps(result))
        return
    methods = [m for m in METHODS if m != "mlflow" or _has_mlflow()]
    import platform

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, Python {platform.python_version()}")
    with tempfile.TemporaryDirectory() as tmp:
        paths = _save_models(Path(tmp))
        for name in ns.models.split(","):
            raw = _raw_predict_seconds(paths[name], ns.rows)
            warm = _child(["warm", paths[name], str(ns.rows), str(ns.repeats), *methods])
            first = _first_jobs(methods, paths[name], ns.rows, ns.first_repeats)
            _report(name, raw, warm, first)


if __name__ == "__main__":
    main()
