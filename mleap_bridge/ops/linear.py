"""Linear models: linear_regression, logistic_regression (binary and multinomial)."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from spark_models.exceptions import MalformedModelError

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
    with np.errstate(over="ignore"):  # exp(-m) = inf for very negative margins gives 0.0, as in Spark
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
    weights = node.matrix("coefficient_matrix")  # classes × features (MLeap: column-major values)
    intercepts = as_float(node.attr("intercept_vector", "tensor")).ravel()
    if len(intercepts) != len(weights):
        raise MalformedModelError(f"MLeap node {node.name!r} (logistic_regression): 'intercept_vector' has "
                                  f"{len(intercepts)} values but 'coefficient_matrix' has {len(weights)} rows")
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


def _is_multinomial(node: Node) -> bool:
    """MLeap reads ``num_classes > 2`` as multinomial; a 2-class node is binary unless it also
    carries the matrix (we add it to 2-class multinomial Spark models, see below)."""
    return "coefficient_matrix" in node.attributes or "coefficients" not in node.attributes


def _logistic(node: Node) -> Kernel:
    node.size("num_classes", "long", 2)
    scores = _multinomial_scores(node) if _is_multinomial(node) else _binary_scores(node)
    ports = [("raw_prediction", 0), ("probability", 1), ("prediction", 2)]
    outputs = [(node.output(port), i) for port, i in ports if node.output(port)]

    def run(frame: Frame) -> None:
        results = scores(_features(frame, node))
        for column, i in outputs:
            frame.data[column] = results[i]

    return run


def _binary_attributes(stage: Any) -> dict[str, Any]:
    """What MLeap's reader needs for ``num_classes == 2``: coefficients, intercept, threshold.

    A 2-class *multinomial* model (rows w0, w1) is the binary model w1 − w0, b1 − b0: same
    probabilities and predictions; only rawPrediction differs ([−m, m] instead of [r0, r1]).
    """
    matrix, intercepts = stage.coefficientMatrix.toArray(), stage.interceptVector.toArray()
    if matrix.shape[0] == 1:
        coefficients, intercept, threshold = matrix[0], float(intercepts[0]), stage.getThreshold()
    else:  # Spark's multinomial predict ignores `threshold`: argmax of thresholds-scaled probability, else p1 > 0.5
        coefficients, intercept = matrix[1] - matrix[0], float(intercepts[1] - intercepts[0])
        t = stage.getThresholds() if stage.isSet(stage.thresholds) else [0.5, 0.5]
        threshold = t[1] / (t[0] + t[1])
    return {"coefficients": A.tensor(coefficients), "intercept": A.scalar("double", intercept),
            "threshold": A.scalar("double", threshold)}


def _logistic_from_spark(stage: Any, shapes: dict[str, int | None]) -> Node:
    k = stage.numClasses
    attributes: dict[str, Any] = {"num_classes": A.scalar("long", k)}
    if k == 2:
        attributes.update(_binary_attributes(stage))
    if stage.coefficientMatrix.numRows > 1:  # multinomial (for k == 2 also kept, so Spark's raw scores survive)
        attributes["coefficient_matrix"] = A.matrix_tensor(stage.coefficientMatrix.toArray())
        attributes["intercept_vector"] = A.tensor(stage.interceptVector.toArray())
        if stage.isSet(stage.thresholds):
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

    k = node.size("num_classes", "long", 2)
    multinomial = _is_multinomial(node)
    if multinomial:
        matrix, intercepts = node.matrix("coefficient_matrix"), node.attr("intercept_vector", "tensor")
    else:
        matrix = np.atleast_2d(node.attr("coefficients", "tensor"))
        intercepts = [float(node.attr("intercept", "double"))]
    thresholds = node.attr("thresholds", "list", None)
    cols = {"featuresCol": node.input("features"), "predictionCol": node.output("prediction") or "",
            "probabilityCol": node.output("probability") or "", "rawPredictionCol": node.output("raw_prediction") or ""}
    if thresholds:
        cols["thresholds"] = [float(t) for t in thresholds]
    elif not multinomial:
        cols["threshold"] = float(node.attr("threshold", "double", 0.5))
    return jvm.new_model("org.apache.spark.ml.classification.LogisticRegressionModel", LogisticRegressionModel,
                         node.name, jvm.dense_matrix(matrix), jvm.dense_vector(intercepts), k, multinomial, **cols)


register(OpSpec("logistic_regression", _logistic, ("LogisticRegressionModel",), _logistic_from_spark,
                _logistic_to_spark))
