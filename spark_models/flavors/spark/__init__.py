"""The spark flavor: fitted Spark ML pipelines in MLflow's layout (``mlflow.spark``).

``save_model`` writes the pipeline with Spark ML's own persistence under ``sparkml/`` and
an MLmodel with ``spark`` (``pyspark_version``, ``model_data``, ``model_class``) and
``python_function`` flavors. A bare fitted model is wrapped in a ``PipelineModel``.
On a cluster the data is staged through a DFS temporary directory (``dfs_tmpdir``, or
``$SPARK_MODELS_DFS_TMP``); see :mod:`spark_models.staging`.

When :mod:`mleap_bridge` can export every stage, ``save_model`` also writes an MLeap bundle
(``mleap`` flavor, MLflow 1.x's layout) unless ``mleap=False``; when it cannot, the save
still succeeds, the reason is logged and recorded in the spark flavor (``mleap_skipped``);
see :mod:`.bundles`.

Scoring paths:

- ``load_model(uri).transform(df)`` or :func:`transform` — Spark itself, on a DataFrame.
- ``spark_models.pyfunc.load_model(uri).predict(pandas_df)`` — the bundle in numpy when
  there is one (never starts Spark), else the pipeline through the active SparkSession (a
  local one is started when there is none). ``model_config={"runtime": "spark"|"mleap"}``
  forces a path.
- ``spark_udf`` — the workers score the bundle in numpy; see :mod:`.udf_support`.
"""

from __future__ import annotations

import os
from typing import Any, Sequence

from spark_models.environment import default_requirements
from spark_models.exceptions import InvalidArgumentError, NotSupportedError
from spark_models.flavors import mleap as mleap_flavor
from spark_models.flavors.contract import Flavor, LoadContext, runs_no_code
from spark_models.flavors.opening import open_model
from spark_models.flavors.saving import saved_model
from spark_models.flavors.spark import bundles, persistence
from spark_models.flavors.spark.persistence import FLAVOR_NAME, MODEL_DATA
from spark_models.flavors.spark.scoring import SparkPipelinePyfunc, transform_keep
from spark_models.flavors.spark.udf_support import prepare_for_udf
from spark_models.mlmodel import Model

RUNTIMES = ("auto", "spark", "mleap")


def default_pip_requirements() -> list[str]:
    return default_requirements("pyspark")


def save_model(
    spark_model: Any,
    path: str | os.PathLike,
    mlflow_model: Model | None = None,
    conda_env: Any = None,
    code_paths: Sequence[str | os.PathLike] | None = None,
    dfs_tmpdir: str | None = None,
    *,
    sample_input: Any = None,
    signature: Any = None,
    input_example: Any = None,
    pip_requirements: Any = None,
    extra_pip_requirements: Any = None,
    metadata: dict[str, Any] | None = None,
    mleap: bool | str = "auto",
) -> Model:
    """Save a fitted Spark ML Transformer/PipelineModel as a model directory at ``path``.

    The positional order is ``mlflow.spark.save_model``'s up to ``dfs_tmpdir`` (MLflow 2 and 3
    disagree after it, so the rest are keyword-only). ``mleap`` controls the MLeap bundle
    that lets pyfunc and ``spark_udf`` score the pipeline in numpy without Spark: ``"auto"``
    writes it when :mod:`mleap_bridge` supports every stage (else logs why and saves without
    it), ``True`` requires it (an unsupported stage is an error naming it), ``False`` never
    writes it. ``sample_input`` (a Spark DataFrame, MLflow 1.x's argument) implies ``True``
    and also records its schema in ``mleap/schema.json``.
    """
    import pyspark

    bundles.check_mode(mleap, sample_input)
    persistence.validate_model(spark_model)
    pipeline = persistence.as_pipeline(spark_model)
    with saved_model(path, default_pip=default_pip_requirements(), mlflow_model=mlflow_model, code_paths=code_paths,
                     signature=signature, input_example=input_example, conda_env=conda_env,
                     pip_requirements=pip_requirements, extra_pip_requirements=extra_pip_requirements,
                     metadata=metadata) as draft:
        persistence.write_model_data(pipeline, draft.dir / MODEL_DATA, dfs_tmpdir)
        skipped = bundles.add_bundle(draft.model, draft.dir, pipeline, sample_input, mleap)
        draft.add_flavor(FLAVOR_NAME, pyspark_version=pyspark.__version__, model_data=MODEL_DATA, code=draft.code,
                         model_class=persistence.class_path(pipeline),
                         **({bundles.MLEAP_SKIPPED: skipped} if skipped else {}))
        draft.set_pyfunc(FLAVOR.module, data=MODEL_DATA, code=draft.code)
        draft.predict_for_signature = SparkPipelinePyfunc(pipeline, None).predict
        if mleap_flavor.FLAVOR_NAME in draft.model.flavors and sample_input is None:
            mleap_flavor.write_schema_from_signature(draft.dir, draft.resolve_signature())
    return draft.model


def load_model(model_uri: str | os.PathLike, dfs_tmpdir: str | None = None, dst_path: str | os.PathLike | None = None) -> Any:
    """Load the ``PipelineModel`` of a model with the spark flavor (MLflow's or ours)."""
    return persistence.load_pipeline(open_model(model_uri, dst_path), dfs_tmpdir)


def _load_pyfunc_context(context: LoadContext) -> Any:
    """The pyfunc form. ``model_config={"runtime": ...}``: ``"auto"`` (default) scores the MLeap
    bundle in numpy when the model has one, else runs the pipeline through Spark; ``"spark"``
    always uses Spark; ``"mleap"`` requires the bundle."""
    runtime = context.model_config.get("runtime", "auto")
    if runtime not in RUNTIMES:
        raise InvalidArgumentError(
            f"model_config['runtime'] must be one of {', '.join(map(repr, RUNTIMES))}, got {runtime!r}"
        )
    if runtime != "spark" and mleap_flavor.FLAVOR_NAME in context.model.flavors:
        return mleap_flavor.BundlePyfunc(mleap_flavor.load_bundle(context), context.signature)
    if runtime == "mleap":
        model_dir = str(context.model_dir)
        raise NotSupportedError(
            f"model_config runtime='mleap' needs an MLeap bundle, but {model_dir} has none "
            f"({bundles.why_no_bundle(context, model_dir)}); use runtime='spark' or 'auto' to score it with Spark"
        )
    return SparkPipelinePyfunc(persistence.load_pipeline(context), context.signature, dict(context.model_config))


def transform(df: Any, model: Any, output_cols: Sequence[str] | None = None, vectors_as_arrays: bool = False) -> Any:
    """Apply a spark-flavor model (URI or PipelineModel) to ``df`` with Spark's ``transform``.

    Keeps ``df``'s columns plus ``output_cols`` (default: the signature's output names, else
    ``prediction``) and drops the pipeline's intermediate columns. ``vectors_as_arrays``
    turns ML vector outputs (``probability``) into ``array<double>``.
    """
    return transform_keep(df, model, output_cols, vectors_as_arrays)


FLAVOR = Flavor(
    name=FLAVOR_NAME,
    save_model=save_model,
    load_model=load_model,
    load_pyfunc=_load_pyfunc_context,
    default_pip_requirements=default_pip_requirements,
    prepare_for_udf=prepare_for_udf,
    runs_code=runs_no_code,  # Spark ML persistence: JSON metadata and Parquet, classes resolved by Spark
)
_load_pyfunc = FLAVOR.mlflow_loader()

__all__ = ["FLAVOR", "FLAVOR_NAME", "default_pip_requirements", "load_model", "save_model", "transform", "_load_pyfunc"]
