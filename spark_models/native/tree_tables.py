"""Large tree ensembles as a node-table walk: the same flat arrays as the numpy evaluator, held as
literal arrays in the plan and walked with Spark's higher-order functions.

The expression's size no longer grows with the model (a 500-tree forest is a handful of literals
and two loops), so it compiles in a second and never meets the JVM's method-size limits; Spark
interprets higher-order functions, so each row costs about ``trees x depth`` interpreted steps.
Used past :data:`~spark_models.native.tree_expressions.INLINE_TREE_NODES`; the answers are the
inline form's (same thresholds, missing-value targets and tree-order sums).
"""

from __future__ import annotations

import json

import numpy as np
from pyspark.sql import Column
from pyspark.sql import functions as F

from spark_models.exceptions import NotSupportedError
from spark_models.native.trees import MISSING_NAN, TreeEnsemble


def _literal_array(values: np.ndarray, element: str) -> Column:
    """A constant array (one JSON string literal, folded once by the optimizer)."""
    items = [int(v) for v in values] if element == "int" else [float(v) for v in values]
    return F.from_json(F.lit(json.dumps(items)), f"array<{element}>")


def supports(ensemble: TreeEnsemble) -> str | None:
    """Why ``ensemble`` cannot be walked as a table (None when it can)."""
    if ensemble.cat_index is not None and np.any(ensemble.cat_index >= 0):
        return "categorical splits"
    if np.any(ensemble.missing[ensemble.feature >= 0] != MISSING_NAN):
        return "lightgbm zero/none missing-value rules"
    return None


def table_raw_scores(ensemble: TreeEnsemble, plain: list[Column], thresholds: np.ndarray,
                     contribution: np.ndarray, kind: str) -> list[Column]:
    """Raw scores (one Column per output) of ``ensemble``: ``plain`` holds each feature as the model
    reads it, ``thresholds`` the effective ``<=`` thresholds, ``contribution`` each node's
    ``value * weight`` in the accumulation dtype ``kind`` (``double``/``float``)."""
    reason = supports(ensemble)
    if reason is not None:
        raise NotSupportedError(f"a tree model this large with {reason}")
    leaf = ensemble.feature < 0
    me = np.arange(len(ensemble.feature))
    left, right = np.where(leaf, me, ensemble.left), np.where(leaf, me, ensemble.right)
    missing_to = np.where(ensemble.default_left, left, right)
    tables = {"feature": _literal_array(np.where(leaf, -1, ensemble.feature), "int"),
              "threshold": _literal_array(np.where(leaf, 0.0, np.nan_to_num(thresholds, nan=0.0)), "double"),
              "left": _literal_array(left, "int"), "right": _literal_array(right, "int"),
              "missing": _literal_array(missing_to, "int")}
    xs = F.array(*[p.cast("double") for p in plain[:ensemble.n_features]])
    roots = _literal_array(ensemble.roots, "int")
    depth = max(int(ensemble.max_depth), 1)

    def step(node: Column, x: Column) -> Column:
        f = F.get(tables["feature"], node)
        value = F.get(x, f)
        return (F.when(f < 0, node)
                .when(value.isNull() | F.isnan(value), F.get(tables["missing"], node))
                .when(value <= F.get(tables["threshold"], node), F.get(tables["left"], node))
                .otherwise(F.get(tables["right"], node)))

    def walk(root: Column, x: Column) -> Column:
        return F.aggregate(F.sequence(F.lit(1), F.lit(depth)), root, lambda node, _: step(node, x))

    def adder(values: Column):
        return lambda acc, node: (acc + F.get(values, node).cast(kind)).cast(kind)

    scores = []
    for k in range(ensemble.n_outputs):
        start = F.lit(float(ensemble.base_score[k])).cast(kind)
        leaves = F.transform(roots, lambda r: walk(r, xs))
        scores.append(F.aggregate(leaves, start, adder(_literal_array(contribution[:, k], "double"))))
    return scores
