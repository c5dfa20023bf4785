"""Decision trees and ensembles: decision_tree_*, random_forest_*, gbt_* (regression and classifier).

A tree is stored as ``tree.json``: newline-delimited JSON nodes in pre-order. Scoring walks
all rows down the tree at once, one level per step. Spark export reads the node tables Spark
ML's own persistence writes (parquet, read with pyarrow), falling back to reading every node
through the JVM (``rootNode``); import builds the trees with the JVM tree classes.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Callable

import numpy as np

from spark_models.exceptions import MalformedModelError
from spark_models.limits import MAX_VECTOR_SIZE_ENV

from mleap_bridge import attributes as A
from mleap_bridge.bundle import Node
from mleap_bridge.frame import Frame, as_float
from mleap_bridge.ops import OpSpec, register
from mleap_bridge.ops.tree_export import trees_of
from mleap_bridge.safety import vector_limit, whole_number

Kernel = Callable[[Frame], None]
_logger = logging.getLogger(__name__)


class Tree:
    """Flat arrays of one tree: per node feature, threshold, children, categories, leaf values.

    ``where`` names the node and file in errors; a feature index is checked against ``max_feature``."""

    def __init__(self, lines: list[Any], where: str = "tree.json", max_feature: int | None = None):
        self.feature, self.threshold, self.left, self.right = [], [], [], []
        self.categories: dict[int, tuple[set, bool]] = {}
        self.values: list[list[float]] = []
        self._where, self._max_feature = where, vector_limit() if max_feature is None else max_feature
        self._build(lines)
        self.feature, self.threshold = np.asarray(self.feature), np.asarray(self.threshold, dtype=np.float64)
        self.left, self.right = np.asarray(self.left), np.asarray(self.right)
        width = max(len(v) for v in self.values)
        self.leaf_values = np.array([v + [0.0] * (width - len(v)) for v in self.values])

    def _build(self, lines: list[Any]) -> None:
        """The pre-order lines (node, its left subtree, its right subtree), without recursion."""
        pending: list[tuple[int, list[int]]] = []  # (parent, self.left or self.right) still to fill
        for number, line in enumerate(lines, 1):
            try:
                i = self._add(line)
            except (KeyError, TypeError, ValueError, AttributeError) as e:
                raise MalformedModelError(f"{self._where}, tree node #{number}: not a tree node {line!r} "
                                          f"({type(e).__name__}: {e})") from None
            if pending:
                parent, side = pending.pop()
                side[parent] = i
            if self.feature[i] >= 0:
                pending += [(i, self.right), (i, self.left)]  # the left child comes first
            if not pending:
                return
        raise MalformedModelError(f"{self._where}: the tree ends before all its children are given")

    def _add(self, line: dict[str, Any]) -> int:
        i = len(self.feature)
        self.feature.append(-1)
        self.threshold.append(0.0)
        self.left.append(-1)
        self.right.append(-1)
        self.values.append([])
        if line["type"] == "leaf":
            self.values[i] = [float(v) for v in line["values"]]
            if not self.values[i]:
                raise ValueError("a leaf without values")
            return i
        split = line["split"]
        feature = whole_number(split.get("featureIndex", 0))
        if feature is None or not 0 <= feature <= self._max_feature:
            feature = split.get("featureIndex")
            raise ValueError(f"featureIndex {feature!r} is not from 0 to {self._max_feature} (num_features, "
                             f"or {MAX_VECTOR_SIZE_ENV} when the node declares none)")
        self.feature[i] = feature
        if split["type"] == "continuous":
            self.threshold[i] = float(split.get("threshold", 0.0))
        else:
            self.categories[i] = ({float(c) for c in split.get("categories", [])}, bool(split.get("isLeft", False)))
        return i

    def leaves(self, x: np.ndarray) -> np.ndarray:
        """Leaf value rows for every row of ``x``."""
        node = np.zeros(len(x), dtype=np.int64)
        while True:
            inner = self.feature[node] >= 0
            if not inner.any():
                return self.leaf_values[node]
            rows = np.nonzero(inner)[0]
            at = node[rows]
            values = x[rows, self.feature[at]]
            go_left = values <= self.threshold[at]
            for k in set(at.tolist()) & self.categories.keys():
                cats, is_left = self.categories[k]
                mask = at == k
                member = np.isin(values[mask], list(cats))
                go_left[mask] = member if is_left else ~member
            node[rows] = np.where(go_left, self.left[at], self.right[at])


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


def _tree_from(node: Node, prefix: str = "") -> Tree:
    features = node.size("num_features", "long")
    return Tree(_tree_lines(node, prefix), f"MLeap node {node.name!r} ({node.op}), {prefix}tree.json",
                max(features - 1, 0) if features else None)


def _features(frame: Frame, node: Node) -> np.ndarray:
    x = as_float(frame.column(node.input("features"), node.name))
    return x if x.ndim == 2 else x[:, None]


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


def _ensemble(node: Node) -> tuple[list[Tree], np.ndarray]:
    node.size("num_classes", "long", 2)
    names = _tree_names(node)
    if not names:
        return [_tree_from(node)], np.ones(1)
    weights = as_float(node.attr("tree_weights", "list", [1.0] * len(names)))
    if len(weights) != len(names):
        raise MalformedModelError(f"MLeap node {node.name!r} ({node.op}): {len(names)} trees but "
                                  f"{len(weights)} tree_weights")
    return [_tree_from(node, f"{n}/") for n in names], weights


def _regression(node: Node) -> Kernel:
    trees, weights = _ensemble(node)
    mean = node.op == "random_forest_regression"

    def run(frame: Frame) -> None:
        x = _features(frame, node)
        total = sum(w * t.leaves(x)[:, 0] for t, w in zip(trees, weights))
        _write_outputs(frame, node, None, None, total / len(trees) if mean else total)

    return run


def _classifier(node: Node) -> Kernel:
    trees, weights = _ensemble(node)
    thresholds = node.attr("thresholds", "list", None)
    forest = node.op == "random_forest_classifier"

    def run(frame: Frame) -> None:
        x = _features(frame, node)
        if forest:  # each tree votes with its normalized class distribution
            raw = sum(w * _normalize(t.leaves(x)) for t, w in zip(trees, weights))
        else:
            raw = trees[0].leaves(x)
        probability = _normalize(raw)
        _write_outputs(frame, node, raw, probability, _argmax_with_thresholds(probability, thresholds))

    return run


def _gbt_classifier(node: Node) -> Kernel:
    trees, weights = _ensemble(node)
    thresholds = node.attr("thresholds", "list", None)

    def run(frame: Frame) -> None:
        x = _features(frame, node)
        m = sum(w * t.leaves(x)[:, 0] for t, w in zip(trees, weights))
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
