"""When a spark-flavor model gets an MLeap bundle (``mleap="auto"|True|False``), and why not.

A bundle lets pyfunc and ``spark_udf`` score the pipeline in numpy without Spark. It is
written by :func:`spark_models.flavors.mleap.write_bundle` (the one writer of the mleap
flavor); this module decides whether to write it and records why none was written in the
spark flavor (``mleap_skipped``).
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Any

from spark_models.exceptions import InvalidArgumentError, NotSupportedError
from spark_models.flavors import mleap as mleap_flavor
from spark_models.flavors.contract import LoadContext
from spark_models.flavors.spark.persistence import FLAVOR_NAME, MODEL_DATA, is_connect_ml_model, load_pipeline, stages
from spark_models.mlmodel import Model
from spark_models.sessions import active_session

_logger = logging.getLogger(__name__)

MLEAP_SKIPPED = "mleap_skipped"  # spark flavor key: why no bundle was written


def check_mode(mleap: Any, sample_input: Any) -> None:
    if not (mleap is True or mleap is False or mleap == "auto"):
        raise InvalidArgumentError(f"mleap must be 'auto', True or False, got {mleap!r}")
    if sample_input is not None and mleap is False:
        raise InvalidArgumentError("sample_input= writes an MLeap bundle, which mleap=False refuses; pass one of them")


def unsupported_mleap_stages(pipeline: Any) -> list[str]:
    """The stages :mod:`mleap_bridge` cannot export, as ``"Class (uid)"``."""
    from mleap_bridge.ops import spec_for_spark

    unsupported = []
    for stage in stages(pipeline):
        try:
            spec_for_spark(stage)
        except NotSupportedError:
            unsupported.append(f"{type(stage).__name__} ({stage.uid})")
    return unsupported


def add_bundle(model: Model, model_dir: Path, pipeline: Any, sample_input: Any, mode: bool | str) -> str | None:
    """Write the MLeap bundle and flavor as ``mode`` asks; returns why none was written (None when it was)."""
    if sample_input is not None:
        mleap_flavor.write_bundle(model, model_dir, pipeline, sample_input=sample_input)
        return None
    if mode is False:
        return "saved with mleap=False"
    if is_connect_ml_model(pipeline):  # scored on pandas anyway, without Spark
        if mode is True:
            raise NotSupportedError(f"mleap=True: {type(pipeline).__name__} is a pyspark.ml.connect model, "
                                    "which MLeap bundles do not cover")
        return None
    unsupported = unsupported_mleap_stages(pipeline)
    reason = f"mleap_bridge cannot export stage(s) {', '.join(unsupported)}" if unsupported else None
    if reason is None:
        reason = _try_write_bundle(model, model_dir, pipeline, strict=mode is True)
    elif mode is True:
        raise NotSupportedError(f"mleap=True: {reason}")
    if reason is not None:
        _logger.info("Saving %s without an MLeap bundle: %s. pyfunc and spark_udf will need Spark to score it.",
                     model_dir, reason)
    return reason


def _try_write_bundle(model: Model, model_dir: Path, pipeline: Any, strict: bool) -> str | None:
    started = time.perf_counter()
    try:  # tree models read their nodes from the sparkml/ directory just written
        mleap_flavor.write_bundle(model, model_dir, pipeline, spark_data_dir=model_dir / MODEL_DATA)
    except Exception as e:
        if strict:
            raise
        shutil.rmtree(model_dir / "mleap", ignore_errors=True)
        model.flavors.pop(mleap_flavor.FLAVOR_NAME, None)
        if not isinstance(e, NotSupportedError):
            _logger.warning("mleap_bridge failed to export %s (%s: %s)", type(pipeline).__name__, type(e).__name__, e)
        return f"mleap_bridge could not export it: {str(e).splitlines()[0] if str(e) else type(e).__name__}"
    _logger.info("Wrote an MLeap bundle to %s in %.1fs", model_dir / mleap_flavor.MODEL_DATA, time.perf_counter() - started)
    return None


def why_no_bundle(context: LoadContext, uri: str) -> str:
    """Why the model has no bundle: the recorded reason, else what inspecting its stages shows."""
    recorded = context.model.flavors.get(FLAVOR_NAME, {}).get(MLEAP_SKIPPED)
    if recorded:
        return recorded
    unsupported = _inspect_foreign_model(context)
    if unsupported:
        return f"mleap_bridge cannot export stage(s) {', '.join(unsupported)}"
    resave = f"re-save it with spark_models.spark.save_model(spark_models.spark.load_model({uri!r}), new_path) to add one"
    if unsupported == []:
        return f"it was saved without one (e.g. by MLflow), although mleap_bridge supports all its stages; {resave}"
    return f"it was saved without one (by MLflow, or by an older spark-models); {resave} if mleap_bridge supports its stages"


def _inspect_foreign_model(context: LoadContext) -> list[str] | None:
    """The stages the bridge cannot export of a model saved without a record (e.g. by MLflow),
    found by loading the pipeline on the driver; None when that is not possible."""
    if active_session(create=False) is None:
        return None
    try:
        return unsupported_mleap_stages(load_pipeline(context))
    except Exception as e:  # the reason is best effort; the refusal stands without it
        _logger.debug("Could not inspect the stages of %s: %s", context.model_dir, e)
        return None


def write_bundled_copy(context: LoadContext, dest: Path) -> str | None:
    """Copy the model to ``dest`` (new) with an MLeap bundle; returns why it cannot (None when
    written). The model directory itself is only read."""
    shutil.copytree(context.model_dir, dest)
    shutil.rmtree(dest / "mleap", ignore_errors=True)
    meta = Model.load(dest)
    conf = meta.flavors.get(FLAVOR_NAME, {})
    if conf.get("model_data", MODEL_DATA) != MODEL_DATA:
        return f"its Spark ML data is in {conf['model_data']!r}, not {MODEL_DATA!r}"
    pipeline = load_pipeline(context)
    unsupported = unsupported_mleap_stages(pipeline)
    reason = f"mleap_bridge cannot export stage(s) {', '.join(unsupported)}" if unsupported else None
    reason = reason or _try_write_bundle(meta, dest, pipeline, strict=False)
    if reason:
        return reason
    conf.pop(MLEAP_SKIPPED, None)
    meta.save(dest)
    mleap_flavor.write_schema_from_signature(dest, meta.signature)
    return None
