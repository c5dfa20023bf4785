"""Other predictors: linear_svc, naive_bayes (multinomial, bernoulli, gaussian), k_means."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from spark_models.exceptions import MalformedModelError, NotSupportedError, SchemaEnforcementError

from mleap_bridge import attributes as A
from mleap_bridge.bundle import Node
from mleap_bridge.frame import Frame, as_float
from mleap_bridge.ops import OpSpec, register
from mleap_bridge.ops.trees import _argmax_with_thresholds, _features, _write_outputs

Kernel = Callable[[Frame], None]


def _cols(stage: Any, **ports: str) -> list[tuple[str, str]]:
    return [(port, stage.getOrDefault(getattr(stage, param))) for port, param in ports.items()
            if stage.hasParam(param) and stage.getOrDefault(getattr(stage, param))]


def _java_params(node: Node, **ports: str) -> dict[str, str]:
    return {param: node.output(port) or "" for port, param in ports.items()}


# ---- linear_svc -------------------------------------------------------------------------

def _svc(node: Node) -> Kernel:
    coefficients = as_float(node.attr("coefficients", "tensor")).ravel()
    intercept, threshold = float(node.attr("intercept", "double")), float(node.attr("threshold", "double"))

    def run(frame: Frame) -> None:
        m = _features(frame, node) @ coefficients + intercept
        _write_outputs(frame, node, np.column_stack([-m, m]), None, (m > threshold).astype(np.float64))

    return run


def _svc_from_spark(stage: Any, shapes: dict) -> Node:
    outputs = _cols(stage, raw_prediction="rawPredictionCol", prediction="predictionCol")
    for port, c in outputs:
        shapes[c] = 2 if port == "raw_prediction" else None
    return Node(stage.uid, "linear_svc", {
        "num_classes": A.scalar("long", 2), "coefficients": A.tensor(stage.coefficients.toArray()),
        "intercept": A.scalar("double", stage.intercept), "threshold": A.scalar("double", stage.getThreshold()),
    }, [("features", stage.getFeaturesCol())], outputs)


def _svc_to_spark(node: Node) -> Any:
    from pyspark.ml.classification import LinearSVCModel

    from mleap_bridge import jvm

    return jvm.new_model("org.apache.spark.ml.classification.LinearSVCModel", LinearSVCModel, node.name,
                         jvm.dense_vector(node.attr("coefficients", "tensor")), float(node.attr("intercept", "double")),
                         featuresCol=node.input("features"), threshold=float(node.attr("threshold", "double")),
                         **_java_params(node, raw_prediction="rawPredictionCol", prediction="predictionCol"))


register(OpSpec("linear_svc", _svc, ("LinearSVCModel",), _svc_from_spark, _svc_to_spark))


# ---- naive_bayes ------------------------------------------------------------------------

def _nb_raw(model_type: str, pi: np.ndarray, theta: np.ndarray, sigma: np.ndarray | None) -> Callable:
    if model_type == "multinomial":
        return lambda x: x @ theta.T + pi
    if model_type == "bernoulli":
        neg = np.log1p(-np.exp(theta))
        return lambda x: x @ (theta - neg).T + pi + neg.sum(axis=1)
    if model_type == "gaussian":
        log_var = np.log(sigma).sum(axis=1)

        def gaussian(x: np.ndarray) -> np.ndarray:
            d = (x[:, None, :] - theta[None, :, :]) ** 2 / sigma[None, :, :]
            return pi - (d.sum(axis=2) + log_var) / 2

        return gaussian
    raise NotSupportedError(f"naive_bayes model_type {model_type!r} is not supported (multinomial, bernoulli, gaussian)")


def _nb_matrices(node: Node) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """pi, theta (classes × features) and sigma, with the declared sizes and their shapes checked."""
    node.size("num_features", "long"), node.size("num_classes", "long")
    pi, theta = as_float(node.attr("pi", "tensor")).ravel(), node.matrix("theta")
    sigma = node.matrix("sigma", None)
    if len(pi) != len(theta) or (sigma is not None and sigma.size and sigma.shape != theta.shape):
        raise MalformedModelError(f"MLeap node {node.name!r} (naive_bayes): 'pi' has {len(pi)} values, 'theta' is "
                                  f"{theta.shape[0]}x{theta.shape[1]}"
                                  + ("" if sigma is None else f", 'sigma' {sigma.shape[0]}x{sigma.shape[1]}")
                                  + "; they must agree")
    return pi, theta, sigma


def _naive_bayes(node: Node) -> Kernel:
    pi, theta, sigma = _nb_matrices(node)
    raw_of = _nb_raw(node.attr("model_type", "string", "multinomial"), pi, theta, sigma)
    thresholds = node.attr("thresholds", "list", None)

    def run(frame: Frame) -> None:
        raw = raw_of(_features(frame, node))
        shifted = np.exp(raw - raw.max(axis=1, keepdims=True))
        probability = shifted / shifted.sum(axis=1, keepdims=True)
        _write_outputs(frame, node, raw, probability, _argmax_with_thresholds(probability, thresholds))

    return run


def _nb_from_spark(stage: Any, shapes: dict) -> Node:
    if stage.getModelType() == "complement":
        raise NotSupportedError(f"NaiveBayesModel {stage.uid}: modelType 'complement' cannot be exported to MLeap")
    k = stage.numClasses
    attributes = {"num_features": A.scalar("long", stage.numFeatures), "num_classes": A.scalar("long", k),
                  "pi": A.tensor(stage.pi.toArray()), "theta": A.matrix_tensor(stage.theta.toArray()),
                  "model_type": A.scalar("string", stage.getModelType())}
    if stage.getModelType() == "gaussian":
        attributes["sigma"] = A.matrix_tensor(stage.sigma.toArray())
    if stage.isSet(stage.thresholds):
        attributes["thresholds"] = A.listed("double", stage.getThresholds())
    outputs = _cols(stage, raw_prediction="rawPredictionCol", probability="probabilityCol", prediction="predictionCol")
    for port, c in outputs:
        shapes[c] = None if port == "prediction" else k
    return Node(stage.uid, "naive_bayes", attributes, [("features", stage.getFeaturesCol())], outputs)


def _nb_to_spark(node: Node) -> Any:
    from pyspark.ml.classification import NaiveBayesModel

    from mleap_bridge import jvm

    _, theta, sigma = _nb_matrices(node)
    sigma = np.zeros((0, 0)) if sigma is None or sigma.size == 0 else sigma
    thresholds = node.attr("thresholds", "list", None)
    return jvm.new_model("org.apache.spark.ml.classification.NaiveBayesModel", NaiveBayesModel, node.name,
                         jvm.dense_vector(node.attr("pi", "tensor")), jvm.dense_matrix(theta), jvm.dense_matrix(sigma),
                         featuresCol=node.input("features"), modelType=node.attr("model_type", "string", "multinomial"),
                         thresholds=[float(t) for t in thresholds] if thresholds else None,
                         **_java_params(node, raw_prediction="rawPredictionCol", probability="probabilityCol",
                                        prediction="predictionCol"))


register(OpSpec("naive_bayes", _naive_bayes, ("NaiveBayesModel",), _nb_from_spark, _nb_to_spark))


# ---- k_means ----------------------------------------------------------------------------

def _centers(node: Node) -> np.ndarray:
    node.size("num_features", "long")
    raw = node.attributes.get("cluster_centers", {})
    tensors = raw.get("tensor") if isinstance(raw, dict) and raw.get("type") == "list" else None
    if tensors is None:
        return np.atleast_2d(as_float(node.attr("cluster_centers", "tensor")))
    if not isinstance(tensors, list) or not all(isinstance(t, dict) for t in tensors):
        raise MalformedModelError(f"MLeap node {node.name!r} (k_means): 'cluster_centers' is not a list of tensors")
    centers = [as_float(A.decode({"type": "tensor", **t}, f"cluster_centers[{i}]", node.name)).ravel()
               for i, t in enumerate(tensors)]
    if not centers or len({len(c) for c in centers}) != 1:
        raise MalformedModelError(f"MLeap node {node.name!r} (k_means): 'cluster_centers' holds centers of lengths "
                                  f"{sorted({len(c) for c in centers})}; they must be one length, and at least one")
    return np.stack(centers)


def _kmeans(node: Node) -> Kernel:
    centers = _centers(node)
    cosine = node.attr("distance_measure", "string", "euclidean") == "cosine"
    unit = centers / np.linalg.norm(centers, axis=1, keepdims=True) if cosine else None

    def run(frame: Frame) -> None:
        x = _features(frame, node)
        bad = np.isnan(x).any(axis=1) & (True if frame.keep is None else frame.keep)
        if bad.any():  # Spark's KMeansModel fails on NaN too (a NaN norm)
            raise SchemaEnforcementError(f"MLeap node {node.name!r} (k_means): null/NaN in features column "
                                         f"{node.input('features')!r} at row {int(np.argmax(bad))}")
        if cosine:
            norms = np.linalg.norm(x, axis=1, keepdims=True)
            score = -(x / np.where(norms == 0, 1, norms)) @ unit.T
        else:
            score = (x ** 2).sum(axis=1)[:, None] - 2 * x @ centers.T + (centers ** 2).sum(axis=1)[None, :]
        _write_outputs(frame, node, None, None, np.argmin(score, axis=1).astype(np.float64))

    return run


def _kmeans_from_spark(stage: Any, shapes: dict) -> Node:
    centers = [np.asarray(c, dtype=np.float64) for c in stage.clusterCenters()]
    shapes[stage.getPredictionCol()] = None
    listed = {"type": "list", "tensor": [{k: v for k, v in A.tensor(c).items() if k != "type"} for c in centers]}
    return Node(stage.uid, "k_means", {
        "cluster_centers": listed, "num_features": A.scalar("long", len(centers[0])),
        "distance_measure": A.scalar("string", stage.getDistanceMeasure()),
    }, [("features", stage.getFeaturesCol())], [("prediction", stage.getPredictionCol())])


def _kmeans_to_spark(node: Node) -> Any:
    from pyspark.ml.clustering import KMeansModel

    from mleap_bridge import jvm

    gw = jvm.gateway()
    centers = _centers(node)
    mllib = gw.jvm.org.apache.spark.mllib.linalg
    array = gw.new_array(mllib.Vector, len(centers))
    for i, c in enumerate(centers):
        array[i] = mllib.Vectors.fromML(jvm.dense_vector(c))
    measure = node.attr("distance_measure", "string", "euclidean")
    parent = gw.jvm.org.apache.spark.mllib.clustering.KMeansModel(array, measure, 0.0, 0)
    return jvm.new_model("org.apache.spark.ml.clustering.KMeansModel", KMeansModel, node.name, parent,
                         featuresCol=node.input("features"), predictionCol=node.output("prediction"),
                         distanceMeasure=measure)


register(OpSpec("k_means", _kmeans, ("KMeansModel",), _kmeans_from_spark, _kmeans_to_spark))
