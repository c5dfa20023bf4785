"""How ``spark_udf`` gets a spark-flavor model its workers can score (the flavor's
``prepare_for_udf`` hook), and the refusal when it cannot.

A Spark ML pipeline needs a SparkContext, which does not exist inside a Spark task. Workers
therefore score the model's MLeap bundle in numpy; a model without one (saved by MLflow, or
with ``mleap=False``) is converted on the driver into a copy with one. ``pyspark.ml.connect``
models transform pandas themselves and ship as they are.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from spark_models.exceptions import NotSupportedError
from spark_models.flavors.contract import LoadContext, UdfBuild
from spark_models.flavors.spark.bundles import why_no_bundle, write_bundled_copy
from spark_models.flavors.spark.persistence import CONNECT_ML_PREFIX, FLAVOR_NAME
from spark_models.sessions import is_connect

_logger = logging.getLogger(__name__)


def scores_in_tasks(context: LoadContext) -> bool:
    """An ``mleap`` flavor lets the workers score it in numpy; ``pyspark.ml.connect`` models run on pandas."""
    conf = context.model.flavors.get(FLAVOR_NAME, {})
    return "mleap" in context.model.flavors or str(conf.get("model_class", "")).startswith(CONNECT_ML_PREFIX)


def udf_refusal(uri: str, why: str) -> str:
    return (
        f"it has no MLeap bundle to score in numpy ({why}), and a Spark ML pipeline needs a SparkContext, which "
        "does not exist inside a Spark task. Score it on the driver with Spark instead: "
        f"spark_models.spark.load_model({uri!r}).transform(df), or spark_models.spark.transform(df, {uri!r}) to "
        "keep df's columns plus the prediction columns."
    )


def unsupported_reason(context: LoadContext, model_uri: str) -> str | None:
    """Why the workers cannot score the model as it is (None when they can)."""
    if scores_in_tasks(context):
        return None
    return udf_refusal(model_uri, why_no_bundle(context, model_uri))


def prepare_for_udf(spark: Any, context: LoadContext, model_uri: str) -> UdfBuild | None:
    """None when the model ships as it is; else a function writing a copy with an MLeap bundle
    (and ``mleap`` flavor) into a new directory, on the driver. Converting needs a classic
    SparkSession: under Spark Connect this is a NotSupportedError saying what to do instead."""
    if scores_in_tasks(context):
        return None
    if is_connect(spark):
        raise NotSupportedError(
            "it has no MLeap bundle for the workers to score in numpy, and spark_udf converts a Spark ML pipeline "
            "to one only with a classic SparkSession, not Spark Connect. Re-save it with spark_models.spark."
            f"save_model(spark_models.spark.load_model({model_uri!r}), new_path), which writes a bundle when "
            "mleap_bridge supports every stage, or score it on the driver with Spark: "
            f"spark_models.spark.load_model({model_uri!r}).transform(df) or "
            f"spark_models.spark.transform(df, {model_uri!r})."
        )

    def build(dest: Path) -> None:
        started = time.perf_counter()
        reason = write_bundled_copy(context, dest)
        if reason:
            raise NotSupportedError(udf_refusal(model_uri, reason))
        _logger.info("spark_udf: %s has no MLeap bundle; made a copy with one in %.1fs", model_uri,
                     time.perf_counter() - started)

    return build
