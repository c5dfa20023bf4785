"""Arrow-based batch scoring of any pyfunc model in PySpark: :func:`spark_udf`."""

import logging
import os
from pathlib import Path
from typing import Any, Iterator, Tuple

import pandas as pd

from spark_models.exceptions import InvalidArgumentError

_logger = logging.getLogger(__name__)

__all__ = ["SparkModelUDF", "spark_udf"]


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


def _dir_for_tasks(spark: Any, meta: Any, local_dir: Path, model_uri: str) -> Path:
    """The model directory to ship: ``local_dir``, or a copy the loader converts for the workers
    (a Spark ML pipeline gets an MLeap bundle). Fails now, on the driver, when the loader says
    the model cannot run inside a task."""
    import importlib

    from spark_models.exceptions import NotSupportedError
    from spark_models.flavors.registry import loader_module_name
    from udf.shipping import converted_model_dir

    loader = meta.get_flavor("python_function").get("loader_module")
    if not loader:
        return local_dir
    try:
        module = importlib.import_module(loader_module_name(loader))
    except ImportError:
        return local_dir  # the workers report a missing loader with the model's requirements
    convert, check = getattr(module, "udf_conversion", None), getattr(module, "udf_unsupported_reason", None)
    try:
        if convert is not None:
            build = convert(spark, local_dir, model_uri)
            return local_dir if build is None else converted_model_dir(local_dir, module.__name__, build)
        reason = check(model_uri) if check is not None else None
    except NotSupportedError as e:
        raise NotSupportedError(f"spark_udf cannot score {model_uri!r}: {e}") from e
    if reason:
        raise NotSupportedError(f"spark_udf cannot score {model_uri!r}: {reason}")
    return local_dir


def _scoring_udf(body, return_type):
    from pyspark.sql.functions import pandas_udf

    def spark_models_predict(batches: Iterator[Tuple[pd.Series, ...]]) -> Iterator[pd.Series]:
        return body(batches)

    return pandas_udf(spark_models_predict, returnType=return_type)


class SparkModelUDF:
    """What :func:`spark_udf` returns: call it with input columns to get the prediction Column.

    ``return_type`` is the UDF's Spark type and ``model_uri`` the model it scores.
    """

    def __init__(self, body: Any, signature: Any, return_type: Any, model_uri: str):
        self._body, self._signature = body, signature
        self.return_type, self.model_uri = return_type, model_uri

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """The prediction Column for these input columns (see :func:`spark_udf` for binding)."""
        from udf.binding import bind_columns

        binding = bind_columns(self._signature, args, kwargs)
        body = self._body.named(binding.names, binding.flatten)
        return _scoring_udf(body, self.return_type)(*binding.columns)

    def validate(self, df: Any, *args: Any, **kwargs: Any) -> Any:
        """Check that ``df`` has the input columns ``self(*args, **kwargs)`` would read; return ``df``.

        Raises SchemaEnforcementError naming every missing column and the model URI (Spark's
        own analysis error names only the first). Chains: ``df.transform(predict.validate)``.
        """
        from udf.binding import bind_columns, check_columns

        check_columns(df, bind_columns(self._signature, args, kwargs), os.fspath(self.model_uri))
        return df

    def __repr__(self) -> str:
        return f"SparkModelUDF({os.fspath(self.model_uri)!r}, return_type={self.return_type.simpleString()})"


def _check_arguments(env_manager: str, batch_size: int | None) -> None:
    if env_manager != "local":
        raise InvalidArgumentError(f"env_manager={env_manager!r} is not supported; only 'local' (the current environment)")
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
        raise InvalidArgumentError(f"batch_size must be a positive number of rows, got {batch_size!r}")


def _scoring_function(spark, local_dir, model_uri: str, signature, return_type, params, batch_size):
    """Ship the model and build the worker-side body (pickled into every task)."""
    from udf.binding import tensor_specs
    from udf.result_types import declared_kinds
    from udf.shipping import content_hash
    from udf.worker import ScoringFunction

    key = content_hash(local_dir)
    archive = _ship(spark, local_dir, key)
    return ScoringFunction(key, archive, str(local_dir) if _is_local_master(spark) else None, model_uri,
                           return_type, params, batch_size, tensor_specs(signature), declared_kinds(signature))


def spark_udf(spark, model_uri: str, result_type: Any = None, env_manager: str = "local",
              params: dict | None = None, batch_size: int | None = None) -> SparkModelUDF:
    """A Spark UDF that scores any python_function model with Arrow batches.

    Args:
        spark: the SparkSession (classic or Spark Connect) the UDF will run in.
        model_uri: a model directory or URI; resolved once on the driver and shipped to
            the executors, where each Python worker loads it once. A Spark ML pipeline
            without an MLeap bundle (e.g. saved by MLflow) is first converted on the driver
            (classic SparkSession only) into a copy with one, cached per model content; the
            model directory itself is never changed.
        result_type: a Spark DataType or type string (``"double"``, ``"array<double>"``,
            ``"struct<label:int,score:double>"``); None derives it from the signature's
            outputs (``double`` without one). An output type Spark cannot return from here
            (e.g. ``datetime``) is an error now, naming the output.
        env_manager: only ``"local"``: workers use the driver's Python environment.
        params: inference params, validated now against the signature's params schema.
        batch_size: rows per ``model.predict`` call. None merges Spark's Arrow batches
            up to 100,000 rows (or 32 MiB); a number gives every call exactly that many.

    The returned callable binds input columns by name: ``u()`` takes the signature's
    input columns, ``u("a", "b")`` / ``u(col("a"), ...)`` pass columns under their own
    names, ``u(a="x")`` passes column ``x`` as model input ``a``, and a single struct
    argument (``u(struct(...))``, ``u(col("st"))``) passes the struct's fields.

    ``u()`` does not see the DataFrame, so a missing input column fails when Spark analyzes
    the query, on the driver before any task runs, with Spark's ``UNRESOLVED_COLUMN`` error:
    it names the first missing column and the available ones, and its plan shows them all.
    ``u.validate(df)`` (same arguments as ``u``) raises one error naming every missing
    column and the model URI: ``df.transform(u.validate).withColumn("p", u())``.

    >>> import pandas as pd
    >>> from sklearn.linear_model import LinearRegression
    >>> import spark_models.sklearn
    >>> from spark_models.models import infer_signature
    >>> X = pd.DataFrame({"a": [0.0, 1.0, 2.0], "b": [1.0, 1.0, 0.0]})
    >>> model = LinearRegression().fit(X, X.a + 2 * X.b)
    >>> saved = spark_models.sklearn.save_model(model, model_dir, signature=infer_signature(X, model.predict(X)))
    >>> predict = spark_udf(spark, model_dir)
    >>> df = spark.createDataFrame(X)
    >>> [round(r.pred, 6) for r in df.withColumn("pred", predict()).collect()]
    [2.0, 3.0, 2.0]
    >>> [round(r.pred, 6) for r in df.withColumn("pred", predict(a="b", b="a")).collect()]
    [1.0, 3.0, 4.0]
    >>> predict.validate(df.select("a"))
    Traceback (most recent call last):
    ...
    spark_models.exceptions.SchemaEnforcementError: Model '...' needs input columns the DataFrame lacks: ['b']; its columns are ['a']
    """
    from spark_models.enforcement import enforce_params
    from spark_models.mlmodel import Model
    from spark_models.uri import resolve_model_uri
    from udf.result_types import parse_result_type

    _check_arguments(env_manager, batch_size)
    source_dir = resolve_model_uri(model_uri)
    local_dir = _dir_for_tasks(spark, Model.load(source_dir), source_dir, os.fspath(model_uri))
    meta = Model.load(local_dir)
    signature = meta.signature
    params = enforce_params(params, signature.params) if signature is not None else params
    return_type = parse_result_type(result_type, signature)
    body = _scoring_function(spark, local_dir, os.fspath(model_uri), signature, return_type, params, batch_size)
    return SparkModelUDF(body, signature, return_type, model_uri)
