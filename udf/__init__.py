"""Arrow-based batch scoring of any pyfunc model in PySpark: :func:`spark_udf`."""

import logging
import os
from typing import Any, Iterator, Optional

import pandas as pd

from spark_models.exceptions import InvalidArgumentError

_logger = logging.getLogger(__name__)

__all__ = ["spark_udf"]


_SHIPPED: set = set()  # (session id, model hash) already sent to this session's executors


def _is_connect(spark) -> bool:
    return type(spark).__module__.startswith("pyspark.sql.connect")


def _is_local_master(spark) -> bool:
    if _is_connect(spark):
        return False
    master = spark.sparkContext.master
    return master.startswith("local[") or master == "local"


def _ship(spark, local_dir, key: str) -> str:
    """Send the model archive to the executors once per session (SparkFiles / artifacts)."""
    from udf.shipping import archive_name, build_archive

    session = spark.session_id if _is_connect(spark) else spark.sparkContext.applicationId
    if (session, key) not in _SHIPPED:
        archive = build_archive(local_dir, key)
        if _is_connect(spark):
            spark.addArtifacts(str(archive), file=True)
        else:
            spark.sparkContext.addFile(str(archive))
        _SHIPPED.add((session, key))
    return archive_name(key)


def spark_udf(spark, model_uri: str, result_type: Any = None, env_manager: str = "local",
              params: Optional[dict] = None, batch_size: Optional[int] = None):
    """A Spark UDF that scores any python_function model with Arrow batches.

    ``result_type``: a Spark DataType or type string (``"double"``, ``"array<double>"``,
    ``"struct<label:int,score:double>"``); None derives it from the signature's outputs.
    The UDF binds input columns by name: ``u()`` takes the signature's input columns,
    ``u("a", "b")`` / ``u(col("a"), ...)`` pass those columns under their own names,
    ``u(a="x")`` passes column ``x`` as model input ``a``, ``u(struct(...))`` passes a struct.

    >>> predict = spark_udf(spark, "models/iris")            # doctest: +SKIP
    >>> df.withColumn("prediction", predict()).show()        # doctest: +SKIP
    """
    from pyspark.sql.functions import pandas_udf

    from spark_models.enforcement import enforce_params
    from spark_models.mlmodel import Model
    from spark_models.uri import resolve_model_uri
    from udf.binding import bind_columns, tensor_specs
    from udf.result_types import parse_result_type
    from udf.shipping import content_hash
    from udf.worker import ScoringFunction

    if env_manager != "local":
        raise InvalidArgumentError(f"env_manager={env_manager!r} is not supported; only 'local' (the current environment)")
    if batch_size is not None and batch_size < 1:
        raise InvalidArgumentError(f"batch_size must be a positive number of rows, got {batch_size}")
    local_dir = resolve_model_uri(model_uri)
    meta = Model.load(local_dir)
    meta.get_flavor("python_function")
    signature = meta.signature
    params = enforce_params(params, signature.params) if signature is not None else params
    return_type = parse_result_type(result_type, signature)
    key = content_hash(local_dir)
    archive = _ship(spark, local_dir, key)
    body = ScoringFunction(key, archive, str(local_dir) if _is_local_master(spark) else None, os.fspath(model_uri),
                           return_type, params, batch_size, tensor_specs(signature))
    def score(batches: Iterator[pd.DataFrame]) -> Iterator[pd.Series]:
        return body(batches)

    scoring_udf = pandas_udf(score, returnType=return_type)

    def bound(*args, **kwargs):
        return scoring_udf(bind_columns(signature, args, kwargs))

    bound.return_type = return_type
    bound.model_uri = model_uri
    return bound
