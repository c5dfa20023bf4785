"""Which SparkSession this is (classic or Connect, local or cluster), and getting one.

A leaf module: it imports nothing of spark-models but :mod:`spark_models.exceptions`, so
:mod:`mleap_bridge` and :mod:`udf` may use it without pulling in flavors.
"""

from __future__ import annotations

import logging
from typing import Any

_logger = logging.getLogger(__name__)


def is_connect(spark: Any) -> bool:
    """Whether ``spark`` is a Spark Connect session."""
    return type(spark).__module__.startswith("pyspark.sql.connect")


def is_local_master(spark: Any) -> bool:
    """Whether ``spark`` runs in local mode (driver and executors share one machine)."""
    if is_connect(spark):
        return False
    master = spark.sparkContext.master
    return master == "local" or master.startswith("local[")


def inside_spark_task() -> bool:
    """Whether this code runs inside a Spark task (a Python worker), not on the driver."""
    from pyspark import TaskContext

    return TaskContext.get() is not None


def active_session(create: bool = True) -> Any:
    """The active SparkSession; a local one is started when there is none and ``create``."""
    from pyspark.sql import SparkSession

    spark = SparkSession.getActiveSession()
    if spark is None and create:
        from spark_models.exceptions import NotSupportedError

        if inside_spark_task():
            raise NotSupportedError(
                "A Spark ML model cannot start a SparkSession inside a Spark task; use "
                "spark_models.spark.load_model(uri).transform(df) on the driver instead"
            )
        _logger.info("No active SparkSession; starting a local one to run the Spark ML model")
        spark = (
            SparkSession.builder.master("local[*]")
            .config("spark.ui.enabled", "false")
            .config("spark.sql.execution.arrow.pyspark.enabled", "true")
            .getOrCreate()
        )
    return spark
