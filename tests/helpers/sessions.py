"""The SparkSession settings every test session uses (local, local-cluster or in a subprocess)."""


def spark_builder(master: str = "local[2]"):
    """A SparkSession builder: UI off, Arrow on, small shuffles, UTC."""
    from pyspark.sql import SparkSession

    return (
        SparkSession.builder.master(master)
        .appName("spark-models-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.default.parallelism", "2")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.driver.memory", "2g")
        .config("spark.sql.session.timeZone", "UTC")
    )
