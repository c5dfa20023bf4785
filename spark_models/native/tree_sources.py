"""Extractors: fitted tree models of scikit-learn, xgboost, lightgbm and Spark ML as one
:class:`~spark_models.native.trees.TreeEnsemble`.

:func:`from_model` dispatches on the model's type; nothing here imports a library the model does not
come from. Unsupported parts (categorical splits, custom init estimators, multi-output
classification, dart boosters, ...) raise :class:`~spark_models.exceptions.NotSupportedError`
naming them.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

from spark_models.exceptions import NotSupportedError
from spark_models.native.trees import MISSING_AS_ZERO, MISSING_NAN, MISSING_ZERO, TreeEnsemble, concatenate


def from_model(model: Any) -> TreeEnsemble:
    """The tree arrays of a fitted tree model (scikit-learn, xgboost, lightgbm or Spark ML)."""
    module = type(model).__module__.split(".")[0]
    name = type(model).__name__
    if module == "sklearn":
        return from_sklearn(model)
    if module == "xgboost":
        return from_xgboost(model)
    if module == "lightgbm":
        return from_lightgbm(model)
    if module == "pyspark":
        from spark_models.native.spark_trees import from_spark

        return from_spark(model)
    raise NotSupportedError(f"no tree extractor for {type(model).__module__}.{name}")


# ---- scikit-learn --------------------------------------------------------------------------------

def _sk_tree(tree: Any, *, normalize: bool, column: int | None = None, width: int = 1,
             weight: float = 1.0) -> dict[str, np.ndarray]:
    """One sklearn ``tree_``; ``column`` puts a scalar leaf into that output of ``width``."""
    t = tree.tree_
    leaf = t.children_left < 0
    if t.n_outputs > 1 and t.value.shape[2] > 1:
        raise NotSupportedError("scikit-learn multi-output classification trees")
    value = t.value[:, 0, :] if t.n_outputs == 1 else t.value[:, :, 0]
    if normalize:
        total = value.sum(axis=1, keepdims=True)
        value = value / np.where(total == 0.0, 1.0, total)
    if column is not None:
        full = np.zeros((t.node_count, width))
        full[:, column] = value[:, 0]
        value = full
    missing_left = getattr(t, "missing_go_to_left", np.zeros(t.node_count, dtype=bool))
    return {"feature": np.where(leaf, -1, t.feature), "threshold": t.threshold, "left": t.children_left,
            "right": t.children_right, "value": value, "default_left": np.asarray(missing_left, dtype=bool),
            "weight": weight}


def _sk_classes(model: Any) -> np.ndarray:
    classes = model.classes_
    if isinstance(classes, list):
        raise NotSupportedError(f"{type(model).__name__} with several outputs")
    return np.asarray(classes)


def _link_of(loss: Any, where: str) -> str:
    link = type(getattr(loss, "link", None)).__name__
    if link in ("IdentityLink", "NoneType"):
        return "identity"
    if link == "LogLink":
        return "exp"
    raise NotSupportedError(f"{where}: loss link {link}")


def from_sklearn(model: Any) -> TreeEnsemble:
    """DecisionTree*, RandomForest*, ExtraTrees*, GradientBoosting*, HistGradientBoosting*."""
    name = type(model).__name__
    if not hasattr(model, "n_features_in_"):
        raise NotSupportedError(f"{name} is not fitted")
    n = int(model.n_features_in_)
    classifier = name.endswith("Classifier")
    if name in ("DecisionTreeClassifier", "DecisionTreeRegressor", "ExtraTreeClassifier", "ExtraTreeRegressor"):
        common = dict(n_features=n, float32=True)
        tree = _sk_tree(model, normalize=classifier)
        base = np.zeros(tree["value"].shape[1])
        if classifier:
            return concatenate([tree], base_score=base, decision="argmax", classes=_sk_classes(model), **common)
        return concatenate([tree], base_score=base, **common)
    if name in ("RandomForestClassifier", "RandomForestRegressor", "ExtraTreesClassifier", "ExtraTreesRegressor"):
        trees = [_sk_tree(e, normalize=classifier) for e in model.estimators_]
        base = np.zeros(trees[0]["value"].shape[1])
        extra = dict(decision="argmax", classes=_sk_classes(model)) if classifier else {}
        return concatenate(trees, base_score=base, n_features=n, float32=True, average_over=len(trees), **extra)
    if name in ("GradientBoostingClassifier", "GradientBoostingRegressor"):
        return _sk_gb(model, n, classifier)
    if name in ("HistGradientBoostingClassifier", "HistGradientBoostingRegressor"):
        return _sk_hgb(model, n, classifier)
    raise NotSupportedError(f"no tree extractor for scikit-learn {name}")


def _classifier_combine(model: Any, k: int, decision: str) -> dict[str, Any]:
    classes = _sk_classes(model)
    if k == 1:
        scale = 2.0 if type(model._loss).__name__ == "ExponentialLoss" else 1.0
        return dict(link="sigmoid", link_scale=scale, decision=decision, classes=classes)
    return dict(link="softmax", decision="argmax", classes=classes)


def _sk_gb(model: Any, n: int, classifier: bool) -> TreeEnsemble:
    stages, k = model.estimators_.shape
    init = model.init_
    if init != "zero" and type(init).__name__ not in ("DummyClassifier", "DummyRegressor"):
        raise NotSupportedError(f"{type(model).__name__} with init={type(init).__name__} (not a constant)")
    base = model._raw_predict_init(np.zeros((1, n)))[0] if init != "zero" else np.zeros(k)
    lr = float(model.learning_rate)
    trees = [_sk_tree(model.estimators_[i, j], normalize=False, column=j, width=k, weight=lr)
             for i in range(stages) for j in range(k)]
    common = dict(base_score=np.asarray(base, dtype=np.float64), n_features=n, float32=True)
    if classifier:
        return concatenate(trees, **common, **_classifier_combine(model, k, "raw>=0"))
    return concatenate(trees, **common, link=_link_of(model._loss, type(model).__name__))


def _hgb_tree(predictor: Any, column: int, width: int) -> dict[str, np.ndarray]:
    nodes = predictor.nodes
    if np.any(nodes["is_categorical"]):
        raise NotSupportedError("HistGradientBoosting categorical splits")
    leaf = nodes["is_leaf"].astype(bool)
    value = np.zeros((len(nodes), width))
    value[:, column] = np.where(leaf, nodes["value"], 0.0)
    return {"feature": np.where(leaf, -1, nodes["feature_idx"]), "threshold": nodes["num_threshold"],
            "left": np.where(leaf, -1, nodes["left"]), "right": np.where(leaf, -1, nodes["right"]),
            "value": value, "default_left": nodes["missing_go_to_left"].astype(bool)}


def _sk_hgb(model: Any, n: int, classifier: bool) -> TreeEnsemble:
    if getattr(model, "is_categorical_", None) is not None and np.any(model.is_categorical_):
        raise NotSupportedError(f"{type(model).__name__} with categorical features")
    k = int(model.n_trees_per_iteration_)
    trees = [_hgb_tree(p, j, k) for iteration in model._predictors for j, p in enumerate(iteration)]
    base = np.asarray(model._baseline_prediction, dtype=np.float64).reshape(-1)
    common = dict(base_score=np.broadcast_to(base, (k,)).copy(), n_features=n)
    if classifier:
        return concatenate(trees, **common, **_classifier_combine(model, k, "proba>0.5"))
    return concatenate(trees, **common, link=_link_of(model._loss, type(model).__name__))


# ---- xgboost -------------------------------------------------------------------------------------

_XGB_LINKS = {"reg:squarederror": "identity", "reg:squaredlogerror": "identity", "reg:pseudohubererror": "identity",
              "reg:absoluteerror": "identity", "reg:quantileerror": "identity", "binary:logitraw": "identity",
              "rank:pairwise": "identity", "rank:ndcg": "identity", "rank:map": "identity",
              "reg:logistic": "sigmoid", "binary:logistic": "sigmoid",
              "multi:softprob": "softmax", "multi:softmax": "softmax",
              "count:poisson": "exp", "reg:gamma": "exp", "reg:tweedie": "exp"}


def _xgb_base_margin(base: float, link: str) -> float:
    """xgboost stores base_score in output space; the margin it starts from (float64 math, then float32)."""
    if link == "sigmoid":
        return float(np.float32(-math.log(1.0 / base - 1.0)))
    if link == "exp":
        return float(np.float32(math.log(base)))
    return float(np.float32(base))


def _xgb_base(booster: Any, n: int, k: int) -> np.ndarray | None:
    """The exact float32 starting margin: a prediction through no trees (iteration range 1..1)."""
    import xgboost

    try:
        probe = xgboost.DMatrix(np.full((1, max(n, 1)), np.nan, dtype=np.float32))
        margin = booster.predict(probe, output_margin=True, iteration_range=(1, 1))
    except (xgboost.core.XGBoostError, ValueError, TypeError):
        return None
    margin = np.asarray(margin, dtype=np.float64).reshape(-1)
    return margin if margin.size == k else None


def _xgb_tree(tree: dict[str, Any], column: int, width: int) -> dict[str, np.ndarray]:
    if any(int(s) != 0 for s in tree.get("split_type", [])):
        raise NotSupportedError("xgboost categorical splits")
    left = np.asarray(tree["left_children"], dtype=np.int64)
    right = np.asarray(tree["right_children"], dtype=np.int64)
    cond = np.asarray(tree["split_conditions"], dtype=np.float32).astype(np.float64)
    leaf = left < 0
    if int(tree.get("tree_param", {}).get("size_leaf_vector", "1") or 1) > 1:
        raise NotSupportedError("xgboost vector-leaf (multi_strategy) trees")
    value = np.zeros((len(left), width))
    value[:, column] = np.where(leaf, cond, 0.0)
    return {"feature": np.where(leaf, -1, np.asarray(tree["split_indices"], dtype=np.int64)),
            "threshold": cond, "left": left, "right": right, "value": value,
            "default_left": np.asarray(tree["default_left"], dtype=bool)}


def from_xgboost(model: Any) -> TreeEnsemble:
    """An xgboost ``Booster`` or ``XGB*`` estimator (gbtree), from its JSON model."""
    booster = model.get_booster() if hasattr(model, "get_booster") else model
    doc = json.loads(bytes(booster.save_raw(raw_format="json")))
    learner = doc["learner"]
    gb = learner["gradient_booster"]
    if gb.get("name") != "gbtree":
        raise NotSupportedError(f"xgboost booster {gb.get('name')!r} (only gbtree)")
    objective = learner["objective"]["name"]
    if objective not in _XGB_LINKS:
        raise NotSupportedError(f"xgboost objective {objective!r}")
    link = _XGB_LINKS[objective]
    params = learner["learner_model_param"]
    k = max(int(params.get("num_class", "0")), 1)
    model_trees = gb["model"]["trees"]
    info = gb["model"]["tree_info"]
    limit = _xgb_tree_limit(model, len(model_trees), gb, k)
    trees = [_xgb_tree(t, int(info[i]) if k > 1 else 0, k) for i, t in enumerate(model_trees[:limit])]
    n = int(params.get("num_feature", "0"))
    base = _xgb_base(booster, n, k)
    if base is None:  # the JSON keeps base_score to a few digits only: a fallback
        margins = [_xgb_base_margin(float(b), link) for b in str(params["base_score"]).strip("[]").split(",")]
        base = np.broadcast_to(np.asarray(margins, dtype=np.float64), (k,)).copy()
    combine = dict(base_score=base, n_features=n, strict=True, float32=True, accumulate_float32=True, link=link)
    classifier = type(model).__name__ in ("XGBClassifier", "XGBRFClassifier")
    if classifier:
        classes = np.asarray(getattr(model, "classes_", np.arange(max(k, 2))))
        combine.update(decision="proba>0.5", classes=classes)
    if objective == "multi:softmax" and not classifier:
        combine.update(decision="argmax", classes=np.arange(k, dtype=np.float32))
    return concatenate(trees, **combine)


def _xgb_tree_limit(model: Any, count: int, gb: dict[str, Any], k: int) -> int:
    """Trees that ``predict`` uses: all, or up to ``best_iteration`` for an early-stopped estimator."""
    best = getattr(model, "best_iteration", None) if hasattr(model, "get_booster") else None
    if best is None:
        return count
    parallel = int(gb["model"]["gbtree_model_param"].get("num_parallel_tree", "1") or 1)
    return min(count, (int(best) + 1) * parallel * k)


# ---- lightgbm ------------------------------------------------------------------------------------

_LGB_MISSING = {"NaN": MISSING_NAN, "Zero": MISSING_ZERO, "None": MISSING_AS_ZERO}


def _lgb_tree(structure: dict[str, Any], column: int, width: int) -> dict[str, Any]:
    out: dict[str, list] = {k: [] for k in ("feature", "threshold", "left", "right", "default_left", "missing")}
    values: list[float] = []
    stack: list[tuple[dict[str, Any], int, str]] = [(structure, -1, "")]
    while stack:
        node, parent, side = stack.pop()
        i = len(values)
        if parent >= 0:
            out[side][parent] = i
        if "leaf_value" in node:
            values.append(float(node["leaf_value"]))
            for key, v in (("feature", -1), ("threshold", 0.0), ("left", -1), ("right", -1),
                           ("default_left", False), ("missing", MISSING_NAN)):
                out[key].append(v)
            continue
        if node.get("decision_type") != "<=":
            raise NotSupportedError(f"lightgbm split {node.get('decision_type')!r} (categorical splits)")
        values.append(0.0)
        out["feature"].append(int(node["split_feature"]))
        threshold = float(node["threshold"])  # the dump writes +-inf thresholds as +-1e300
        out["threshold"].append(math.copysign(math.inf, threshold) if abs(threshold) >= 1e300 else threshold)
        out["left"].append(-1)
        out["right"].append(-1)
        out["default_left"].append(bool(node["default_left"]))
        out["missing"].append(_LGB_MISSING[str(node["missing_type"])])
        stack += [(node["right_child"], i, "right"), (node["left_child"], i, "left")]
    value = np.zeros((len(values), width))
    value[:, column] = values
    return {**out, "value": value}


def _lgb_link(objective: str) -> tuple[str, float]:
    name, *params = objective.split()
    options = dict(p.split(":", 1) for p in params if ":" in p)
    if name in ("binary", "cross_entropy", "xentropy"):
        return "sigmoid", float(options.get("sigmoid", 1.0))
    if name in ("multiclass", "softmax"):
        return "softmax", 1.0
    if name in ("poisson", "gamma", "tweedie"):
        return "exp", 1.0
    if name in ("regression", "regression_l2", "regression_l1", "huber", "fair", "quantile", "mape",
                "lambdarank", "rank_xendcg", "custom"):
        if "sqrt" in params:
            raise NotSupportedError("lightgbm regression with reg_sqrt")
        return "identity", 1.0
    raise NotSupportedError(f"lightgbm objective {objective!r}")


def from_lightgbm(model: Any) -> TreeEnsemble:
    """A lightgbm ``Booster`` or ``LGBM*`` estimator, from ``dump_model()``."""
    booster = model.booster_ if hasattr(model, "booster_") else model
    iteration = getattr(model, "best_iteration_", None) if hasattr(model, "booster_") else None
    dump = booster.dump_model(num_iteration=iteration or None)
    k = int(dump.get("num_tree_per_iteration", 1))
    link, scale = _lgb_link(str(dump.get("objective", "regression")))
    if "linear_tree" in str(dump.get("parameters", "")) and "linear_tree: 1" in str(dump.get("parameters")):
        raise NotSupportedError("lightgbm linear trees")
    trees = [_lgb_tree(t["tree_structure"], i % k, k) for i, t in enumerate(dump["tree_info"])]
    average = len(dump["tree_info"]) // k if dump.get("average_output") else 0
    combine: dict[str, Any] = dict(base_score=np.zeros(k), n_features=int(dump["max_feature_idx"]) + 1,
                                   tiny_as_zero=True,
                                   average_over=average, link=link, link_scale=scale)
    if type(model).__name__ == "LGBMClassifier":
        combine.update(decision="proba>0.5", classes=np.asarray(model.classes_))
    return concatenate(trees, **combine)
