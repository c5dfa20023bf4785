"""Benchmark: mleap_bridge's numpy runtime against Spark on the airbnb LR fixture pipeline (and the RF one).

Run:  python bench/mleap_bridge.py [--batch 100000]

In one run it prints:
- single-row latency (median): ``transform_row(dict)``, ``transform(1-row DataFrame)`` and
  Spark local ``transform`` of a 1-row DataFrame (creation + collect);
- a batch of N rows: the runtime's ``transform(pandas_df)`` vs Spark local: DataFrame
  creation from the same pandas frame, ``transform`` and ``toPandas`` of the prediction;
- ratios. The Spark pipeline is the same bundle converted with ``to_spark``;
- the airbnb RandomForest bundle (20 trees) through the runtime: ``transform_row`` and the batch.
"""

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)

import mleap_bridge  # noqa: E402

BUNDLE = ROOT / "tests" / "fixtures" / "mleap" / "airbnb.model.lr.zip"
FOREST = ROOT / "tests" / "fixtures" / "mleap" / "airbnb.model.rf.zip"
FRAME = ROOT / "tests" / "fixtures" / "mleap" / "frame.airbnb.json"


def _median_us(fn, n: int) -> float:
    for _ in range(min(n, 50)):
        fn()
    times = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times)) * 1e6


def _batch(frame: pd.DataFrame, rows: int, bundle: Path = BUNDLE) -> pd.DataFrame:
    """``rows`` records varying the fixture row, with every category the bundle knows."""
    model = mleap_bridge.read_bundle(bundle)
    labels = {}
    for node in model.root.children[0].children:
        if node.op == "string_indexer":
            labels[node.input()] = node.attr("labels", "list")
    rng = np.random.default_rng(0)
    out = pd.concat([frame] * rows, ignore_index=True)
    for column in out.columns:
        if column in labels:
            out[column] = rng.choice(labels[column], rows)
        elif out[column].dtype.kind == "f":
            out[column] = out[column].to_numpy() * rng.uniform(0.5, 1.5, rows)
    return out


def _best(fn, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=100_000)
    parser.add_argument("--row-calls", type=int, default=5000)
    ns = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cpus, Python {platform.python_version()}")

    runtime = mleap_bridge.load_bundle(BUNDLE)
    frame = mleap_bridge.read_leapframe(FRAME)
    row = frame.iloc[0].to_dict()
    row_us = _median_us(lambda: runtime.transform_row(row), ns.row_calls)
    frame_us = _median_us(lambda: runtime.transform(frame), ns.row_calls)

    from bench.sessions import bench_session

    spark = bench_session("local[2]")
    spark.sparkContext.setLogLevel("ERROR")
    pipeline = mleap_bridge.to_spark(BUNDLE)
    spark_row_us = _median_us(lambda: pipeline.transform(spark.createDataFrame(frame)).select("price_prediction").collect(), 50)
    print("\n== single row (median)")
    print(f"transform_row(dict)        {row_us:10.1f} us")
    print(f"transform(1-row DataFrame) {frame_us:10.1f} us")
    print(f"Spark local transform      {spark_row_us:10.1f} us   ({spark_row_us / row_us:.0f}x transform_row)")

    batch = _batch(frame, ns.batch)
    ours = runtime.transform(batch)["price_prediction"].to_numpy()
    theirs = pipeline.transform(spark.createDataFrame(batch)).select("price_prediction").toPandas()["price_prediction"]
    assert np.allclose(ours, theirs.to_numpy(), rtol=1e-9), "runtime and Spark disagree"
    runtime_s = _best(lambda: runtime.transform(batch))
    spark_s = _best(lambda: pipeline.transform(spark.createDataFrame(batch)).select("price_prediction").toPandas())
    print(f"\n== batch of {ns.batch} rows (best of 3)")
    print(f"mleap_bridge transform     {runtime_s:8.3f} s")
    print(f"Spark local transform      {spark_s:8.3f} s   ({spark_s / runtime_s:.1f}x slower)")
    spark.stop()

    forest = mleap_bridge.load_bundle(FOREST)
    forest_row_us = _median_us(lambda: forest.transform_row(row), ns.row_calls)
    forest_batch = _batch(frame, ns.batch, FOREST)
    forest_s = _best(lambda: forest.transform(forest_batch))
    print("\n== airbnb RandomForest bundle (20 trees), runtime only")
    print(f"transform_row(dict)        {forest_row_us:10.1f} us   (median)")
    print(f"transform {ns.batch} rows     {forest_s:8.3f} s   (best of 3)")


if __name__ == "__main__":
    main()
