"""``spark-models predict``: batch-score files through Spark with spark_udf (or pandas with --local)."""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass
from typing import Any

import click

from spark_models.commands.errors import env_manager_option, one_line_errors, verbose_option
from spark_models.commands.save_modes import (
    MODES,
    append_parts,
    check_not_overlapping,
    local_path,
    normalize_mode,
    replace_with,
    should_score,
    staged_output,
)
from spark_models.commands.provenance import (
    COLUMNS,
    METADATA_KEY,
    announce,
    check_provenance_format,
    tag_parquet_parts,
    with_columns_pandas,
    with_columns_spark,
    write_parquet_with_metadata,
)
from spark_models.commands.tabular_io import FORMATS, infer_format, read_pandas, read_spark, write_pandas, write_spark

_logger = logging.getLogger(__name__)
PREDICTION = "prediction"


@dataclass(frozen=True)
class Provenance:
    metadata: bool = False  # --provenance: Parquet key-value metadata
    columns: bool = False  # --provenance-columns


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


def _typed_for_signature(df: Any, signature: Any) -> Any:
    """Text input (CSV/JSON) read with the signature's numeric types, as ``--local`` reads it:
    numbers become the declared float type; integers widen to the declared integer type."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    inputs = getattr(signature, "inputs", None)
    if inputs is None or inputs.is_tensor_spec() or not inputs.has_input_names():
        return df
    present = {f.name: f.dataType for f in df.schema.fields}
    integral = (T.ByteType, T.ShortType, T.IntegerType, T.LongType)
    for spec in inputs.inputs:
        source, target = present.get(spec.name), spec.type.to_spark()
        if source is None or source == target:
            continue
        widen = isinstance(target, T.LongType) or not isinstance(source, T.LongType)
        numeric_to_float = isinstance(target, (T.FloatType, T.DoubleType)) and isinstance(source, T.NumericType)
        if numeric_to_float or (isinstance(target, integral) and isinstance(source, integral) and widen):
            df = df.withColumn(spec.name, F.col(f"`{spec.name}`").cast(target))
    return df


def _predict_spark(model_uri: str, source: str, target: str, in_fmt: str, out_fmt: str, *, result_type: str | None,
                   master: str, mode: str, allow_code: bool | None, provenance: Provenance, env_manager: str) -> int:
    from spark_models.pyfunc import spark_udf

    spark, created = _session(master)
    try:
        df = read_spark(spark, source, in_fmt) if source != "-" else spark.createDataFrame(read_pandas("-", in_fmt))
        udf = spark_udf(spark, model_uri, result_type=result_type, allow_code=allow_code, env_manager=env_manager)
        if in_fmt in ("csv", "json"):
            df = _typed_for_signature(df, udf.signature)
        scored = _scored_columns(df, udf, out_fmt)
        announce("Scoring", udf.model_info)
        if provenance.columns:
            scored = with_columns_spark(scored, udf.model_info)
        if target == "-":
            out = scored.toPandas()
            write_pandas(out, "-", out_fmt)
            return len(out)
        if local_path(target) is None:
            write_spark(scored, target, out_fmt, mode)
            return df.count()
        with staged_output(target) as staged:
            write_spark(scored, staged.as_uri(), out_fmt, "errorifexists")
            if provenance.metadata:
                tag_parquet_parts(staged, udf.model_info)
            rows = _count_written(spark, staged, out_fmt)
            if mode == "append" and local_path(target).exists():
                append_parts(target, staged)
            else:
                replace_with(target, staged)
        return rows
    finally:
        if created:
            spark.stop()


def _count_written(spark: Any, path: Any, fmt: str) -> int:
    uri = path.as_uri()
    if fmt == "json":
        return spark.read.json(uri).count()
    return spark.read.format(fmt).option("header", True).load(uri).count()


def _with_predictions(frame: Any, output: Any) -> Any:
    """The input columns plus the prediction column(s), row by row (the output is aligned)."""
    import pandas as pd

    frame = frame.reset_index(drop=True)
    if isinstance(output, pd.DataFrame):
        return pd.concat([frame, output.reset_index(drop=True)], axis=1)
    values = output.to_numpy() if isinstance(output, pd.Series) else output
    return frame.assign(**{PREDICTION: list(values) if getattr(values, "ndim", 1) > 1 else values})


def _predict_local(model_uri: str, source: str, target: str, in_fmt: str, out_fmt: str, *, mode: str,
                   allow_code: bool | None, provenance: Provenance, env_manager: str) -> int:
    import pandas as pd

    from spark_models.envs.provision import load_env_model
    from spark_models.pyfunc import load_model
    from spark_models.schema.json_decoding import decode_json_columns
    from spark_models.tracking.resolve import resolve_model_source

    resolved = resolve_model_source(model_uri)
    info = resolved.as_dict()
    announce("Scoring", info)
    model = (load_model(resolved.local_dir, allow_code=allow_code) if env_manager == "local" else
             load_env_model(resolved.local_dir, env_manager=env_manager, allow_code=allow_code))
    frame = read_pandas(source, in_fmt)
    if in_fmt in ("csv", "json") and model.signature is not None:
        frame = decode_json_columns(frame, model.signature.inputs)  # text numbers read as the declared types
    result = _with_predictions(frame, model.predict(frame))
    if provenance.columns:
        result = with_columns_pandas(result, info)
    if target == "-":
        write_pandas(result, "-", out_fmt)
        return len(result)
    rows = len(result)
    if mode == "append" and local_path(target).exists():
        result = pd.concat([read_pandas(target, out_fmt), result], ignore_index=True)
    with staged_output(target) as staged:
        if provenance.metadata:
            write_parquet_with_metadata(result, str(staged), info)
        else:
            write_pandas(result, str(staged), out_fmt)
        replace_with(target, staged)
    return rows


@click.command("predict")
@click.option("-m", "--model-uri", required=True, help="Model directory or URI.")
@click.option("-i", "--input-path", required=True, help="Input file or folder; '-' reads stdin (CSV/JSON).")
@click.option("-o", "--output-path", required=True, help="Output file/folder; '-' writes stdout (CSV/JSON).")
@click.option("--format", "out_format", type=click.Choice(FORMATS), default=None, help="Output format (default: the input's).")
@click.option("--input-format", type=click.Choice(FORMATS), default=None, help="Input format (default: from the extension).")
@click.option("--result-type", default=None, help="spark_udf result type, e.g. double, 'array<double>', 'struct<a:int>'.")
@click.option("--master", default="local[*]", show_default=True, help="Spark master URL.")
@click.option("--local", "local_mode", is_flag=True, help="Score with pandas in this process; no Spark.")
@click.option("--mode", "save_mode", default="errorifexists", show_default=True,
              type=click.Choice([*MODES, "error"], case_sensitive=False),
              help="When the output exists: errorifexists, overwrite, append or ignore (Spark's save modes).")
@click.option("--allow-code/--no-allow-code", default=None,
              help="Whether the model may run its own code (pickles, code/); default: $SPARK_MODELS_ALLOW_CODE, else yes.")
@click.option("--provenance", "provenance_metadata", is_flag=True,
              help="Write the model's provenance (URI, registered name, version, alias, run id) as JSON into "
                   f"every output Parquet file's key-value metadata, key {METADATA_KEY!r} (Parquet only).")
@click.option("--provenance-columns", is_flag=True,
              help="Add string columns " + ", ".join(COLUMNS) + " (any format).")
@env_manager_option
@verbose_option
@one_line_errors
def predict(model_uri: str, input_path: str, output_path: str, out_format: str | None, input_format: str | None,
            result_type: str | None, master: str, local_mode: bool, save_mode: str, allow_code: bool | None,
            provenance_metadata: bool, provenance_columns: bool, env_manager: str) -> None:
    """Score INPUT with a model and write input columns + prediction column(s) to OUTPUT.

    The model URI (a path, a storage URL, ``runs:/...`` or ``models:/name@alias``) is resolved once,
    to one version, before scoring; ``--provenance``/``--provenance-columns`` record which.
    With ``--mode append`` each Parquet part keeps the provenance of the run that wrote it
    (``--local`` rewrites its one file, so only the latest model's remains: use the columns).
    """
    start = time.perf_counter()
    mode = normalize_mode(save_mode)
    check_not_overlapping(input_path, output_path)
    in_fmt = infer_format(input_path, input_format)
    out_fmt = out_format or in_fmt
    check_provenance_format(out_fmt, output_path, metadata=provenance_metadata)
    provenance = Provenance(metadata=provenance_metadata, columns=provenance_columns)
    if output_path != "-" and not should_score(output_path, mode):
        click.echo(f"{output_path} exists and --mode ignore: nothing scored", err=True)
        return
    if local_mode:
        rows = _predict_local(model_uri, input_path, output_path, in_fmt, out_fmt, mode=mode, allow_code=allow_code,
                              provenance=provenance, env_manager=env_manager)
    else:
        rows = _predict_spark(model_uri, input_path, output_path, in_fmt, out_fmt, result_type=result_type,
                              master=master, mode=mode, allow_code=allow_code, provenance=provenance,
                              env_manager=env_manager)
    click.echo(f"Scored {rows} rows in {time.perf_counter() - start:.1f} s -> {output_path}", err=True)
