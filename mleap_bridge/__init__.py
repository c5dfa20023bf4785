"""MLeap bundles without the JVM: read and write Bundle.ML (JSON), score it in numpy.

- :func:`load_bundle` — a bundle directory or zip → a model with ``transform(pandas_df)``.
- :func:`to_bundle` — a fitted Spark ``PipelineModel`` → a bundle (no MLeap jars needed).
- :func:`to_spark` — a bundle → a Spark ``PipelineModel``, so Spark can score MLeap's bundles.
- :func:`read_leapframe` / :func:`write_leapframe` — MLeap's LeapFrame JSON ⇄ pandas.
"""

from mleap_bridge.bundle import Bundle, Node, read_bundle, write_bundle
from mleap_bridge.leapframe import read_leapframe, write_leapframe
from mleap_bridge.ops import supported_ops
from mleap_bridge.runtime import BundleModel, load_bundle


def to_bundle(pipeline_model, path, sample_df=None, spark_data_dir=None):
    """Write a fitted Spark pipeline as a JSON bundle (see :mod:`mleap_bridge.spark`).

    ``spark_data_dir``: where Spark ML persistence already saved the same pipeline; its tree
    tables are reused instead of a temporary save.
    """
    from mleap_bridge.spark import to_bundle as _to_bundle

    return _to_bundle(pipeline_model, path, sample_df, spark_data_dir=spark_data_dir)


def to_spark(bundle_path):
    """A bundle as a Spark ``PipelineModel`` (see :mod:`mleap_bridge.spark`)."""
    from mleap_bridge.spark import to_spark as _to_spark

    return _to_spark(bundle_path)


__all__ = ["to_spark", "Bundle", "BundleModel", "Node", "load_bundle", "read_bundle", "write_bundle", "read_leapframe",
           "write_leapframe", "supported_ops", "to_bundle"]
