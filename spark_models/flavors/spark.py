"""The spark flavor: fitted Spark ML pipelines in MLflow's layout (``mlflow.spark``).

``save_model`` writes the pipeline with Spark ML's own persistence under ``sparkml/`` and
an MLmodel with ``spark`` (``pyspark_version``, ``model_data``, ``model_class``) and
``python_function`` flavors. A bare fitted model is wrapped in a ``PipelineModel``.
On a cluster the data is staged through a DFS temporary directory (``dfs_tmpdir``, or
``$SPARK_MODELS_DFS_TMP``); see :mod:`spark_models.flavors.spark_staging`.

Scoring paths:

- ``load_model(uri).transform(df)`` or :func:`transform` — Spark itself, on a DataFrame.
- ``spark_models.pyfunc.load_model(uri).predict(pandas_df)`` — runs the pipeline through
  the active SparkSession (a local one is started when there is none) and returns the
  output column(s) as pandas.
- ``spark_udf`` — a Spark ML pipeline cannot run inside a Spark task (it would need a
  SparkContext there); creating the UDF fails with a message pointing to ``transform``.
"""

from __future__ import annotations

import logging
import os
import shutil
from typing import Any, Sequence

from spark_models.environment import default_requirements
from spark_models.exceptions import InvalidArgumentError, MalformedModelError, NotSupportedError
from spark_models.mlmodel import Model
from spark_models.saving import copy_code_paths, finish_model, prepare_model_dir
from spark_models.uri import resolve_model_uri

from spark_models.flavors import spark_staging as staging

_logger = logging.getLogger(__name__)

FLAVOR_NAME = "spark"
LOADER_MODULE = "spark_models.spark"
MODEL_DATA = "sparkml"
_CONNECT_ML_PREFIX = "pyspark.ml.connect."


def _class_path(obj: Any) -> str:
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


def _is_connect_ml_model(model: Any) -> bool:
    return _class_path(model).startswith(_CONNECT_ML_PREFIX)


def _validate_model(spark_model: Any) -> None:
    """A fitted, writable Transformer; an Estimator or anything else is a clear error."""
    if _is_connect_ml_model(spark_model):
        return
    from pyspark.ml import Estimator, Transformer
    from pyspark.ml.util import MLReadable, MLWritable

    name = type(spark_model).__name__
    if isinstance(spark_model, Estimator):
        raise InvalidArgumentError(
            f"{name} is an unfitted Estimator; save the model it returns: {name}.fit(df)"
        )
    if not isinstance(spark_model, Transformer):
        raise InvalidArgumentError(f"spark save_model needs a fitted Spark ML Transformer or PipelineModel, got {name}")
    if not isinstance(spark_model, (MLWritable, MLReadable)):
        raise InvalidArgumentError(f"{name} does not implement Spark ML persistence (MLWritable/MLReadable)")


def _as_pipeline(spark_model: Any) -> Any:
    from pyspark.ml import PipelineModel

    if _is_connect_ml_model(spark_model) or isinstance(spark_model, PipelineModel):
        return spark_model
    return PipelineModel([spark_model])


def _predict_for_signature(pipeline: Any) -> Any:
    def predict(example: Any) -> Any:
        from spark_models.flavors.spark_scoring import predict_pandas

        return predict_pandas(pipeline, example, None)

    return predict


def save_model(
    spark_model: Any,
    path: str | os.PathLike,
    mlflow_model: Model | None = None,
    conda_env: Any = None,
    code_paths: Sequence[str | os.PathLike] | None = None,
    dfs_tmpdir: str | None = None,
    signature: Any = None,
    input_example: Any = None,
    pip_requirements: Any = None,
    extra_pip_requirements: Any = None,
    metadata: dict[str, Any] | None = None,
    sample_input: Any = None,
) -> Model:
    """Save a fitted Spark ML Transformer/PipelineModel as a model directory at ``path``.

    ``sample_input`` (a Spark DataFrame) also writes an MLeap bundle (``mleap`` flavor), so
    pyfunc and ``spark_udf`` can score the pipeline in numpy without Spark.
    """
    _validate_model(spark_model)
    pipeline = _as_pipeline(spark_model)
    model_dir = prepare_model_dir(path)
    try:
        _write_model_data(pipeline, model_dir / MODEL_DATA, dfs_tmpdir)
        mlflow_model = mlflow_model or Model()
        if sample_input is not None:
            from spark_models.flavors import mleap

            mleap.add_to_model(mlflow_model, model_dir, pipeline, sample_input)
        code = copy_code_paths(code_paths, model_dir)
        import pyspark

        mlflow_model.add_flavor(
            FLAVOR_NAME, pyspark_version=pyspark.__version__, model_data=MODEL_DATA, code=code,
            model_class=_class_path(pipeline),
        )
        pyfunc_conf = {"loader_module": LOADER_MODULE, "data": MODEL_DATA, "code": code}
        finish_model(
            model_dir, mlflow_model, pyfunc_conf, default_requirements("pyspark"), signature, input_example,
            conda_env, pip_requirements, extra_pip_requirements, metadata,
            predict_for_signature=_predict_for_signature(pipeline),
        )
    except BaseException:
        shutil.rmtree(model_dir, ignore_errors=True)
        raise
    return mlflow_model


def _write_model_data(pipeline: Any, data_dir: Any, dfs_tmpdir: str | None) -> None:
    if _is_connect_ml_model(pipeline):
        pipeline.saveToLocal(str(data_dir))
        return
    spark = staging.active_session()
    try:
        staging.write_model(spark, pipeline, data_dir, dfs_tmpdir)
    except Exception as e:
        if staging.is_connect(spark):
            raise NotSupportedError(
                f"This PySpark cannot save {type(pipeline).__name__} through a Spark Connect session: {e}"
            ) from e
        raise


def _load_from_dir(model_dir: Any, dfs_tmpdir: str | None = None) -> Any:
    conf = Model.load(model_dir).get_flavor(FLAVOR_NAME)
    data_dir = model_dir / conf.get("model_data", MODEL_DATA)
    if not data_dir.is_dir():
        raise MalformedModelError(f"Spark ML model data {str(data_dir)!r} named in {model_dir / 'MLmodel'} does not exist")
    model_class = conf.get("model_class") or "pyspark.ml.pipeline.PipelineModel"
    if model_class.startswith(_CONNECT_ML_PREFIX):
        return _import_class(model_class).loadFromLocal(str(data_dir))
    from pyspark.ml import PipelineModel

    spark = staging.active_session()
    try:
        return staging.read_model(spark, PipelineModel, data_dir, dfs_tmpdir)
    except Exception as e:
        if staging.is_connect(spark):
            raise NotSupportedError(f"This PySpark cannot load {model_class} through a Spark Connect session: {e}") from e
        raise


def _import_class(path: str) -> Any:
    import importlib

    module, _, name = path.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as e:
        raise NotSupportedError(f"This PySpark has no {path} to load the model with: {e}") from e


def load_model(model_uri: str | os.PathLike, dfs_tmpdir: str | None = None, dst_path: str | os.PathLike | None = None) -> Any:
    """Load the ``PipelineModel`` of a model with the spark flavor (MLflow's or ours)."""
    return _load_from_dir(resolve_model_uri(model_uri, dst_path), dfs_tmpdir)


def _load_pyfunc(path: str, model_config: dict[str, Any] | None = None) -> Any:
    """Loader entry point; ``path`` is the ``sparkml`` data directory (MLflow's contract).

    When the model also has an ``mleap`` flavor, scoring uses the numpy runtime (no Spark);
    ``model_config={"runtime": "spark"}`` forces Spark.
    """
    from pathlib import Path

    from spark_models.flavors.spark_scoring import SparkPipelinePyfunc

    data = Path(path)
    model_dir = data.parent if (data.parent / "MLmodel").is_file() else data
    meta = Model.load(model_dir)
    runtime = (model_config or {}).get("runtime", "auto")
    if runtime not in ("auto", "spark", "mleap"):
        raise InvalidArgumentError(f"model_config runtime must be 'auto', 'spark' or 'mleap', got {runtime!r}")
    if runtime != "spark" and "mleap" in meta.flavors:
        from spark_models.flavors.mleap import BundlePyfunc, _load_from_dir as load_bundle_dir

        return BundlePyfunc(load_bundle_dir(model_dir), meta.signature)
    if runtime == "mleap":
        raise NotSupportedError(f"{model_dir} has no mleap flavor; save it with sample_input= to get one")
    return SparkPipelinePyfunc(_load_from_dir(model_dir), meta.signature, model_config)


def udf_unsupported_reason(model_uri: str) -> str | None:
    """Why ``spark_udf`` cannot run this model inside Spark tasks (None when it can: an
    ``mleap`` flavor lets the workers score it in numpy)."""
    try:
        if "mleap" in Model.load(resolve_model_uri(model_uri)).flavors:
            return None
    except Exception:  # an unreadable model fails later with its own message
        return None
    return (
        "A Spark ML pipeline needs a SparkContext, which does not exist inside a Spark task, so it "
        "cannot run in spark_udf. Save it with sample_input= (an MLeap bundle scored in numpy), or score it "
        f"on the driver with Spark: spark_models.spark.load_model({model_uri!r}).transform(df), or "
        "spark_models.spark.transform(df, model_uri) to keep only the prediction columns."
    )


def transform(df: Any, model: Any, output_cols: Sequence[str] | None = None, vectors_as_arrays: bool = False) -> Any:
    """Apply a spark-flavor model (URI or PipelineModel) to ``df`` with Spark's ``transform``.

    Keeps ``df``'s columns plus ``output_cols`` (default: the signature's output names, else
    ``prediction``) and drops the pipeline's intermediate columns. ``vectors_as_arrays``
    turns ML vector outputs (``probability``) into ``array<double>``.
    """
    from spark_models.flavors.spark_scoring import transform_keep

    return transform_keep(df, model, output_cols, vectors_as_arrays)
