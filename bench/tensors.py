"""Benchmark: a small torch CNN on an image tensor column through spark_udf, a hand-written pandas
UDF and MLflow's spark_udf, against the model's own single-process throughput.

Run:  python bench/tensors.py [--rows 100000] [--repeats 5] [--first-repeats 3]

Workload: local[2], N rows (cached) of one ``array<float>`` column of 192 values (a 3 x 8 x 8 image
flattened in C order, generated in Spark with ``rand``); a CNN defined here (Conv2d(3,8,3)-ReLU-
Conv2d(8,16,3)-ReLU-AdaptiveAvgPool-Linear(16,2), seed 0) with the signature
``TensorSpec(float32, (-1, 3, 8, 8)) -> TensorSpec(float32, (-1, 2))``, saved pickled by
``spark_models.pytorch`` and by ``mlflow.pytorch``. Every method returns ``array<float>`` of 2 and
every job writes to Spark's ``noop`` sink, so each prediction is computed. Prints:

- single-process throughput (rows/s): forward passes over the same N rows as one numpy array, in
  batches of 1,024, 10,000 (Spark's Arrow batch) and 50,000 (a whole partition: what merging
  Spark's batches would pass per call; tensor signatures default to ~1 MiB calls instead), with
  ``torch.set_num_threads(1)`` and with torch's default threads,
  each in a fresh process, with glibc's default malloc and with ``KEEP_FREED_MEMORY``; "ideal" is
  the best 1-thread rows/s x the cores;
- warm (best of N in one process, methods interleaved), as rows/s: Spark's Arrow round trip with a
  UDF that returns zeros (no model); a hand-written ``Iterator[pd.Series]`` pandas UDF (model loaded
  on the driver and captured in the closure, ``np.stack``, reshape, ``torch.no_grad()``, torch's
  default threads); our ``spark_udf`` (default batching, and ``batch_size=1024``); MLflow's
  ``spark_udf(env_manager="local")`` on the MLflow-saved directory (or exactly what fails); then
  the hand-written UDF and ours again in a second process under ``KEEP_FREED_MEMORY`` ("+malloc");
- first job in a fresh process (median over processes; UDF creation included);
- ratios against the baselines measured in the same run, and the load average before and after.

Before anything is timed, the Spark methods' outputs on a sample of rows are checked against the
single-process forward pass (a mismatch raises). Times are never asserted.
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

CORES = 2
SHAPE = (3, 8, 8)
WIDTH = 192  # 3 * 8 * 8
RAW_BATCHES = (1024, 10_000, 50_000)  # 50,000: one 100k-row job's partition, what default merging hands the model
WARM_METHODS = ("hand", "ours", "ours-1024", "mlflow")
FIRST_METHODS = ("hand", "ours", "mlflow")
MALLOC_METHODS = ("hand", "ours", "ours-1024")
KEEP_FREED_MEMORY = {"MALLOC_MMAP_THRESHOLD_": "4000000000", "MALLOC_TRIM_THRESHOLD_": "8000000000"}
"""glibc malloc settings under which freed memory stays in the process (no mmap per large tensor, no
trimming), so a forward pass does not page-fault its activations in again; "+malloc" rows use them."""
MALLOC_LABEL = " +malloc"
SAMPLE_EVERY = 997  # rows checked against the single-process output: id % SAMPLE_EVERY == 0


def _cnn():
    import torch
    from torch import nn

    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 2)).eval()


def _save_models(root: Path, mlflow: bool) -> dict[str, str]:
    """Our model directory and, when MLflow is importable, the same module saved by MLflow."""
    import spark_models.pytorch
    from spark_models.models import ModelSignature
    from spark_models.types import Schema, TensorSpec

    model = _cnn()
    paths = {"ours": str(root / "cnn-ours")}
    signature = ModelSignature(Schema([TensorSpec(np.float32, (-1, *SHAPE))]), Schema([TensorSpec(np.float32, (-1, 2))]))
    spark_models.pytorch.save_model(model, paths["ours"], signature=signature, serialization_format="pickle")
    if mlflow:
        import mlflow.pytorch
        from mlflow.models import ModelSignature as MlflowSignature
        from mlflow.types import Schema as MlflowSchema, TensorSpec as MlflowTensorSpec

        paths["mlflow"] = str(root / "cnn-mlflow")
        mlflow_signature = MlflowSignature(MlflowSchema([MlflowTensorSpec(np.dtype("float32"), (-1, *SHAPE))]),
                                           MlflowSchema([MlflowTensorSpec(np.dtype("float32"), (-1, 2))]))
        mlflow.pytorch.save_model(model, paths["mlflow"], signature=mlflow_signature, serialization_format="pickle",
                                  pip_requirements=["torch"])
    return paths


def _load(path: str):
    import spark_models.pytorch

    return spark_models.pytorch.load_model(path)


def _forward(model, images: np.ndarray, batch: int) -> np.ndarray:
    import torch

    out = []
    with torch.no_grad():
        for start in range(0, len(images), batch):
            out.append(model(torch.from_numpy(images[start:start + batch])).numpy())
    return np.concatenate(out)


def _child_raw(path: str, images_file: str, threads: int | None) -> dict:
    """Single-process forward passes over the job's rows in this fresh process: best of 2 per batch
    size, smallest first; ``threads`` None keeps torch's default."""
    import torch

    model = _load(path)
    images = np.load(images_file).reshape(-1, *SHAPE)
    if threads is not None:
        torch.set_num_threads(threads)
    out = {"threads": torch.get_num_threads()}
    for batch in RAW_BATCHES:
        _forward(model, images[:batch], batch)  # warm-up: kernels chosen
        best = float("inf")
        for _ in range(2):
            start = time.perf_counter()
            _forward(model, images, batch)
            best = min(best, time.perf_counter() - start)
        out[str(batch)] = len(images) / best
    return out


# ---- inside a child process ------------------------------------------------------------

def _session():
    from bench.sessions import bench_session

    spark = bench_session(f"local[{CORES}]")
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def _input_frame(spark, rows: int):
    from pyspark.sql import functions as F

    pixels = F.array(*[F.rand(seed=i) for i in range(WIDTH)]).cast("array<float>")
    df = spark.range(rows).select("id", pixels.alias("image")).cache()
    df.count()
    return df


def _hand_written_udf(path: str):
    """What a user writes by hand: load on the driver, capture in the closure, stack, reshape, forward."""
    from typing import Iterator

    import torch
    from pyspark.sql.functions import pandas_udf

    model = _load(path)

    @pandas_udf("array<float>")
    def predict(batches: Iterator[pd.Series]) -> Iterator[pd.Series]:
        for images in batches:
            x = torch.from_numpy(np.stack(images.to_numpy()).reshape(-1, *SHAPE))
            with torch.no_grad():
                out = model(x).numpy()
            yield pd.Series(list(out))

    return lambda: predict("image")


def _no_model_udf():
    """Spark's Arrow round trip alone: the same column in, zeros of the same type out, no model."""
    from typing import Iterator

    from pyspark.sql.functions import pandas_udf

    @pandas_udf("array<float>")
    def zeros(batches: Iterator[pd.Series]) -> Iterator[pd.Series]:
        for images in batches:
            yield pd.Series(list(np.zeros((len(images), 2), dtype=np.float32)))

    return lambda: zeros("image")


def _make_udf(method: str, spark, paths: dict[str, str]):
    if method == "no-model":
        return _no_model_udf()
    if method == "hand":
        return _hand_written_udf(paths["ours"])
    if method in ("ours", "ours-1024"):
        import spark_models.pyfunc

        u = spark_models.pyfunc.spark_udf(spark, paths["ours"], batch_size=1024 if method == "ours-1024" else None)
        if u.return_type.simpleString() != "array<float>":
            raise RuntimeError(f"spark_udf returns {u.return_type.simpleString()}, not array<float>")
        return lambda: u("image")
    import mlflow.pyfunc

    u = mlflow.pyfunc.spark_udf(spark, paths["mlflow"], result_type="array<float>", env_manager="local")
    return lambda: u("image")


def _run_job(df, column) -> float:
    start = time.perf_counter()
    df.withColumn("prediction", column).write.format("noop").mode("overwrite").save()
    return time.perf_counter() - start


def _failure(error: BaseException) -> str:
    """What failed, in a line: the exception's class and its first meaningful lines (Python
    worker tracebacks end with the original error)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    tail = [line for line in lines if "Error" in line or "Exception" in line][-2:] or lines[:2]
    return f"{type(error).__name__}: {' | '.join(tail)}"[:1000]


def _check_agreement(df, columns: dict, path: str) -> dict[str, float]:
    """Every method's output on the sampled rows against the single-process forward pass; raises on a
    mismatch. Returns the largest absolute difference per method."""
    from pyspark.sql import functions as F

    sample = df.where(F.col("id") % SAMPLE_EVERY == 0)
    for method, column in columns.items():
        sample = sample.withColumn(method, column)
    rows = sample.orderBy("id").collect()
    expected = _forward(_load(path), np.array([r.image for r in rows], dtype=np.float32).reshape(-1, *SHAPE), 1024)
    worst = {}
    for method in columns:
        got = np.array([r[method] for r in rows], dtype=np.float32)
        if got.shape != expected.shape or not np.allclose(got, expected, rtol=1e-4, atol=1e-5):
            raise AssertionError(f"{method} disagrees with the single-process output on {len(rows)} sampled rows: "
                                 f"got {got[:3].tolist()}, expected {expected[:3].tolist()}")
        worst[method] = float(np.abs(got - expected).max())
    return worst


def _warm_columns(methods: list[str], spark, df, paths: dict[str, str]) -> tuple[dict, dict[str, str]]:
    """Each method's column after one untimed job (workers started, model loaded); a method whose
    UDF creation or first job fails is left out and its failure kept."""
    columns, failed = {}, {}
    for method in ["no-model", *methods]:
        try:
            column = _make_udf(method, spark, paths)()
            _run_job(df, column)
        except Exception as e:  # noqa: BLE001 - recorded as the result instead of a number
            failed[method] = _failure(e)
            continue
        columns[method] = column
    return columns, failed


def _child_warm(methods: list[str], paths: dict[str, str], rows: int, repeats: int, images_file: str) -> dict:
    import pyarrow as pa

    spark = _session()
    df = _input_frame(spark, rows)
    if not os.path.exists(images_file):  # the same rows, for the single-process throughput
        column = pa.concat_arrays(df.orderBy("id").select("image").toArrow().column("image").chunks)
        np.save(images_file, column.flatten().to_numpy().reshape(rows, WIDTH))
    columns, failed = _warm_columns(methods, spark, df, paths)
    agreement = _check_agreement(df, {m: c for m, c in columns.items() if m != "no-model"}, paths["ours"])
    times = {m: [] for m in columns}
    for _ in range(repeats):  # interleaved, so drift on a noisy machine hits every method alike
        for method, column in columns.items():
            times[method].append(_run_job(df, column))
    return {"warm": {m: min(t) for m, t in times.items()}, "failed": failed, "agreement": agreement}


def _child_first(method: str, paths: dict[str, str], rows: int) -> dict:
    spark = _session()
    df = _input_frame(spark, rows)
    start = time.perf_counter()
    _run_job(df, _make_udf(method, spark, paths)())
    return {"first": time.perf_counter() - start}


# ---- orchestration ---------------------------------------------------------------------

def _child(args: dict, malloc: bool = False) -> dict:
    env = dict(os.environ, PYTHONWARNINGS="ignore", **(KEEP_FREED_MEMORY if malloc else {}))
    proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(args)], capture_output=True, text=True, env=env,
                          check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark child {args} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _run_child(args: dict) -> dict:
    if args["kind"] == "first":
        return _child_first(args["method"], args["paths"], args["rows"])
    if args["kind"] == "raw":
        return _child_raw(args["path"], args["images"], args["threads"])
    return _child_warm(args["methods"], args["paths"], args["rows"], args["repeats"], args["images"])


def _raw(path: str, images: str) -> dict[str, dict]:
    """Single-process rows/s per allocator setting and thread count, each in a fresh process."""
    out = {}
    for malloc in (False, True):
        for threads in (1, None):
            measured = _child({"kind": "raw", "path": path, "images": images, "threads": threads}, malloc)
            count = measured.pop("threads")
            label = "1 thread" if threads else f"default ({count} threads)"
            out[label + (MALLOC_LABEL if malloc else "")] = measured
    return out


def _first_jobs(methods: list[str], paths: dict[str, str], rows: int, repeats: int) -> dict:
    """Median first-job time over ``repeats`` fresh processes per method, interleaved."""
    times = {m: [] for m in methods}
    for _ in range(repeats):
        for method in methods:
            times[method].append(_child({"kind": "first", "method": method, "paths": paths, "rows": rows})["first"])
    return {m: float(np.median(t)) for m, t in times.items()}


def _has_mlflow() -> bool:
    try:
        import mlflow.pyfunc  # noqa: F401
    except ImportError:
        return False
    return True


def _versions() -> str:
    import pyspark
    import torch

    return f"Python {platform.python_version()}, torch {torch.__version__}, pyspark {pyspark.__version__}"


def _load_text() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def _report_raw(rows: int, raw: dict[str, dict]) -> float:
    """Prints the single-process table; returns the ideal rows/s (best 1-thread rows/s x cores)."""
    print(f"\n== single process, {rows:,} rows as one float32 array, rows/s by batch size")
    print(f"{'threads':<28}" + "".join(f"{f'batch {b:,}':>16}" for b in RAW_BATCHES))
    for label, rates in raw.items():
        print(f"{label:<28}" + "".join(f"{rates[str(b)]:>16,.0f}" for b in RAW_BATCHES))
    ideal = max(v for label, rates in raw.items() if label.startswith("1 thread") for v in rates.values()) * CORES
    print(f"ideal = best 1-thread rows/s x {CORES} cores: {ideal:,.0f} rows/s ({rows / ideal:.3f} s)")
    return ideal


def _report(rows: int, raw: dict, warm: dict, first: dict, failed: dict, agreement: dict) -> None:
    ideal = _report_raw(rows, raw)
    print(f"\n== Spark local[{CORES}], {rows:,} cached rows of array<float>[{WIDTH}] -> array<float>[2], warm = best of N")
    print(f"{'method':<22}{'warm s':>9}{'rows/s':>12}{'/hand':>8}{'/ideal':>8}{'first s':>10}{'first-hand':>12}")
    for method, seconds in warm.items():
        rate = rows / seconds
        line = f"{method:<22}{seconds:>9.2f}{rate:>12,.0f}{rate / (rows / warm['hand']):>8.2f}{rate / ideal:>8.2f}"
        if method in first:
            line += f"{first[method]:>10.2f}{first[method] - first['hand']:>+12.2f}"
        print(line)
    for method, why in failed.items():
        print(f"{method:<22}FAILED: {why}")
    print("agreement with the single-process output (max |diff| on sampled rows): "
          + ", ".join(f"{m} {d:.1e}" for m, d in agreement.items()))
    for method, label in (("ours", "default batching"), ("ours-1024", "batch_size=1024")):
        if method in warm:
            print(f"{label}: ours rows/s / hand-written rows/s {warm['hand'] / warm[method]:.2f}; "
                  f"ours rows/s / ideal {rows / warm[method] / ideal:.2f}")
    if "mlflow" in warm:
        print(f"MLflow time / ours time (above 1: ours is faster): warm {warm['mlflow'] / warm['ours']:.2f}"
              + (f", first job {first['mlflow'] / first['ours']:.2f}" if "mlflow" in first else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--first-repeats", type=int, default=3, help="fresh processes per method (median)")
    parser.add_argument("--child")
    ns = parser.parse_args()
    if ns.child is not None:
        print(json.dumps(_run_child(json.loads(ns.child))))
        return
    mlflow = _has_mlflow()
    warm_methods = [m for m in WARM_METHODS if m != "mlflow" or mlflow]
    print(f"machine: {platform.machine()}, {os.cpu_count()} cpus, {_versions()}; load average {_load_text()}")
    with tempfile.TemporaryDirectory() as tmp:
        paths = _save_models(Path(tmp), mlflow)
        images = str(Path(tmp) / "images.npy")
        args = {"kind": "warm", "paths": paths, "rows": ns.rows, "repeats": ns.repeats, "images": images}
        result = _child({**args, "methods": warm_methods})
        kept = _child({**args, "methods": MALLOC_METHODS}, malloc=True)
        for key in ("warm", "failed", "agreement"):
            result[key].update({f"{m}{MALLOC_LABEL}": v for m, v in kept[key].items() if m != "no-model"})
        raw = _raw(paths["ours"], images)
        first = _first_jobs([m for m in FIRST_METHODS if m in result["warm"]], paths, ns.rows, ns.first_repeats)
    _report(ns.rows, raw, result["warm"], first, result["failed"], result["agreement"])
    print(f"load average after: {_load_text()}")


if __name__ == "__main__":
    main()
