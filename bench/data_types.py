"""Warehouse column types through spark_udf: conversions in the JVM vs in Python, and wide tables.

    python bench/data_types.py [--rows 1000000] [--repeat 3]

1. DECIMAL(10,2) declared double, and a nullable BIGINT (10% nulls) declared long: our spark_udf
   (cast in the JVM; the long as value + null mask, rebuilt as pandas Int64) against a hand-written
   pandas UDF that receives Spark's own conversion (Decimal objects; float64 with NaN) and
   converts in Python. Both run the same trivial model, so the difference is the conversion.
2. Wide tables: a signature of 100 and of 1,000 double columns — spark_udf creation, applying
   ``u()`` (building and analysing the expressions) and a 100k-row job; per-column costs should
   stay flat (nothing quadratic in the column count).

Prints best-of-N seconds and ratios measured in the same run.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import spark_models.pyfunc  # noqa: E402
from bench.sessions import bench_session  # noqa: E402
from spark_models.models import ModelSignature  # noqa: E402
from spark_models.types import ColSpec, Schema  # noqa: E402


class Twice(spark_models.pyfunc.PythonModel):
    def predict(self, context, model_input):
        column = model_input.iloc[:, 0]
        return column.astype("float64").to_numpy() * 2.0


class RowSum(spark_models.pyfunc.PythonModel):
    def predict(self, context, model_input):
        return model_input.to_numpy().sum(axis=1)


def _best(run, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def _save(python_model, specs: list[ColSpec]) -> str:
    path = tempfile.mkdtemp(prefix="bench-types-") + "/m"
    spark_models.pyfunc.save_model(path, python_model=python_model,
                                   signature=ModelSignature(Schema(specs), Schema([ColSpec("double")])))
    return path


def _conversion(spark, rows: int, repeat: int) -> None:
    from pyspark.sql import functions as F
    from pyspark.sql.functions import pandas_udf

    df = spark.range(rows).select(
        (F.col("id") % 100000 / 100).cast("decimal(10,2)").alias("price"),
        F.when(F.col("id") % 10 == 0, None).otherwise(F.col("id")).alias("count"),
    ).cache()
    df.count()

    @pandas_udf("double")
    def decimal_in_python(s: pd.Series) -> pd.Series:
        return s.astype("float64") * 2.0  # Decimal objects → float, in Python

    @pandas_udf("double")
    def nullable_in_python(s: pd.Series) -> pd.Series:
        return s.astype("Int64").astype("float64") * 2.0  # float64 with NaN → Int64, in Python

    cases = [("decimal(10,2) as double", "price", ColSpec("double", "x"), decimal_in_python),
             ("nullable bigint as long", "count", ColSpec("long", "x"), nullable_in_python)]
    print(f"\n== conversions, {rows:,} rows, best of {repeat} (seconds)")
    for title, column, spec, hand in cases:
        ours = spark_models.pyfunc.spark_udf(spark, _save(Twice(), [spec]))
        jvm = _best(lambda: df.select(ours(x=column)).write.format("noop").mode("overwrite").save(), repeat)
        python = _best(lambda: df.select(hand(column)).write.format("noop").mode("overwrite").save(), repeat)
        print(f"{title:28s} JVM cast {jvm:6.2f}   Python-side {python:6.2f}   Python/JVM {python / jvm:5.2f}x")
    df.unpersist()


def _wide(spark, repeat: int) -> None:
    from pyspark.sql import functions as F

    print("\n== wide tables, 100,000 rows, best of {} (seconds)".format(repeat))
    per_column = {}
    for n in (100, 1000):
        names = [f"f{i}" for i in range(n)]
        path = _save(RowSum(), [ColSpec("double", c) for c in names])
        df = spark.range(100_000).select(*[F.rand(i).alias(c) for i, c in enumerate(names)]).cache()
        df.count()
        create = _best(lambda: spark_models.pyfunc.spark_udf(spark, path), repeat)
        u = spark_models.pyfunc.spark_udf(spark, path)
        apply = _best(lambda: df.withColumn("p", u()), repeat)
        job = _best(lambda: df.withColumn("p", u()).write.format("noop").mode("overwrite").save(), repeat)
        per_column[n] = (apply / n, job / n)
        print(f"{n:5d} columns   spark_udf {create:5.2f}   apply u() {apply:5.2f}   job {job:6.2f}")
        df.unpersist()
    apply_ratio = per_column[1000][0] / per_column[100][0]
    job_ratio = per_column[1000][1] / per_column[100][1]
    print(f"per-column cost, 1,000 vs 100 columns: apply {apply_ratio:.2f}x, job {job_ratio:.2f}x (1.0 = linear)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    spark = bench_session("local[2]")
    spark.sparkContext.setLogLevel("ERROR")
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}, numpy {np.__version__}")
    _conversion(spark, args.rows, args.repeat)
    _wide(spark, args.repeat)
    spark.stop()


if __name__ == "__main__":
    main()
