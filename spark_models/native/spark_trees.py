"""Spark ML tree models and MLeap ``tree.json`` files as per-tree arrays for
:func:`~spark_models.native.trees.concatenate`: :func:`from_spark` (a fitted Spark ML model, through
:mod:`mleap_bridge.ops.tree_export`) and :func:`tree_json_arrays` (one MLeap tree file)."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

from spark_models.exceptions import MalformedModelError, NotSupportedError
from spark_models.native.trees import TreeEnsemble, concatenate

_SPARK = {"DecisionTreeClassificationModel": (False, True), "DecisionTreeRegressionModel": (False, False),
          "RandomForestClassificationModel": (True, True), "RandomForestRegressionModel": (True, False),
          "GBTClassificationModel": (True, False), "GBTRegressionModel": (True, False)}


def _feature_index(value: Any, max_feature: int | None) -> int:
    """A split's ``featureIndex``: not negative, and (given ``max_feature``) a whole number up to it."""
    whole = isinstance(value, int) and not isinstance(value, bool) or isinstance(value, float) and value.is_integer()
    if max_feature is not None and not whole:
        raise ValueError(f"featureIndex {value!r} is not a whole number")
    if not 0 <= int(value) <= (math.inf if max_feature is None else max_feature):
        raise ValueError(f"featureIndex {value!r} is not from 0 to {max_feature}")
    return int(value)


def tree_json_arrays(text: str, *, normalize: bool, where: str, max_feature: int | None = None) -> dict[str, Any]:
    """One tree (arrays for :func:`~spark_models.native.trees.concatenate`) from MLeap's pre-order
    ``tree.json`` lines, as :mod:`mleap_bridge.ops.tree_export` writes and MLeap bundles hold them;
    ``normalize`` turns leaf counts into fractions; ``max_feature`` (optional) is the largest feature
    index a split may use (then it must be a whole number)."""
    out: dict[str, list] = {k: [] for k in ("feature", "threshold", "left", "right")}
    values: list[list[float]] = []
    pending: list[tuple[int, str]] = []
    categories: dict[int, tuple[set, bool]] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        if values and not pending:
            raise MalformedModelError(f"{where}, line {number}: a node after the tree is complete")
        try:
            node, i = json.loads(line), len(values)
        except (ValueError, RecursionError) as e:
            raise MalformedModelError(f"{where}, line {number}: not valid JSON ({e})") from None
        try:
            kind = node["type"]
            split = node.get("split", {})
            if kind == "leaf" and not [float(x) for x in node["values"]]:
                raise ValueError("a leaf without values")
            if kind != "leaf":
                feature = _feature_index(split["featureIndex"], max_feature)
                float(split["threshold"]) if split["type"] == "continuous" else \
                    [float(c) for c in split.get("categories", [])]
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError, OverflowError) as e:
            raise MalformedModelError(f"{where}, line {number}: not a tree node ({type(e).__name__}: {e})") from None
        if pending:
            parent, side = pending.pop()
            out[side][parent] = i
        out["left"].append(-1)
        out["right"].append(-1)
        if kind == "leaf":
            v = [float(x) for x in node["values"]]
            total = sum(v)
            values.append([x / total for x in v] if normalize and total != 0 else v)
            out["feature"].append(-1)
            out["threshold"].append(0.0)
            continue
        split = node["split"]
        values.append([])
        out["feature"].append(feature)
        if split["type"] == "continuous":
            out["threshold"].append(float(split["threshold"]))
        else:
            categories[i] = ({float(c) for c in split.get("categories", [])}, bool(split.get("isLeft", False)))
            out["threshold"].append(0.0)
        pending += [(i, "right"), (i, "left")]
    if pending or not values:
        raise MalformedModelError(f"{where}: the tree ends before all its children are given")
    width = max(len(v) for v in values)
    return {**out, "value": np.array([v + [0.0] * (width - len(v)) for v in values]), "categories": categories}


def from_spark(model: Any) -> TreeEnsemble:
    """Spark ML DecisionTree*/RandomForest*/GBT* models (NaN goes right at continuous splits, as in Spark)."""
    from mleap_bridge.ops.tree_export import trees_of

    name = type(model).__name__
    if name not in _SPARK:
        raise NotSupportedError(f"no tree extractor for Spark ML {name}")
    ensemble, classification = _SPARK[name]
    if model.hasParam("thresholds") and model.isSet(model.thresholds):
        raise NotSupportedError(f"{name} with thresholds set")
    texts, weights = trees_of(model, ensemble, classification)
    trees = [tree_json_arrays(t, normalize=classification and ensemble, where=f"{name} tree {i}")
             for i, t in enumerate(texts)]
    if weights is not None and name.startswith("GBT"):
        for tree, w in zip(trees, weights):
            tree["weight"] = float(w)
    common: dict[str, Any] = dict(base_score=np.zeros(trees[0]["value"].shape[1]), n_features=int(model.numFeatures))
    if name == "GBTClassificationModel":
        common.update(link="sigmoid", link_scale=2.0, decision="raw>0", classes=np.array([0.0, 1.0]))
    elif classification:
        k = int(model.numClasses)
        common.update(link="normalize", decision="argmax_raw", classes=np.arange(k, dtype=np.float64))
    if name == "RandomForestRegressionModel":
        common.update(average_over=len(trees))
    return concatenate(trees, **common)
