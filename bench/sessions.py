"""The SparkSession every benchmark runs in: local, UI and progress bar off, Arrow on."""

import os
import sys

os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)


def bench_session(master: str = "local[2]", **conf: str):
    from pyspark.sql import SparkSession

    builder = (SparkSession.builder.master(master).appName("spark-models-bench")
               .config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false")
               .config("spark.sql.execution.arrow.pyspark.enabled", "true").config("spark.driver.memory", "2g")
               .config("spark.sql.shuffle.partitions", "2"))
    for key, value in conf.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()
