"""Spark ML persistence of the spark flavor: which models it takes, writing ``sparkml/``
and reading it back (staged through the DFS on a cluster, through the server on Connect).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from spark_models.exceptions import InvalidArgumentError, MalformedModelError, NotSupportedError
from spark_models.flavors.contract import LoadContext
from spark_models.staging import read_model, write_model
from spark_models.sessions import active_session, is_connect

FLAVOR_NAME = "spark"
MODEL_DATA = "sparkml"
CONNECT_ML_PREFIX = "pyspark.ml.connect."


def class_path(obj: Any) -> str:
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


def is_connect_ml_model(model: Any) -> bool:
    return class_path(model).startswith(CONNECT_ML_PREFIX)


def stages(model: Any) -> list:
    """Every stage of a (possibly nested) pipeline, depth first."""
    children = getattr(model, "stages", None)
    return [model] if children is None else [s for stage in children for s in stages(stage)]


def validate_model(spark_model: Any) -> None:
    """A fitted, writable Transformer; an Estimator or anything else is a clear error."""
    name = type(spark_model).__name__
    if is_connect_ml_model(spark_model):
        from pyspark.ml.connect.base import Estimator as ConnectEstimator

        if isinstance(spark_model, ConnectEstimator):
            raise InvalidArgumentError(f"{name} is an unfitted Estimator; save the model it returns: {name}.fit(df)")
        return
    from pyspark.ml import Estimator, Transformer
    from pyspark.ml.util import MLReadable, MLWritable

    if isinstance(spark_model, Estimator):
        raise InvalidArgumentError(f"{name} is an unfitted Estimator; save the model it returns: {name}.fit(df)")
    if not isinstance(spark_model, Transformer):
        raise InvalidArgumentError(f"spark save_model needs a fitted Spark ML Transformer or PipelineModel, got {name}")
    if not isinstance(spark_model, (MLWritable, MLReadable)):
        raise InvalidArgumentError(f"{name} does not implement Spark ML persistence (MLWritable/MLReadable)")


def as_pipeline(spark_model: Any) -> Any:
    """A bare fitted model as a one-stage ``PipelineModel`` (pipelines and Connect models as they are)."""
    from pyspark.ml import PipelineModel

    if is_connect_ml_model(spark_model) or isinstance(spark_model, PipelineModel):
        return spark_model
    return PipelineModel([spark_model])


def _connect_ml_unsupported(error: Exception) -> bool:
    """Whether ``error`` is Spark Connect refusing an ML operation (not, say, a bad path)."""
    if isinstance(error, NotImplementedError):
        return True
    for getter in ("getCondition", "getErrorClass"):
        method = getattr(error, getter, None)
        if callable(method):
            name = str(method() or "")
            return name.startswith(("CONNECT_ML", "JVM_ATTRIBUTE_NOT_SUPPORTED", "NOT_IMPLEMENTED"))
    return False


def _summary(error: Exception) -> str:
    """The error's message without the JVM stack trace Spark Connect appends."""
    return str(error).split("\n\nJVM stacktrace:")[0].strip() or type(error).__name__


def write_model_data(pipeline: Any, data_dir: Path, dfs_tmpdir: str | None) -> None:
    """Spark ML persistence of ``pipeline`` into ``data_dir`` (``sparkml/``)."""
    if is_connect_ml_model(pipeline):
        pipeline.saveToLocal(str(data_dir))
        return
    spark = active_session()
    try:
        write_model(spark, pipeline, data_dir, dfs_tmpdir)
    except Exception as e:
        if is_connect(spark) and _connect_ml_unsupported(e):
            raise NotSupportedError(
                f"Spark Connect cannot save {type(pipeline).__name__} (stages: "
                f"{', '.join(type(s).__name__ for s in stages(pipeline))}) to {data_dir}: {_summary(e)}"
            ) from e
        raise


def load_pipeline(context: LoadContext, dfs_tmpdir: str | None = None) -> Any:
    """The fitted pipeline of a spark-flavor model (a ``PipelineModel`` or a Connect ML model)."""
    conf = context.flavor_conf(FLAVOR_NAME)
    data_dir = context.path(conf.get("model_data", MODEL_DATA), "model_data")
    if not data_dir.is_dir():
        raise MalformedModelError(
            f"Spark ML model data {str(data_dir)!r} named in {context.model_dir / 'MLmodel'} does not exist")
    model_class = conf.get("model_class") or "pyspark.ml.pipeline.PipelineModel"
    if model_class.startswith(CONNECT_ML_PREFIX):
        return _import_class(model_class).loadFromLocal(str(data_dir))
    from pyspark.ml import PipelineModel

    spark = active_session()
    try:
        return read_model(spark, PipelineModel, data_dir, dfs_tmpdir)
    except Exception as e:
        if is_connect(spark) and _connect_ml_unsupported(e):
            raise NotSupportedError(f"Spark Connect cannot load the {model_class} in {data_dir}: {_summary(e)}") from e
        raise


def _import_class(path: str) -> Any:
    module, _, name = path.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as e:
        raise NotSupportedError(f"This PySpark has no {path} to load the model with: {e}") from e
