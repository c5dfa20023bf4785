"""``spark-models predict``: batch-score files through Spark with spark_udf (or pandas with --local)."""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import click

from spark_models.commands.errors import one_line_errors, verbose_option
from spark_models.commands.tabular_io import FORMATS, infer_format, read_pandas, read_spark, write_pandas, write_spark

_logger = logging.getLogger(__name__)
PREDICTION = "prediction"


def _session(master: str) -> tuple[Any, bool]:
    """The active SparkSession, or a new one on ``master`` (True when we created it)."""
    import os

    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        return active, False
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    spark = (
        SparkSession.builder.master(master).appName("spark-models predict")
        .config("spark.ui.showConsoleProgress", "true")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    return spark, True


def _scored_columns(df: Any, udf: Any, out_fmt: str) -> Any:
    """``df`` plus the prediction: struct results become one column per field."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    signature = udf.signature
    column = udf() if signature is not None and signature.inputs is not None and signature.inputs.has_input_names() \
        else udf(*df.columns)
    if isinstance(udf.return_type, T.StructType):
        scored = df.withColumn("__prediction", column)
        fields = [F.col(f"__prediction.`{f.name}`").alias(f.name) for f in udf.return_type.fields]
        return scored.select(*[F.col(f"`{c}`") for c in df.columns], *fields)
    if out_fmt == "csv" and isinstance(udf.return_type, T.ArrayType):
        column = F.to_json(column)  # CSV cells cannot hold arrays
    return df.withColumn(PREDICTION, column)


def _predict_spark(model_uri: str, source: str, target: str, in_fmt: str, out_fmt: str, result_type: str | None,
                   master: str) -> int:
    from spark_models.pyfunc import spark_udf

    spark, created = _session(master)
    try:
        df = read_spark(spark, source, in_fmt) if source != "-" else spark.createDataFrame(read_pandas("-", in_fmt))
        scored = _scored_columns(df, spark_udf(spark, model_uri, result_type=result_type), out_fmt)
        if target == "-":
            out = scored.toPandas()
            write_pandas(out, "-", out_fmt)
            return len(out)
        write_spark(scored, target, out_fmt)
        return spark.read.format(out_fmt).option("header", True).load(target).count() if out_fmt != "json" \
            else spark.read.json(target).count()
    finally:
        if created:
            spark.stop()


def _predict_local(model_uri: str, source: str, target: str, in_fmt: str, out_fmt: str) -> int:
    import pandas as pd

    from spark_models.pyfunc import load_model

    frame = read_pandas(source, in_fmt)
    output = load_model(model_uri).predict(frame)
    if isinstance(output, pd.DataFrame):
        result = pd.concat([frame.reset_index(drop=True), output.reset_index(drop=True)], axis=1)
    else:
        result = frame.assign(**{PREDICTION: list(output) if getattr(output, "ndim", 1) > 1 else output})
    write_pandas(result, target, out_fmt)
    return len(result)


@click.command("predict")
@click.option("-m", "--model-uri", required=True, help="Model directory or URI.")
@click.option("-i", "--input-path", required=True, help="Input file or folder; '-' reads stdin (CSV/JSON).")
@click.option("-o", "--output-path", required=True, help="Output file/folder; '-' writes stdout (CSV/JSON).")
@click.option("--format", "out_format", type=click.Choice(FORMATS), default=None, help="Output format (default: the input's).")
@click.option("--input-format", type=click.Choice(FORMATS), default=None, help="Input format (default: from the extension).")
@click.option("--result-type", default=None, help="spark_udf result type, e.g. double, 'array<double>', 'struct<a:int>'.")
@click.option("--master", default="local[*]", show_default=True, help="Spark master URL.")
@click.option("--local", "local_mode", is_flag=True, help="Score with pandas in this process; no Spark.")
@verbose_option
@one_line_errors
def predict(model_uri: str, input_path: str, output_path: str, out_format: str | None, input_format: str | None,
            result_type: str | None, master: str, local_mode: bool) -> None:
    """Score INPUT with a model and write input columns + prediction column(s) to OUTPUT."""
    start = time.perf_counter()
    in_fmt = infer_format(input_path, input_format)
    out_fmt = out_format or in_fmt
    if local_mode:
        rows = _predict_local(model_uri, input_path, output_path, in_fmt, out_fmt)
    else:
        rows = _predict_spark(model_uri, input_path, output_path, in_fmt, out_fmt, result_type, master)
    click.echo(f"Scored {rows} rows in {time.perf_counter() - start:.1f} s -> {output_path}", err=True)
