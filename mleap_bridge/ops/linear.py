"""Linear models: linear_regression, logistic_regression (binary and multinomial)."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from mleap_bridge import attributes as A
from mleap_bridge.bundle import Node
from mleap_bridge.frame import Frame, as_float
from mleap_bridge.ops import OpSpec, register

Kernel = Callable[[Frame], None]


def _features(frame: Frame, node: Node) -> np.ndarray:
    x = as_float(frame.column(node.input("features"), node.name))
    return x if x.ndim == 2 else x[:, None]


# ---- linear_regression ------------------------------------------------------------------

def _linear(node: Node) -> Kernel:
    coefficients = as_float(node.attr("coefficients", "tensor"))
    intercept = float(node.attr("intercept", "double"))
    output = node.output("prediction")

    def run(frame: Frame) -> None:
        frame.data[output] = _features(frame, node) @ coefficients + intercept

    return run


def _linear_from_spark(stage: Any, shapes: dict[str, int | None]) -> Node:
    shapes[stage.getPredictionCol()] = None
    return Node(stage.uid, "linear_regression",
                {"coefficients": A.tensor(stage.coefficients.toArray()), "intercept": A.scalar("double", stage.intercept)},
                [("features", stage.getFeaturesCol())], [("prediction", stage.getPredictionCol())])


def _linear_to_spark(node: Node) -> Any:
    from pyspark.ml.regression import LinearRegressionModel

    from mleap_bridge import jvm

    return jvm.new_model("org.apache.spark.ml.regression.LinearRegressionModel", LinearRegressionModel, node.name,
                         jvm.dense_vector(node.attr("coefficients", "tensor")), float(node.attr("intercept", "double")),
                         featuresCol=node.input("features"), predictionCol=node.output("prediction"))


register(OpSpec("linear_regression", _linear, ("LinearRegressionModel",), _linear_from_spark, _linear_to_spark))


# ---- logistic_regression ----------------------------------------------------------------

def _sigmoid(m: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-m))


def _softmax(raw: np.ndarray) -> np.ndarray:
    shifted = np.exp(raw - raw.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def _binary_scores(node: Node) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]:
    coefficients = as_float(node.attr("coefficients", "tensor")).ravel()
    intercept = float(node.attr("intercept", "double"))
    thresholds = node.attr("thresholds", "list", None)
    threshold = float(node.attr("threshold", "double", 0.5)) if not thresholds else float(thresholds[1]) / (
        float(thresholds[0]) + float(thresholds[1]))

    def scores(x: np.ndarray):
        m = x @ coefficients + intercept
        p1 = _sigmoid(m)
        return np.column_stack([-m, m]), np.column_stack([1.0 - p1, p1]), (p1 > threshold).astype(np.float64)

    return scores


def _multinomial_scores(node: Node) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]:
    weights = as_float(node.attr("coefficient_matrix", "tensor"))
    intercepts = as_float(node.attr("intercept_vector", "tensor")).ravel()
    thresholds = node.attr("thresholds", "list", None)

    def scores(x: np.ndarray):
        raw = x @ weights.T + intercepts
        probability = _softmax(raw)
        if thresholds:
            t = as_float(thresholds)
            scaled = np.where(t == 0, np.inf, probability / np.where(t == 0, 1, t))
            prediction = np.argmax(scaled, axis=1).astype(np.float64)
        else:
            prediction = np.argmax(raw, axis=1).astype(np.float64)
        return raw, probability, prediction

    return scores


def _logistic(node: Node) -> Kernel:
    binary = int(node.attr("num_classes", "long", 2)) == 2 and "coefficients" in node.attributes
    scores = _binary_scores(node) if binary else _multinomial_scores(node)
    ports = [("raw_prediction", 0), ("probability", 1), ("prediction", 2)]
    outputs = [(node.output(port), i) for port, i in ports if node.output(port)]

    def run(frame: Frame) -> None:
        results = scores(_features(frame, node))
        for column, i in outputs:
            frame.data[column] = results[i]

    return run


def _logistic_from_spark(stage: Any, shapes: dict[str, int | None]) -> Node:
    k = stage.numClasses
    attributes: dict[str, Any] = {"num_classes": A.scalar("long", k)}
    if k == 2 and stage.coefficientMatrix.numRows == 1:
        attributes["coefficients"] = A.tensor(stage.coefficients.toArray())
        attributes["intercept"] = A.scalar("double", stage.intercept)
        attributes["threshold"] = A.scalar("double", stage.getThreshold())
    else:
        attributes["coefficient_matrix"] = A.tensor(stage.coefficientMatrix.toArray())
        attributes["intercept_vector"] = A.tensor(stage.interceptVector.toArray())
        if stage.isDefined(stage.thresholds) and stage.isSet(stage.thresholds):
            attributes["thresholds"] = A.listed("double", stage.getThresholds())
    outputs = [("raw_prediction", stage.getRawPredictionCol()), ("probability", stage.getProbabilityCol()),
               ("prediction", stage.getPredictionCol())]
    outputs = [(p, c) for p, c in outputs if c]
    for port, c in outputs:
        shapes[c] = None if port == "prediction" else k
    return Node(stage.uid, "logistic_regression", attributes, [("features", stage.getFeaturesCol())], outputs)


def _logistic_to_spark(node: Node) -> Any:
    from pyspark.ml.classification import LogisticRegressionModel

    from mleap_bridge import jvm

    k = int(node.attr("num_classes", "long", 2))
    binary = "coefficients" in node.attributes
    if binary:
        matrix = np.atleast_2d(node.attr("coefficients", "tensor"))
        intercepts = [float(node.attr("intercept", "double"))]
    else:
        matrix, intercepts = node.attr("coefficient_matrix", "tensor"), node.attr("intercept_vector", "tensor")
    thresholds = node.attr("thresholds", "list", None)
    cols = {"featuresCol": node.input("features"), "predictionCol": node.output("prediction") or "",
            "probabilityCol": node.output("probability") or "", "rawPredictionCol": node.output("raw_prediction") or ""}
    if binary and not thresholds:
        cols["threshold"] = float(node.attr("threshold", "double", 0.5))
    elif thresholds:
        cols["thresholds"] = [float(t) for t in thresholds]
    return jvm.new_model("org.apache.spark.ml.classification.LogisticRegressionModel", LogisticRegressionModel,
                         node.name, jvm.dense_matrix(matrix), jvm.dense_vector(intercepts), k, not binary, **cols)


register(OpSpec("logistic_regression", _logistic, ("LogisticRegressionModel",), _logistic_from_spark,
                _logistic_to_spark))
