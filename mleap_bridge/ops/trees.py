"""Decision trees and ensembles: decision_tree_*, random_forest_*, gbt_* (regression and classifier).

A tree is stored as ``tree.json``: newline-delimited JSON nodes in pre-order. Each node's trees
are parsed once, when its kernel is built, into one flat
:class:`~spark_models.native.trees.TreeEnsemble` (:func:`~spark_models.native.spark_trees.tree_json_arrays`
+ :func:`~spark_models.native.trees.concatenate`); scoring walks every (row, tree) pair at once.
Spark export reads the node tables Spark
ML's own persistence writes (parquet, read with pyarrow), falling back to reading every node
through the JVM (``rootNode``); import builds the trees with the JVM tree classes.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Callable

import numpy as np

from spark_models.exceptions import MalformedModelError, SchemaEnforcementError
from spark_models.native.spark_trees import tree_json_arrays
from spark_models.native.trees import TreeEnsemble, concatenate

from mleap_bridge import attributes as A
from mleap_bridge.bundle import Node
from mleap_bridge.frame import Frame, as_float
from mleap_bridge.ops import OpSpec, register
from mleap_bridge.ops.tree_export import trees_of
from mleap_bridge.safety import vector_limit

Kernel = Callable[[Frame], None]
_MAX_CATEGORY = 1e6  # the largest category a categorical split may list (the flat tables' limit)
_logger = logging.getLogger(__name__)


def _tree_lines(node: Node, prefix: str) -> list[Any]:
    """The parsed lines of ``<prefix>tree.json``; invalid JSON is an error naming the node and file."""
    where = f"MLeap node {node.name!r} ({node.op}), {prefix}tree.json"
    lines = []
    for number, line in enumerate(node.file(f"{prefix}tree.json").splitlines(), 1):
        if line.strip():
            try:
                lines.append(json.loads(line))
            except (json.JSONDecodeError, RecursionError) as e:
                raise MalformedModelError(f"{where}, line {number}: not valid JSON ({e})") from None
    return lines


def _features(frame: Frame, node: Node) -> np.ndarray:
    x = as_float(frame.column(node.input("features"), node.name))
    return x if x.ndim == 2 else x[:, None]


def _tree_input(frame: Frame, node: Node, ensemble: TreeEnsemble) -> np.ndarray:
    """The features of ``frame``, as wide as the features the trees split on."""
    x = _features(frame, node)
    if x.shape[1] < ensemble.n_features:
        if len(x):
            raise SchemaEnforcementError(f"MLeap node {node.name!r} ({node.op}): input column "
                                         f"{node.input('features')!r} has {x.shape[1]} features; its trees split "
                                         f"on feature {ensemble.n_features - 1}")
        x = np.zeros((0, ensemble.n_features))
    return x


def _write_outputs(frame: Frame, node: Node, raw: np.ndarray | None, probability: np.ndarray | None,
                   prediction: np.ndarray) -> None:
    for port, values in (("raw_prediction", raw), ("probability", probability), ("prediction", prediction)):
        column = node.output(port)
        if column and values is not None:
            frame.data[column] = values


def _argmax_with_thresholds(probability: np.ndarray, thresholds: list | None) -> np.ndarray:
    if thresholds:
        t = as_float(thresholds)
        scaled = np.where(t == 0, np.inf, probability / np.where(t == 0, 1, t))
        return np.argmax(scaled, axis=1).astype(np.float64)
    return np.argmax(probability, axis=1).astype(np.float64)


def _normalize(rows: np.ndarray) -> np.ndarray:
    total = rows.sum(axis=1, keepdims=True)
    return np.divide(rows, total, out=np.zeros_like(rows), where=total != 0)


# ---- kernels ----------------------------------------------------------------------------

def _tree_names(node: Node) -> list[str]:
    """The ``trees`` of an ensemble: plain folder names of the node folder (``<name>/tree.json``)."""
    names = node.attr("trees", "list", [])
    for name in names:
        if not isinstance(name, str) or name in ("", ".", "..") or any(c in name for c in "/\\\0"):
            raise MalformedModelError(f"MLeap node {node.name!r} ({node.op}): tree {name!r} in 'trees' is not a "
                                      "plain folder name of the node folder")
    return names


def _tree_dicts(node: Node) -> list[dict[str, Any]]:
    """Every tree of ``node`` as :func:`tree_json_arrays` parses it, with its ``weight``."""
    node.size("num_classes", "long", 2)
    names = _tree_names(node)
    features = node.size("num_features", "long")
    max_feature = max(features - 1, 0) if features else vector_limit()
    weights = as_float(node.attr("tree_weights", "list", [1.0] * len(names))) if names else np.ones(1)
    if len(weights) != max(len(names), 1):
        raise MalformedModelError(f"MLeap node {node.name!r} ({node.op}): {len(names)} trees but "
                                  f"{len(weights)} tree_weights")
    trees = []
    for prefix, weight in zip([f"{n}/" for n in names] or [""], weights):
        where = f"MLeap node {node.name!r} ({node.op}), {prefix}tree.json"
        tree = tree_json_arrays(node.file(f"{prefix}tree.json"), normalize=False, where=where, max_feature=max_feature)
        for i, (categories, _) in tree["categories"].items():
            if any(not (0 <= c <= _MAX_CATEGORY and c.is_integer()) for c in categories):
                raise MalformedModelError(f"{where}, node #{i + 1}: categories {sorted(categories)} are not all whole "
                                          f"numbers from 0 to {_MAX_CATEGORY:.0f}")
        trees.append({**tree, "weight": float(weight)})
    return trees


def _ensemble(node: Node, *, outputs: int | None = None, normalize: bool = False, first_only: bool = False,
              average: bool = False) -> TreeEnsemble:
    """All trees of ``node`` as one :class:`TreeEnsemble`: leaf values padded to one width (or cut to
    ``outputs``), as fractions when ``normalize``; ``first_only`` keeps the first tree, unweighted."""
    trees = _tree_dicts(node)
    if first_only:
        trees = [{**trees[0], "weight": 1.0}]
    width = outputs or max(t["value"].shape[1] for t in trees)
    for tree in trees:
        value = np.zeros((len(tree["value"]), width))
        value[:, :min(width, tree["value"].shape[1])] = tree["value"][:, :width]
        tree["value"] = _normalize(value) if normalize else value
    n_features = max(max(t["feature"]) for t in trees) + 1
    try:
        return concatenate(trees, base_score=np.zeros(width), n_features=n_features,
                           average_over=len(trees) if average else 0)
    except MalformedModelError as e:
        raise MalformedModelError(f"MLeap node {node.name!r} ({node.op}): {e}") from None


def _regression(node: Node) -> Kernel:
    ensemble = _ensemble(node, outputs=1, average=node.op == "random_forest_regression")

    def run(frame: Frame) -> None:
        _write_outputs(frame, node, None, None, ensemble.raw_score(_tree_input(frame, node, ensemble))[:, 0])

    return run


def _classifier(node: Node) -> Kernel:
    forest = node.op == "random_forest_classifier"  # each tree votes with its normalized class distribution
    ensemble = _ensemble(node, normalize=forest, first_only=not forest)
    thresholds = node.attr("thresholds", "list", None)

    def run(frame: Frame) -> None:
        raw = ensemble.raw_score(_tree_input(frame, node, ensemble))
        probability = _normalize(raw)
        _write_outputs(frame, node, raw, probability, _argmax_with_thresholds(probability, thresholds))

    return run


def _gbt_classifier(node: Node) -> Kernel:
    ensemble = _ensemble(node, outputs=1)
    thresholds = node.attr("thresholds", "list", None)

    def run(frame: Frame) -> None:
        m = ensemble.raw_score(_tree_input(frame, node, ensemble))[:, 0]
        p1 = 1.0 / (1.0 + np.exp(-2.0 * m))
        probability = np.column_stack([1.0 - p1, p1])
        prediction = _argmax_with_thresholds(probability, thresholds) if thresholds else (m > 0).astype(np.float64)
        _write_outputs(frame, node, np.column_stack([-m, m]), probability, prediction)

    return run


_OPS = {
    "DecisionTreeRegressionModel": ("decision_tree_regression", False, False),
    "DecisionTreeClassificationModel": ("decision_tree_classifier", True, False),
    "RandomForestRegressionModel": ("random_forest_regression", False, True),
    "RandomForestClassificationModel": ("random_forest_classifier", True, True),
    "GBTRegressionModel": ("gbt_regression", False, True),
    "GBTClassificationModel": ("gbt_classifier", False, True),
}


def _from_spark(stage: Any, shapes: dict) -> Node:
    op, classification, ensemble = _OPS[type(stage).__name__]
    attributes: dict[str, Any] = {"num_features": A.scalar("long", stage.numFeatures)}
    outputs = [("prediction", stage.getPredictionCol())]
    if stage.hasParam("probabilityCol"):
        k = getattr(stage, "numClasses", 2)
        attributes["num_classes"] = A.scalar("long", k)
        if stage.isSet(stage.thresholds):
            attributes["thresholds"] = A.listed("double", stage.getThresholds())
        outputs += [("raw_prediction", stage.getRawPredictionCol()), ("probability", stage.getProbabilityCol())]
    outputs = [(p, c) for p, c in outputs if c]
    for port, c in outputs:
        shapes[c] = None if port == "prediction" else attributes["num_classes"]["long"]
    texts, weights = trees_of(stage, ensemble, classification)
    files = {}
    if ensemble:
        names = [f"tree{i}" for i in range(len(texts))]
        attributes["trees"] = A.listed("string", names)
        attributes["tree_weights"] = A.listed("double", weights)
        tree_op = "decision_tree_classifier" if classification else "decision_tree_regression"
        for name, text in zip(names, texts):
            files[f"{name}/tree.json"] = text
            files[f"{name}/model.json"] = json.dumps({"op": tree_op, "attributes": {
                "num_features": A.scalar("long", stage.numFeatures)}})
    else:
        files["tree.json"] = texts[0]
    return Node(stage.uid, op, attributes, [("features", stage.getFeaturesCol())], outputs, files=files)


# ---- Spark import -----------------------------------------------------------------------

def _doubles(gw: Any, values: Any) -> Any:
    array = gw.new_array(gw.jvm.double, len(values))
    for i, v in enumerate(values):
        array[i] = float(v)
    return array


def _java_node(lines: Any, classification: bool, num_classes: int, gw: Any) -> Any:
    tree, impurity = gw.jvm.org.apache.spark.ml.tree, gw.jvm.org.apache.spark.mllib.tree.impurity
    line = next(lines)
    if line["type"] == "leaf":
        values = [float(v) for v in line["values"]]
        if classification:
            stats = (values + [0.0] * num_classes)[:max(num_classes, len(values))]
            calc = impurity.GiniCalculator(_doubles(gw, stats), int(sum(stats)))
            return tree.LeafNode(float(np.argmax(stats)), 0.0, calc)
        return tree.LeafNode(values[0], 0.0, impurity.VarianceCalculator(_doubles(gw, [1.0, values[0], values[0] ** 2]), 1))
    split = line["split"]
    if split["type"] == "continuous":
        java_split = tree.ContinuousSplit(int(split.get("featureIndex", 0)), float(split.get("threshold", 0.0)))
    else:
        count = int(split.get("numCategories", 0))
        cats = [float(c) for c in split.get("categories", [])]
        left = cats if split.get("isLeft", False) else [float(c) for c in range(count) if float(c) not in set(cats)]
        java_split = tree.CategoricalSplit(int(split.get("featureIndex", 0)), _doubles(gw, left), count)
    left_child = _java_node(lines, classification, num_classes, gw)
    right_child = _java_node(lines, classification, num_classes, gw)
    empty = impurity.GiniCalculator(_doubles(gw, [0.0] * num_classes), 0) if classification else \
        impurity.VarianceCalculator(_doubles(gw, [0.0, 0.0, 0.0]), 0)
    return tree.InternalNode(0.0, 0.0, 0.0, left_child, right_child, java_split, empty)


def _java_tree_model(node: Node, prefix: str, classification: bool, num_classes: int, gw: Any) -> Any:
    lines = iter(_tree_lines(node, prefix))
    root = _java_node(lines, classification, num_classes, gw)
    features = node.size("num_features", "long")
    if classification:
        return gw.jvm.org.apache.spark.ml.classification.DecisionTreeClassificationModel(
            f"{node.name}_{prefix.strip('/')}", root, features, num_classes)
    return gw.jvm.org.apache.spark.ml.regression.DecisionTreeRegressionModel(f"{node.name}_{prefix.strip('/')}", root, features)


_SPARK_CLASSES = {
    "decision_tree_regression": ("regression", "DecisionTreeRegressionModel"),
    "decision_tree_classifier": ("classification", "DecisionTreeClassificationModel"),
    "random_forest_regression": ("regression", "RandomForestRegressionModel"),
    "random_forest_classifier": ("classification", "RandomForestClassificationModel"),
    "gbt_regression": ("regression", "GBTRegressionModel"),
    "gbt_classifier": ("classification", "GBTClassificationModel"),
}


def _to_spark(node: Node) -> Any:
    import importlib

    from mleap_bridge import jvm

    gw = jvm.gateway()
    package, class_name = _SPARK_CLASSES[node.op]
    python_class = getattr(importlib.import_module(f"pyspark.ml.{package}"), class_name)
    java_class = getattr(getattr(gw.jvm.org.apache.spark.ml, package), class_name)
    k = node.size("num_classes", "long", 2)
    classifier = package == "classification"
    leaf_counts = node.op in ("decision_tree_classifier", "random_forest_classifier")
    names = _tree_names(node)
    features = node.size("num_features", "long")
    if not names:
        java = _java_tree_model(node, "", leaf_counts, k, gw)
    else:
        tree_class = gw.jvm.org.apache.spark.ml.classification.DecisionTreeClassificationModel if leaf_counts else \
            gw.jvm.org.apache.spark.ml.regression.DecisionTreeRegressionModel
        trees = gw.new_array(tree_class, len(names))
        for i, name in enumerate(names):
            trees[i] = _java_tree_model(node, f"{name}/", leaf_counts, k, gw)
        if node.op.startswith("gbt"):
            weights = _doubles(gw, node.attr("tree_weights", "list", [1.0] * len(names)))
            java = java_class(node.name, trees, weights, features, k) if classifier else java_class(node.name, trees, weights, features)
        else:
            java = java_class(node.name, trees, features, k) if classifier else java_class(node.name, trees, features)
    model = python_class(java)
    params = {"featuresCol": node.input("features"), "predictionCol": node.output("prediction") or ""}
    if node.op.startswith("random_forest"):
        params["numTrees"] = len(names)  # Spark averages over this param, not over the trees it holds
    if classifier:
        params.update(probabilityCol=node.output("probability") or "", rawPredictionCol=node.output("raw_prediction") or "")
        thresholds = node.attr("thresholds", "list", None)
        if thresholds:
            params["thresholds"] = [float(t) for t in thresholds]
    model._set(**params)
    return model


for _spark_class, (_op, _classification, _) in _OPS.items():
    _kernel = _gbt_classifier if _op == "gbt_classifier" else (_classifier if _classification else _regression)
    register(OpSpec(_op, _kernel, (_spark_class,), _from_spark, _to_spark))
