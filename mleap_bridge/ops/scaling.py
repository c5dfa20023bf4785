"""Numeric transforms: min_max_scaler, max_abs_scaler, normalizer, binarizer, pca."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from spark_models.exceptions import MalformedModelError

from mleap_bridge import attributes as A
from mleap_bridge.bundle import Node
from mleap_bridge.frame import Frame, as_float
from mleap_bridge.ops import OpSpec, register

Kernel = Callable[[Frame], None]


def _unary(node: Node, fn: Callable[[np.ndarray], np.ndarray]) -> Kernel:
    column, output = node.input(), node.output()

    def run(frame: Frame) -> None:
        frame.data[output] = fn(as_float(frame.column(column, node.name)))

    return run


def _io(stage: Any) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    return [("input", stage.getInputCol())], [("output", stage.getOutputCol())]


def _model(java_class: str, python_class: Any, node: Node, *args: Any, **params: Any) -> Any:
    from mleap_bridge import jvm

    return jvm.new_model(java_class, python_class, node.name, *args, inputCol=node.input(), outputCol=node.output(), **params)


# ---- min_max_scaler ---------------------------------------------------------------------

def _min_max(node: Node) -> Kernel:
    lo, hi = as_float(node.attr("min", "tensor")), as_float(node.attr("max", "tensor"))
    if lo.shape != hi.shape:
        raise MalformedModelError(f"MLeap node {node.name!r} (min_max_scaler): attribute 'min' has shape {lo.shape} "
                                  f"but 'max' has {hi.shape}")
    new_min, new_max = float(node.attr("minValue", "double", 0.0)), float(node.attr("maxValue", "double", 1.0))
    span = hi - lo
    safe = np.where(span != 0, span, 1.0)

    def scale(x: np.ndarray) -> np.ndarray:
        return np.where(span != 0, (x - lo) / safe * (new_max - new_min) + new_min, 0.5 * (new_max - new_min) + new_min)

    return _unary(node, scale)


def _min_max_from_spark(stage: Any, shapes: dict) -> Node:
    shapes[stage.getOutputCol()] = len(stage.originalMin)
    return Node(stage.uid, "min_max_scaler", {
        "min": A.tensor(stage.originalMin.toArray()), "max": A.tensor(stage.originalMax.toArray()),
        "minValue": A.scalar("double", stage.getMin()), "maxValue": A.scalar("double", stage.getMax()),
    }, *_io(stage))


def _min_max_to_spark(node: Node) -> Any:
    from pyspark.ml.feature import MinMaxScalerModel

    from mleap_bridge import jvm

    return _model("org.apache.spark.ml.feature.MinMaxScalerModel", MinMaxScalerModel, node,
                  jvm.dense_vector(node.attr("min", "tensor")), jvm.dense_vector(node.attr("max", "tensor")),
                  min=float(node.attr("minValue", "double", 0.0)), max=float(node.attr("maxValue", "double", 1.0)))


register(OpSpec("min_max_scaler", _min_max, ("MinMaxScalerModel",), _min_max_from_spark, _min_max_to_spark))


# ---- max_abs_scaler ---------------------------------------------------------------------

def _max_abs(node: Node) -> Kernel:
    max_abs = as_float(node.attr("maxAbs", "tensor"))
    factor = np.where(max_abs != 0, 1.0 / np.where(max_abs != 0, max_abs, 1.0), 1.0)  # Spark leaves 0-range features as they are
    return _unary(node, lambda x: x * factor)


def _max_abs_from_spark(stage: Any, shapes: dict) -> Node:
    shapes[stage.getOutputCol()] = len(stage.maxAbs)
    return Node(stage.uid, "max_abs_scaler", {"maxAbs": A.tensor(stage.maxAbs.toArray())}, *_io(stage))


def _max_abs_to_spark(node: Node) -> Any:
    from pyspark.ml.feature import MaxAbsScalerModel

    from mleap_bridge import jvm

    return _model("org.apache.spark.ml.feature.MaxAbsScalerModel", MaxAbsScalerModel, node,
                  jvm.dense_vector(node.attr("maxAbs", "tensor")))


register(OpSpec("max_abs_scaler", _max_abs, ("MaxAbsScalerModel",), _max_abs_from_spark, _max_abs_to_spark))


# ---- normalizer -------------------------------------------------------------------------

def _p_norm(node: Node) -> float:
    """``p``; a null (NaN) one is infinity: MLeap's JSON writes p = ∞ as null, and p ≥ 1 otherwise."""
    p = float(node.attr("p_norm", "double", 2.0))
    return np.inf if np.isnan(p) else p


def _normalizer(node: Node) -> Kernel:
    p = _p_norm(node)

    def normalize(x: np.ndarray) -> np.ndarray:
        norm = np.max(np.abs(x), axis=1) if np.isinf(p) else np.sum(np.abs(x) ** p, axis=1) ** (1.0 / p)
        return np.where(norm[:, None] != 0, x / np.where(norm != 0, norm, 1.0)[:, None], x)

    return _unary(node, normalize)


def _normalizer_from_spark(stage: Any, shapes: dict) -> Node:
    shapes[stage.getOutputCol()] = shapes.get(stage.getInputCol())
    return Node(stage.uid, "normalizer", {"p_norm": A.scalar("double", stage.getP())}, *_io(stage))


def _normalizer_to_spark(node: Node) -> Any:
    from pyspark.ml.feature import Normalizer

    return Normalizer(p=_p_norm(node), inputCol=node.input(), outputCol=node.output())


register(OpSpec("normalizer", _normalizer, ("Normalizer",), _normalizer_from_spark, _normalizer_to_spark))


# ---- binarizer --------------------------------------------------------------------------

def _binarizer(node: Node) -> Kernel:
    threshold = float(node.attr("threshold", "double"))
    return _unary(node, lambda x: (x > threshold).astype(np.float64))


def _binarizer_from_spark(stage: Any, shapes: dict) -> Node:
    shapes[stage.getOutputCol()] = shapes.get(stage.getInputCol())
    return Node(stage.uid, "binarizer", {"threshold": A.scalar("double", stage.getThreshold())}, *_io(stage))


def _binarizer_to_spark(node: Node) -> Any:
    from pyspark.ml.feature import Binarizer

    return Binarizer(threshold=float(node.attr("threshold", "double")), inputCol=node.input(), outputCol=node.output())


register(OpSpec("binarizer", _binarizer, ("Binarizer",), _binarizer_from_spark, _binarizer_to_spark))


# ---- pca --------------------------------------------------------------------------------

def _components(node: Node) -> np.ndarray:
    """MLeap stores Spark's DenseMatrix values as they are: column-major, dims [features, k]."""
    return node.matrix("principal_components")


def _pca(node: Node) -> Kernel:
    pc = _components(node)  # (features, k)
    return _unary(node, lambda x: x @ pc)


def _pca_from_spark(stage: Any, shapes: dict) -> Node:
    shapes[stage.getOutputCol()] = stage.getK()
    return Node(stage.uid, "pca", {"principal_components": A.matrix_tensor(stage.pc.toArray())}, *_io(stage))


def _pca_to_spark(node: Node) -> Any:
    from pyspark.ml.feature import PCAModel

    from mleap_bridge import jvm

    pc = _components(node)
    gw = jvm.gateway()
    dense = gw.jvm.org.apache.spark.ml.linalg.DenseMatrix(
        pc.shape[0], pc.shape[1], jvm.dense_vector(pc.ravel(order="F")).toArray(), False)
    return _model("org.apache.spark.ml.feature.PCAModel", PCAModel, node, dense,
                  jvm.dense_vector(np.zeros(pc.shape[1])), k=int(pc.shape[1]))


register(OpSpec("pca", _pca, ("PCAModel",), _pca_from_spark, _pca_to_spark))
