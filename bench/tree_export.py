"""Benchmark: exporting a tree ensemble to an MLeap bundle, per-node py4j vs Spark's node tables.

Run:  python bench/tree_export.py [--trees 100] [--depth 10] [--rows 20000]

Fits a RandomForestClassifier (local[2]) and prints, in one run:
- Spark's own ``write().save`` of the model (the reference the task is measured against);
- ``to_bundle`` the old way: every node read through py4j (the exporter's fallback);
- ``to_bundle`` the new way: Spark saves the stage to a temporary directory, pyarrow reads
  the node tables (what a direct ``mleap_bridge.to_bundle`` call does; models of at most
  2,000 nodes are still read through py4j there, which is faster for them);
- ``to_bundle`` reusing an existing Spark save (``spark_data_dir``: what
  ``spark_models.spark.save_model`` does with the ``sparkml/`` it has just written);
- ``spark_models.spark.save_model`` with ``mleap=False`` and with the bundle (default);
- the ratios, and whether the bundles' files are identical.
"""

import argparse
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)

_logger = logging.getLogger("bench.tree_export")


def _session():
    from bench.sessions import bench_session

    spark = bench_session("local[2]")
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def _forest(spark, trees: int, depth: int, rows: int):
    import numpy as np
    import pandas as pd
    from pyspark.ml.classification import RandomForestClassifier
    from pyspark.ml.feature import VectorAssembler

    rng = np.random.default_rng(0)
    x = rng.normal(size=(rows, 10))
    score = np.sin(3 * x[:, 0]) + x[:, 1] * x[:, 2] - np.abs(x[:, 3]) + 0.5 * rng.normal(size=rows)
    frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(10)]).assign(label=np.digitize(score, [-0.5, 0.5]).astype(float))
    df = VectorAssembler(inputCols=[f"f{i}" for i in range(10)], outputCol="features").transform(spark.createDataFrame(frame))
    return RandomForestClassifier(numTrees=trees, maxDepth=depth, seed=1).fit(df)


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _files(bundle: Path, uid: str) -> dict[str, bytes]:
    """The forest node's files (the wrapping pipeline's uid differs between to_bundle calls)."""
    node = bundle / "root" / f"{uid}.node"
    return {p.relative_to(node).as_posix(): p.read_bytes() for p in node.rglob("*") if p.is_file()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trees", type=int, default=100)
    parser.add_argument("--depth", type=int, default=10)
    parser.add_argument("--rows", type=int, default=20000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("py4j").setLevel(logging.WARNING)

    import spark_models.spark
    from mleap_bridge.ops import tree_export
    from mleap_bridge.spark import to_bundle

    spark = _session()
    model = _forest(spark, args.trees, args.depth, args.rows)
    out = Path(tempfile.mkdtemp(prefix="tree-export-bench-"))
    t_spark = _timed(lambda: model.write().save(str(out / "spark_save")))
    fast_choice = tree_export._py4j_is_cheaper
    tree_export._py4j_is_cheaper = lambda stage: True  # forces the old exporter: every node through py4j
    try:
        t_old = _timed(lambda: to_bundle(model, out / "old"))
    finally:
        tree_export._py4j_is_cheaper = fast_choice
    t_new = _timed(lambda: to_bundle(model, out / "new"))
    t_reuse = _timed(lambda: to_bundle(model, out / "reuse", spark_data_dir=out / "spark_save"))
    t_save_plain = _timed(lambda: spark_models.spark.save_model(model, out / "model_plain", mleap=False))
    t_save_bundle = _timed(lambda: spark_models.spark.save_model(model, out / "model_bundle"))
    bundles = [out / "old", out / "new", out / "reuse", out / "model_bundle" / "mleap" / "model"]
    files = [_files(b, model.uid) for b in bundles]
    identical = len(files[0]) > args.trees and all(f == files[0] for f in files)
    print(f"forest: {args.trees} trees, maxDepth {args.depth}, {model.totalNumNodes} nodes, {args.rows} training rows")
    print(f"Spark write().save:                          {t_spark:7.2f} s")
    print(f"to_bundle, old (py4j per node):              {t_old:7.2f} s")
    print(f"to_bundle, new (temporary save + pyarrow):   {t_new:7.2f} s   old/new {t_old / t_new:5.1f}x")
    print(f"to_bundle, new (reusing a Spark save):       {t_reuse:7.2f} s   old/new {t_old / t_reuse:5.1f}x")
    print(f"save_model mleap=False:                      {t_save_plain:7.2f} s")
    print(f"save_model with bundle (default):            {t_save_bundle:7.2f} s   bundle adds {t_save_bundle - t_save_plain:.2f} s")
    print(f"bundles identical (old, new, reuse, save_model): {identical}")
    shutil.rmtree(out, ignore_errors=True)
    spark.stop()


if __name__ == "__main__":
    main()
