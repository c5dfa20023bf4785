"""Building Spark ML models from bundle parameters through the JVM (classic sessions only).

Fitted Spark models have no Python constructors; their Scala constructors are reachable
through py4j. Spark Connect sessions have no py4j gateway, so :func:`gateway` refuses them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from spark_models.exceptions import NotSupportedError


def gateway() -> Any:
    from pyspark import SparkContext

    from spark_models.sessions import active_session, is_connect

    spark = active_session()
    if is_connect(spark):
        raise NotSupportedError("to_spark needs a classic SparkSession (py4j); Spark Connect sessions cannot build models")
    return SparkContext._gateway


def _array(gw: Any, kind: Any, values: Any) -> Any:
    values = list(values)
    out = gw.new_array(kind, len(values))
    for i, v in enumerate(values):
        out[i] = v
    return out


def int_array(values: Any) -> Any:
    gw = gateway()
    return _array(gw, gw.jvm.int, [int(v) for v in values])


def string_arrays(lists: Any) -> Any:
    """A jagged ``String[][]`` (PySpark's own helper pads short arrays with nulls)."""
    gw = gateway()
    outer = gw.new_array(gw.jvm.String, len(lists), 0)
    for i, values in enumerate(lists):
        outer[i] = _array(gw, gw.jvm.String, [str(v) for v in values])
    return outer


def dense_vector(values: Any) -> Any:
    gw = gateway()
    return gw.jvm.org.apache.spark.ml.linalg.Vectors.dense(_array(gw, gw.jvm.double, [float(v) for v in np.ravel(values)]))


def dense_matrix(matrix: Any) -> Any:
    gw = gateway()
    m = np.atleast_2d(np.asarray(matrix, dtype=np.float64))
    row_major = _array(gw, gw.jvm.double, [float(v) for v in m.ravel()])
    # isTransposed=true: values are row-major (a binomial LogisticRegressionModel requires it)
    return gw.jvm.org.apache.spark.ml.linalg.DenseMatrix(m.shape[0], m.shape[1], row_major, True)


def new_object(java_class: str, *args: Any) -> Any:
    """``new java_class(*args)`` in the JVM."""
    cls = gateway().jvm
    for part in java_class.split("."):
        cls = getattr(cls, part)
    return cls(*args)


def new_model(java_class: str, python_class: Any, *args: Any, **params: Any) -> Any:
    """``new java_class(*args)`` wrapped in ``python_class`` with ``params`` set."""
    model = python_class(new_object(java_class, *args))
    model._set(**{k: v for k, v in params.items() if v is not None})
    return model
