"""The spark flavor: fitted Spark ML pipelines in MLflow's layout (``mlflow.spark``).

``save_model`` writes the pipeline with Spark ML's own persistence under ``sparkml/`` and
an MLmodel with ``spark`` (``pyspark_version``, ``model_data``, ``model_class``) and
``python_function`` flavors. A bare fitted model is wrapped in a ``PipelineModel``.
On a cluster the data is staged through a DFS temporary directory (``dfs_tmpdir``, or
``$SPARK_MODELS_DFS_TMP``); see :mod:`spark_models.flavors.spark_staging`.

When :mod:`mleap_bridge` can export every stage, ``save_model`` also writes an MLeap bundle
(``mleap`` flavor, MLflow 1.x's layout) unless ``mleap=False``; when it cannot, the save
still succeeds, the reason is logged and recorded in the spark flavor (``mleap_skipped``).

Scoring paths:

- ``load_model(uri).transform(df)`` or :func:`transform` — Spark itself, on a DataFrame.
- ``spark_models.pyfunc.load_model(uri).predict(pandas_df)`` — the bundle in numpy when
  there is one (never starts Spark), else the pipeline through the active SparkSession (a
  local one is started when there is none). ``model_config={"runtime": "spark"|"mleap"}``
  forces a path.
- ``spark_udf`` — the workers score the bundle in numpy. A pipeline without a bundle (saved
  by MLflow, or with ``mleap=False``) is converted on the driver into a copy with one
  (:func:`udf_conversion`); a pipeline cannot run inside a Spark task (it would need a
  SparkContext there), so when a stage cannot be exported, or under Spark Connect, creating
  the UDF fails with a message naming why and pointing to ``transform``.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from spark_models.environment import default_requirements
from spark_models.exceptions import InvalidArgumentError, MalformedModelError, NotSupportedError, SchemaError
from spark_models.mlmodel import Model
from spark_models.saving import copy_code_paths, finish_model, prepare_model_dir
from spark_models.uri import resolve_model_uri

from spark_models.flavors import spark_staging as staging

_logger = logging.getLogger(__name__)

FLAVOR_NAME = "spark"
LOADER_MODULE = "spark_models.spark"
MODEL_DATA = "sparkml"
MLEAP_DATA = "mleap/model"  # spark_models.flavors.mleap.MODEL_DATA (MLflow 1.x's layout)
MLEAP_SKIPPED = "mleap_skipped"  # spark flavor key: why no bundle was written
RUNTIMES = ("auto", "spark", "mleap")
_CONNECT_ML_PREFIX = "pyspark.ml.connect."


def _class_path(obj: Any) -> str:
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


def _is_connect_ml_model(model: Any) -> bool:
    return _class_path(model).startswith(_CONNECT_ML_PREFIX)


def _validate_model(spark_model: Any) -> None:
    """A fitted, writable Transformer; an Estimator or anything else is a clear error."""
    name = type(spark_model).__name__
    if _is_connect_ml_model(spark_model):
        from pyspark.ml.connect.base import Estimator as ConnectEstimator

        if isinstance(spark_model, ConnectEstimator):
            raise InvalidArgumentError(f"{name} is an unfitted Estimator; save the model it returns: {name}.fit(df)")
        return
    from pyspark.ml import Estimator, Transformer
    from pyspark.ml.util import MLReadable, MLWritable

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
        from spark_models.flavors.spark_scoring import SparkPipelinePyfunc

        return SparkPipelinePyfunc(pipeline, None).predict(example)

    return predict


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
    if not (mleap is True or mleap is False or mleap == "auto"):
        raise InvalidArgumentError(f"mleap must be 'auto', True or False, got {mleap!r}")
    if sample_input is not None and mleap is False:
        raise InvalidArgumentError("sample_input= writes an MLeap bundle, which mleap=False refuses; pass one of them")
    _validate_model(spark_model)
    pipeline = _as_pipeline(spark_model)
    model_dir = prepare_model_dir(path)
    try:
        _write_model_data(pipeline, model_dir / MODEL_DATA, dfs_tmpdir)
        mlflow_model = mlflow_model or Model()
        skipped = _add_mleap(mlflow_model, model_dir, pipeline, sample_input, mleap)
        code = copy_code_paths(code_paths, model_dir)
        import pyspark

        conf = {"pyspark_version": pyspark.__version__, "model_data": MODEL_DATA, "code": code,
                "model_class": _class_path(pipeline)}
        mlflow_model.add_flavor(FLAVOR_NAME, **conf, **({MLEAP_SKIPPED: skipped} if skipped else {}))
        pyfunc_conf = {"loader_module": LOADER_MODULE, "data": MODEL_DATA, "code": code}
        finish_model(
            model_dir, mlflow_model, pyfunc_conf, default_requirements("pyspark"), signature, input_example,
            conda_env, pip_requirements, extra_pip_requirements, metadata,
            predict_for_signature=_predict_for_signature(pipeline),
        )
        if "mleap" in mlflow_model.flavors and sample_input is None:
            _write_mleap_schema(model_dir, mlflow_model.signature)
    except BaseException:
        shutil.rmtree(model_dir, ignore_errors=True)
        raise
    return mlflow_model


def _stages(model: Any) -> list:
    stages = getattr(model, "stages", None)
    return [model] if stages is None else [s for stage in stages for s in _stages(stage)]


def unsupported_mleap_stages(pipeline: Any) -> list[str]:
    """The stages :mod:`mleap_bridge` cannot export, as ``"Class (uid)"``."""
    from mleap_bridge.ops import spec_for_spark

    unsupported = []
    for stage in _stages(pipeline):
        try:
            spec_for_spark(stage)
        except NotSupportedError:
            unsupported.append(f"{type(stage).__name__} ({stage.uid})")
    return unsupported


def _add_mleap(mlflow_model: Model, model_dir: Path, pipeline: Any, sample_input: Any, mode: bool | str) -> str | None:
    """Write the MLeap bundle and flavor; returns why none was written (None when it was)."""
    if sample_input is not None:
        from spark_models.flavors import mleap as mleap_flavor

        mleap_flavor.add_to_model(mlflow_model, model_dir, pipeline, sample_input)
        return None
    if mode is False:
        return "saved with mleap=False"
    if _is_connect_ml_model(pipeline):  # scored on pandas anyway, without Spark
        if mode is True:
            raise NotSupportedError(f"mleap=True: {type(pipeline).__name__} is a pyspark.ml.connect model, "
                                    "which MLeap bundles do not cover")
        return None
    unsupported = unsupported_mleap_stages(pipeline)
    reason = f"mleap_bridge cannot export stage(s) {', '.join(unsupported)}" if unsupported else None
    if reason is None:
        reason = _write_bundle(mlflow_model, model_dir, pipeline, strict=mode is True)
    elif mode is True:
        raise NotSupportedError(f"mleap=True: {reason}")
    if reason is not None:
        _logger.info("Saving %s without an MLeap bundle: %s. pyfunc and spark_udf will need Spark to score it.",
                     model_dir, reason)
    return reason


def _write_bundle(mlflow_model: Model, model_dir: Path, pipeline: Any, strict: bool) -> str | None:
    from mleap_bridge.bundle import BUNDLE_VERSION
    from mleap_bridge.spark import to_bundle

    started = time.perf_counter()
    try:  # tree models read their nodes from the sparkml/ directory just written
        to_bundle(pipeline, model_dir / MLEAP_DATA, spark_data_dir=model_dir / MODEL_DATA)
    except Exception as e:
        if strict:
            raise
        shutil.rmtree(model_dir / "mleap", ignore_errors=True)
        if not isinstance(e, NotSupportedError):
            _logger.warning("mleap_bridge failed to export %s (%s: %s)", type(pipeline).__name__, type(e).__name__, e)
        return f"mleap_bridge could not export it: {str(e).splitlines()[0] if str(e) else type(e).__name__}"
    mlflow_model.add_flavor("mleap", mleap_version=BUNDLE_VERSION, model_data=MLEAP_DATA)
    _logger.info("Wrote an MLeap bundle to %s in %.1fs", model_dir / MLEAP_DATA, time.perf_counter() - started)
    return None


def _write_mleap_schema(model_dir: Path, signature: Any) -> None:
    """``mleap/schema.json`` (MLflow 1.x wrote the sample input's Spark schema) from the signature."""
    inputs = getattr(signature, "inputs", None)
    if inputs is None or not inputs.has_input_names():
        return
    try:
        schema = json.loads(inputs.to_spark().json())
    except SchemaError as e:
        _logger.debug("No mleap/schema.json for %s: %s", model_dir, e)
        return
    (model_dir / "mleap" / "schema.json").write_text(json.dumps(schema, indent=4))


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


def _write_model_data(pipeline: Any, data_dir: Path, dfs_tmpdir: str | None) -> None:
    if _is_connect_ml_model(pipeline):
        pipeline.saveToLocal(str(data_dir))
        return
    spark = staging.active_session()
    try:
        staging.write_model(spark, pipeline, data_dir, dfs_tmpdir)
    except Exception as e:
        if staging.is_connect(spark) and _connect_ml_unsupported(e):
            raise NotSupportedError(
                f"Spark Connect cannot save {type(pipeline).__name__} (stages: "
                f"{', '.join(type(s).__name__ for s in _stages(pipeline))}) to {data_dir}: {_summary(e)}"
            ) from e
        raise


def _load_from_dir(model_dir: Path, dfs_tmpdir: str | None = None) -> Any:
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
        if staging.is_connect(spark) and _connect_ml_unsupported(e):
            raise NotSupportedError(f"Spark Connect cannot load the {model_class} in {data_dir}: {_summary(e)}") from e
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

    ``model_config={"runtime": ...}``: ``"auto"`` (default) scores the MLeap bundle in
    numpy when the model has one, else runs the pipeline through Spark; ``"spark"`` always
    uses Spark; ``"mleap"`` requires the bundle.
    """
    from spark_models.flavors.spark_scoring import SparkPipelinePyfunc

    runtime = (model_config or {}).get("runtime", "auto")
    if runtime not in RUNTIMES:
        raise InvalidArgumentError(
            f"model_config['runtime'] must be one of {', '.join(map(repr, RUNTIMES))}, got {runtime!r}"
        )
    data = Path(path)
    model_dir = data.parent if (data.parent / "MLmodel").is_file() else data
    meta = Model.load(model_dir)
    if runtime != "spark" and "mleap" in meta.flavors:
        from spark_models.flavors.mleap import BundlePyfunc, _load_from_dir as load_bundle_dir

        return BundlePyfunc(load_bundle_dir(model_dir), meta.signature)
    if runtime == "mleap":
        raise NotSupportedError(
            f"model_config runtime='mleap' needs an MLeap bundle, but {model_dir} has none "
            f"({_why_no_bundle(model_dir, meta, str(model_dir))}); use runtime='spark' or 'auto' to score it with Spark"
        )
    return SparkPipelinePyfunc(_load_from_dir(model_dir), meta.signature, model_config)


def _inspect_foreign_model(model_dir: Path) -> list[str] | None:
    """The stages the bridge cannot export of a model saved without a record (e.g. by MLflow),
    found by loading the pipeline on the driver; None when that is not possible."""
    if staging.active_session(create=False) is None:
        return None
    try:
        return unsupported_mleap_stages(_load_from_dir(model_dir))
    except Exception as e:  # the reason is best effort; the refusal stands without it
        _logger.debug("Could not inspect the stages of %s: %s", model_dir, e)
        return None


def _why_no_bundle(model_dir: Path, meta: Model, uri: str) -> str:
    recorded = meta.flavors.get(FLAVOR_NAME, {}).get(MLEAP_SKIPPED)
    if recorded:
        return recorded
    unsupported = _inspect_foreign_model(model_dir)
    if unsupported:
        return f"mleap_bridge cannot export stage(s) {', '.join(unsupported)}"
    resave = f"re-save it with spark_models.spark.save_model(spark_models.spark.load_model({uri!r}), new_path) to add one"
    if unsupported == []:
        return f"it was saved without one (e.g. by MLflow), although mleap_bridge supports all its stages; {resave}"
    return f"it was saved without one (by MLflow, or by an older spark-models); {resave} if mleap_bridge supports its stages"


def _scores_in_tasks(meta: Model) -> bool:
    """An ``mleap`` flavor lets the workers score it in numpy; ``pyspark.ml.connect`` models run on pandas."""
    conf = meta.flavors.get(FLAVOR_NAME, {})
    return "mleap" in meta.flavors or str(conf.get("model_class", "")).startswith(_CONNECT_ML_PREFIX)


def _udf_refusal(uri: str, why: str) -> str:
    return (
        f"it has no MLeap bundle to score in numpy ({why}), and a Spark ML pipeline needs a SparkContext, which "
        "does not exist inside a Spark task. Score it on the driver with Spark instead: "
        f"spark_models.spark.load_model({uri!r}).transform(df), or spark_models.spark.transform(df, {uri!r}) to "
        "keep df's columns plus the prediction columns."
    )


def udf_unsupported_reason(model_uri: str) -> str | None:
    """Why ``spark_udf`` cannot run this model inside Spark tasks as it is (None when it can:
    an ``mleap`` flavor lets the workers score it in numpy, and ``pyspark.ml.connect`` models
    run on pandas). ``spark_udf`` itself first tries :func:`udf_conversion`."""
    try:
        model_dir = resolve_model_uri(model_uri)
        meta = Model.load(model_dir)
    except Exception:  # an unreadable model fails later with its own message
        return None
    if _scores_in_tasks(meta):
        return None
    uri = os.fspath(model_uri)
    return _udf_refusal(uri, _why_no_bundle(model_dir, meta, uri))


def udf_conversion(spark: Any, model_dir: Path, model_uri: str) -> Callable[[Path], None] | None:
    """How ``spark_udf`` gets a model its workers can score: None when ``model_dir`` ships as it
    is; else a function writing a copy of it with an MLeap bundle (and ``mleap`` flavor) into a
    new directory, on the driver. Converting needs a classic SparkSession: under Spark Connect
    this is a NotSupportedError saying what to do instead."""
    meta = Model.load(model_dir)
    if _scores_in_tasks(meta):
        return None
    uri = os.fspath(model_uri)
    if staging.is_connect(spark):
        raise NotSupportedError(
            "it has no MLeap bundle for the workers to score in numpy, and spark_udf converts a Spark ML pipeline "
            "to one only with a classic SparkSession, not Spark Connect. Re-save it with spark_models.spark."
            f"save_model(spark_models.spark.load_model({uri!r}), new_path), which writes a bundle when "
            "mleap_bridge supports every stage, or score it on the driver with Spark: "
            f"spark_models.spark.load_model({uri!r}).transform(df) or spark_models.spark.transform(df, {uri!r})."
        )
    return functools.partial(_write_bundled_copy, model_dir, uri)


def _write_bundled_copy(model_dir: Path, uri: str, dest: Path) -> None:
    """Copy ``model_dir`` to ``dest`` (new) and add an MLeap bundle; refuses, naming the stages,
    when mleap_bridge cannot export the pipeline. ``model_dir`` is only read."""
    started = time.perf_counter()
    shutil.copytree(model_dir, dest)
    shutil.rmtree(dest / "mleap", ignore_errors=True)
    meta = Model.load(dest)
    conf = meta.flavors.get(FLAVOR_NAME, {})
    if conf.get("model_data", MODEL_DATA) != MODEL_DATA:
        raise NotSupportedError(_udf_refusal(uri, f"its Spark ML data is in {conf['model_data']!r}, not {MODEL_DATA!r}"))
    pipeline = _load_from_dir(model_dir)
    unsupported = unsupported_mleap_stages(pipeline)
    reason = f"mleap_bridge cannot export stage(s) {', '.join(unsupported)}" if unsupported else None
    reason = reason or _write_bundle(meta, dest, pipeline, strict=False)
    if reason:
        raise NotSupportedError(_udf_refusal(uri, reason))
    conf.pop(MLEAP_SKIPPED, None)
    meta.save(dest)
    _write_mleap_schema(dest, meta.signature)
    _logger.info("spark_udf: %s has no MLeap bundle; made a copy with one in %.1fs", uri, time.perf_counter() - started)


def transform(df: Any, model: Any, output_cols: Sequence[str] | None = None, vectors_as_arrays: bool = False) -> Any:
    """Apply a spark-flavor model (URI or PipelineModel) to ``df`` with Spark's ``transform``.

    Keeps ``df``'s columns plus ``output_cols`` (default: the signature's output names, else
    ``prediction``) and drops the pipeline's intermediate columns. ``vectors_as_arrays``
    turns ML vector outputs (``probability``) into ``array<double>``.
    """
    from spark_models.flavors.spark_scoring import transform_keep

    return transform_keep(df, model, output_cols, vectors_as_arrays)
