"""Parity of the flattened tree representation (spark_models.native.trees) with the libraries' own
predict / predict_proba: random models per type (seeded loop), data with NaN and values exactly
on split thresholds."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from spark_models.exceptions import InvalidArgumentError, MalformedModelError, NotSupportedError
from spark_models.native.tree_sources import from_model
from spark_models.native.trees import TreeEnsemble, concatenate

SEEDS = (0, 1, 2)
RTOL = 1e-12


def _data(seed: int, n: int = 400, d: int = 6, nan: bool = True):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    x[:, 0] = np.round(x[:, 0], 1)  # repeated values: many rows land exactly on thresholds
    if nan:
        x[rng.random(x.shape) < 0.1] = np.nan
    score = np.nansum(x[:, :3], axis=1) + 0.3 * rng.normal(size=n)
    return x, score, rng


def _probe(x: np.ndarray, ensemble: TreeEnsemble, rng) -> np.ndarray:
    """Rows with features set to the model's own thresholds (and float32 neighbours), zeros, NaN."""
    inner = np.nonzero((ensemble.feature >= 0) & np.isfinite(ensemble.threshold))[0]
    pick = rng.choice(inner, size=min(200, len(inner)), replace=False)
    rows = np.repeat(x[:len(pick)], 1, axis=0).copy()
    rows[np.arange(len(pick)), ensemble.feature[pick]] = ensemble.threshold[pick]
    near = rows.copy()
    near[np.arange(len(pick)), ensemble.feature[pick]] = np.nextafter(ensemble.threshold[pick], np.inf)
    zeros = x[:20].copy()
    zeros[:, ::2] = 0.0
    return np.vstack([x, rows, near, zeros, np.full((1, x.shape[1]), np.nan)])


def _same(ours: np.ndarray, theirs: np.ndarray, rtol: float = RTOL) -> None:
    theirs = np.asarray(theirs)
    assert ours.shape == theirs.shape
    if theirs.dtype.kind in "iuUOb":
        np.testing.assert_array_equal(ours, theirs)
    else:
        np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=0)


def _check(model, x, rng, *, proba: bool, rtol: float = RTOL, labels_exact: bool = True):
    ensemble = from_model(model)
    rows = _probe(x, ensemble, rng)
    if not np.isnan(x).any():
        rows = np.nan_to_num(rows)
    ours = ensemble.predict(rows)
    theirs = model.predict(rows)
    if labels_exact and theirs.dtype.kind in "iuUOb":
        np.testing.assert_array_equal(ours, theirs)
    else:
        _same(ours, theirs, rtol)
    if proba:
        _same(ensemble.predict_proba(rows), model.predict_proba(rows), rtol)
    return ensemble, rows


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


# ---- scikit-learn ----------------------------------------------------------------------------------

def _sk_models(seed: int):
    from sklearn import ensemble as E
    from sklearn import tree as T
    r = np.random.default_rng(seed)
    depth = int(r.integers(2, 9))
    trees = int(r.integers(2, 15))
    return [
        (T.DecisionTreeClassifier(max_depth=depth, random_state=seed), "multi", True),
        (T.DecisionTreeRegressor(max_depth=depth, random_state=seed), "reg", False),
        (T.DecisionTreeRegressor(max_depth=depth, random_state=seed), "reg2", False),
        (E.RandomForestClassifier(trees, max_depth=depth, random_state=seed), "binary", True),
        (E.RandomForestClassifier(trees, random_state=seed), "multi", True),
        (E.RandomForestRegressor(trees, max_depth=depth, random_state=seed), "reg", False),
        (E.ExtraTreesClassifier(trees, max_depth=depth, random_state=seed), "multi", True),
        (E.ExtraTreesRegressor(trees, random_state=seed), "reg", False),
        (E.HistGradientBoostingClassifier(max_iter=trees * 3, max_depth=depth, random_state=seed), "binary", True),
        (E.HistGradientBoostingClassifier(max_iter=trees, random_state=seed), "multi", True),
        (E.HistGradientBoostingRegressor(max_iter=trees * 3, random_state=seed), "reg", False),
        (E.HistGradientBoostingRegressor(max_iter=trees, loss="poisson", random_state=seed), "count", False),
    ]


def _targets(score, kind):
    return {"binary": (score > 0).astype(int), "multi": np.digitize(score, [-1.0, 1.0]),
            "reg": score, "reg2": np.column_stack([score, -2 * score]), "count": np.abs(score)}[kind]


@pytest.mark.parametrize("seed", SEEDS)
def test_sklearn_trees_match_predict_and_proba_with_nan(seed):
    x, score, rng = _data(seed)
    for model, kind, proba in _sk_models(seed):
        model.fit(x, _targets(score, kind))
        _check(model, x, rng, proba=proba)


@pytest.mark.parametrize("seed", SEEDS)
def test_sklearn_gradient_boosting_matches(seed):
    from sklearn.ensemble import GradientBoostingClassifier, GradientBoostingRegressor
    x, score, rng = _data(seed, nan=False)
    labels = np.array(["lo", "mid", "hi"])[np.digitize(score, [-1.0, 1.0])]
    cases = [(GradientBoostingClassifier(n_estimators=15, max_depth=3, random_state=seed), (score > 0).astype(int)),
             (GradientBoostingClassifier(n_estimators=10, loss="exponential", random_state=seed), score > 0),
             (GradientBoostingClassifier(n_estimators=8, random_state=seed), labels),
             (GradientBoostingRegressor(n_estimators=20, random_state=seed), score),
             (GradientBoostingRegressor(n_estimators=10, loss="huber", subsample=0.7, random_state=seed), score)]
    for model, y in cases:
        model.fit(x, y)
        _check(model, x, rng, proba=hasattr(model, "predict_proba"))


def test_string_class_labels_and_threshold_rows_are_exact():
    from sklearn.ensemble import RandomForestClassifier
    x, score, rng = _data(7)
    y = np.array(["a", "b", "c"])[np.digitize(score, [-1.0, 1.0])]
    model = RandomForestClassifier(5, random_state=0).fit(x, y)
    ensemble, rows = _check(model, x, rng, proba=True)
    assert ensemble.classes.tolist() == ["a", "b", "c"]
    assert ensemble.n_trees == 5 and len(ensemble.roots) == 5
    # the leaves themselves agree with sklearn's apply for every tree
    leaves = ensemble.apply(rows) - ensemble.roots
    np.testing.assert_array_equal(leaves, model.apply(rows))


def test_hist_gradient_boosting_nan_direction_is_used():
    from sklearn.ensemble import HistGradientBoostingRegressor
    rng = np.random.default_rng(3)
    x = rng.normal(size=(300, 2))
    y = np.where(np.isnan(x[:, 0]), 10.0, x[:, 0])
    x[:60, 0] = np.nan
    y[:60] = 10.0
    model = HistGradientBoostingRegressor(max_iter=5).fit(x, y)
    ensemble = from_model(model)
    rows = np.array([[np.nan, 0.0], [0.0, 0.0]])
    _same(ensemble.predict(rows), model.predict(rows))
    assert ensemble.predict(rows)[0] > ensemble.predict(rows)[1] + 1  # NaN followed the learned direction


def test_unsupported_sklearn_parts_are_refused():
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.tree import DecisionTreeClassifier
    x, score, _ = _data(0, nan=False)
    x[:, 1] = np.abs(np.round(x[:, 1])) % 4
    model = HistGradientBoostingClassifier(max_iter=3, categorical_features=[1]).fit(x, score > 0)
    with pytest.raises(NotSupportedError, match="categorical"):
        from_model(model)
    with pytest.raises(NotSupportedError, match="not fitted"):
        from_model(DecisionTreeClassifier())
    two = DecisionTreeClassifier(max_depth=2).fit(x, np.column_stack([score > 0, score > 1]))
    with pytest.raises(NotSupportedError, match="multi-output"):
        from_model(two)
    with pytest.raises(NotSupportedError, match="no tree extractor"):
        from_model(object())


# ---- xgboost ---------------------------------------------------------------------------------------

def _xgb_cases(seed):
    import xgboost as xgb
    r = np.random.default_rng(seed)
    n, depth = int(r.integers(3, 30)), int(r.integers(2, 7))
    common = dict(n_estimators=n, max_depth=depth, random_state=seed, n_jobs=1, learning_rate=0.3)
    return [(xgb.XGBClassifier(**common), "binary"), (xgb.XGBClassifier(**common), "multi"),
            (xgb.XGBRegressor(**common), "reg"), (xgb.XGBRegressor(objective="count:poisson", **common), "count"),
            (xgb.XGBRFRegressor(n_estimators=4, max_depth=depth, random_state=seed, n_jobs=1), "reg")]


@pytest.mark.parametrize("seed", SEEDS)
def test_xgboost_matches_float32_splits_and_margins_exactly(seed):
    import xgboost as xgb
    x, score, rng = _data(seed)
    for model, kind in _xgb_cases(seed):
        model.fit(x, _targets(score, kind))
        ensemble = from_model(model)
        rows = _probe(x, ensemble, rng)
        booster, matrix = model.get_booster(), xgb.DMatrix(rows)
        # split decisions: the same leaf in every tree, on rows sitting exactly on float32 thresholds
        leaves = booster.predict(matrix, pred_leaf=True).reshape(len(rows), -1)
        np.testing.assert_array_equal(ensemble.apply(rows) - ensemble.roots, leaves)
        margin = booster.predict(matrix, output_margin=True).reshape(len(rows), -1)
        np.testing.assert_array_equal(ensemble.raw_score(rows), margin)  # float32 sums, bit for bit
        ours, theirs = ensemble.predict(rows), model.predict(rows)
        if kind in ("binary", "multi"):
            np.testing.assert_array_equal(ours, theirs)
            # probabilities: float32, within one float32 rounding (libm's expf is not always
            # correctly rounded; we use a correctly rounded exp)
            np.testing.assert_allclose(ensemble.predict_proba(rows), model.predict_proba(rows), rtol=2.5e-7, atol=0)
        else:
            np.testing.assert_allclose(ours, theirs, rtol=2.5e-7, atol=0)


def test_xgboost_booster_from_train_and_float32_rounding_matters():
    import xgboost as xgb
    rng = np.random.default_rng(5)
    x = rng.normal(size=(500, 3))
    y = (x[:, 0] > 0.1).astype(float)
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 2, "nthread": 1}, xgb.DMatrix(x, y), 5)
    ensemble = from_model(booster)
    assert ensemble.strict and ensemble.float32
    thr = ensemble.threshold[ensemble.feature == 0][0]
    # a float64 just below the float32 threshold rounds up onto it: xgboost sends it right
    below = np.nextafter(thr, -np.inf)
    rows = np.tile(x[:1], (2, 1))
    rows[:, 0] = [below, thr]
    np.testing.assert_array_equal(ensemble.predict(rows), booster.predict(xgb.DMatrix(rows)))
    assert ensemble.predict(rows)[0] == ensemble.predict(rows)[1]


def test_xgboost_early_stopping_uses_best_iteration():
    import xgboost as xgb
    x, score, rng = _data(4)
    model = xgb.XGBRegressor(n_estimators=200, early_stopping_rounds=3, n_jobs=1, learning_rate=0.5)
    model.fit(x[:300], score[:300], eval_set=[(x[300:], score[300:])], verbose=False)
    assert model.best_iteration < 199
    ensemble = from_model(model)
    assert ensemble.n_trees == model.best_iteration + 1
    np.testing.assert_allclose(ensemble.predict(x), model.predict(x), rtol=2.5e-7, atol=0)


# ---- lightgbm --------------------------------------------------------------------------------------

def _lgb_cases(seed):
    import lightgbm as lgb
    r = np.random.default_rng(seed)
    n, leaves = int(r.integers(3, 30)), int(r.integers(3, 20))
    common = dict(n_estimators=n, num_leaves=leaves, random_state=seed, n_jobs=1, verbose=-1, min_child_samples=5)
    return [(lgb.LGBMClassifier(**common), "binary"), (lgb.LGBMClassifier(**common), "multi"),
            (lgb.LGBMRegressor(**common), "reg"), (lgb.LGBMRegressor(objective="poisson", **common), "count"),
            (lgb.LGBMRegressor(zero_as_missing=True, **common), "reg"),
            (lgb.LGBMRegressor(use_missing=False, **common), "reg"),
            (lgb.LGBMRegressor(boosting_type="rf", bagging_freq=1, bagging_fraction=0.7, **common), "reg"),
            (lgb.LGBMClassifier(boosting_type="rf", bagging_freq=1, bagging_fraction=0.7, **common), "multi")]


@pytest.mark.parametrize("seed", SEEDS)
def test_lightgbm_matches_with_missing_types(seed):
    x, score, rng = _data(seed)
    x[::7, 3] = 0.0  # exact zeros: the "Zero" missing type
    for model, kind in _lgb_cases(seed):
        model.fit(x, _targets(score, kind))
        ensemble, rows = _check(model, x, rng, proba=kind in ("binary", "multi"))
        raw = model.booster_.predict(rows, raw_score=True).reshape(len(rows), -1)
        _same(ensemble.raw_score(rows) * (ensemble.average_over or 1), raw)  # lightgbm: raw forests unaveraged


def test_lightgbm_missing_types_present():
    import lightgbm as lgb
    x, score, rng = _data(1)
    x[::5, 2] = 0.0
    kinds = set()
    for params in ({}, {"zero_as_missing": True}, {"use_missing": False}):
        model = lgb.LGBMRegressor(n_estimators=5, verbose=-1, n_jobs=1, **params).fit(x, score)
        ensemble = from_model(model)
        kinds |= set(ensemble.missing[ensemble.feature >= 0].tolist())
        rows = _probe(x, ensemble, rng)
        _same(ensemble.predict(rows), model.predict(rows))
    assert kinds == {0, 1, 2}


# ---- the representation itself ---------------------------------------------------------------------

def _stump(**over):
    tree = {"feature": [0, -1, -1], "threshold": [0.5, 0, 0], "left": [1, -1, -1], "right": [2, -1, -1],
            "value": [[0.0], [1.0], [2.0]], **over}
    return tree


def test_concatenate_offsets_children_and_checks_shapes():
    ens = concatenate([_stump(), _stump(default_left=[True, False, False])], base_score=np.zeros(1), n_features=1)
    assert ens.roots.tolist() == [0, 3] and ens.left.tolist() == [1, -1, -1, 4, -1, -1] and ens.max_depth == 1
    x = np.array([[0.5], [0.6], [np.nan]])
    np.testing.assert_array_equal(ens.raw_score(x)[:, 0], [2.0, 4.0, 3.0])  # <=, NaN: right then left
    strict = concatenate([_stump()], base_score=np.zeros(1), n_features=1, strict=True)
    assert strict.raw_score(np.array([[0.5]]))[0, 0] == 2.0
    with pytest.raises(MalformedModelError, match="out of range"):
        concatenate([_stump(left=[5, -1, -1])], base_score=np.zeros(1), n_features=1)
    with pytest.raises(MalformedModelError, match="cycle"):
        concatenate([_stump(left=[0, -1, -1])], base_score=np.zeros(1), n_features=1)
    with pytest.raises(MalformedModelError, match="without trees"):
        concatenate([], base_score=np.zeros(1), n_features=1)
    with pytest.raises(InvalidArgumentError, match="features"):
        ens.predict(np.zeros((2, 0)))
    with pytest.raises(InvalidArgumentError, match="not a classifier"):
        ens.predict_proba(x)
    with pytest.raises(Exception):
        ens.link = "softmax"  # frozen


def test_large_ensemble_is_chunked_and_a_single_row_matches():
    from sklearn.ensemble import RandomForestRegressor
    x, score, _ = _data(0, n=2000, nan=False)
    model = RandomForestRegressor(60, max_depth=8, random_state=0, n_jobs=1).fit(x, score)
    ensemble = from_model(model)
    big = np.tile(x, (30, 1))
    _same(ensemble.predict(big), model.predict(big))
    _same(ensemble.predict(x[:1]), model.predict(x[:1]))


# ---- Spark ML --------------------------------------------------------------------------------------

@pytest.mark.slow
def test_spark_tree_models_match_transform(spark):
    from pyspark.ml import classification as C
    from pyspark.ml import regression as R
    from pyspark.ml.linalg import Vectors
    from pyspark.ml.feature import VectorIndexer
    x, score, rng = _data(11, n=200, d=4, nan=False)
    x[:, 3] = rng.integers(0, 4, size=len(x))  # a categorical feature (VectorIndexer marks it)
    score = score + (x[:, 3] == 2) - (x[:, 3] == 0)
    label = np.digitize(score, [-1.0, 1.0]).astype(float)
    raw = spark.createDataFrame([(Vectors.dense(r), float(l), float(s), float(l > 0))
                                 for r, l, s in zip(x.tolist(), label, score)], ["raw", "k", "y", "b"])
    indexer = VectorIndexer(inputCol="raw", outputCol="features", maxCategories=4).fit(raw)
    train = indexer.transform(raw)
    models = [C.DecisionTreeClassifier(labelCol="k", maxDepth=4), C.RandomForestClassifier(labelCol="k", numTrees=5, seed=1),
              C.GBTClassifier(labelCol="b", maxIter=6, maxDepth=3, seed=1), R.DecisionTreeRegressor(labelCol="y"),
              R.RandomForestRegressor(labelCol="y", numTrees=4, seed=1), R.GBTRegressor(labelCol="y", maxIter=5)]
    for estimator in models:
        model = estimator.fit(train)
        ensemble = from_model(model)
        assert ensemble.cat_index is not None and (ensemble.cat_index >= 0).any(), type(model).__name__
        rows = _probe(x, ensemble, rng)
        rows[-5:, 1] = np.nan  # NaN goes right in Spark
        rows[:, 3] = rng.integers(0, 4, size=len(rows))  # category indices (the indexer keeps 0..3 as is)
        frame = spark.createDataFrame([(i, Vectors.dense(r)) for i, r in enumerate(rows.tolist())], ["i", "features"])
        out = model.transform(frame).orderBy("i").collect()
        theirs = np.array([r["prediction"] for r in out])
        ours = ensemble.predict(rows)
        if "Classification" in type(model).__name__:
            np.testing.assert_array_equal(ours, theirs)
            _same(ensemble.predict_proba(rows), np.array([r["probability"].toArray() for r in out]))
        else:
            _same(ours, theirs)


# ---- MLeap tree.json (what mleap_bridge's tree ops read) -------------------------------------------

def _airbnb_forest():
    import json
    import zipfile
    from pathlib import Path
    bundle = zipfile.ZipFile(Path(__file__).parent / "fixtures" / "mleap" / "airbnb.model.rf.zip")
    names = sorted((n for n in bundle.namelist() if n.endswith("/tree.json")),
                   key=lambda n: int(n.rsplit("/", 2)[-2][len("tree"):]))
    node = names[0].rsplit("/", 2)[0]
    attributes = json.loads(bundle.read(f"{node}/model.json"))["attributes"]
    return [bundle.read(n).decode() for n in names], int(attributes["num_features"]["long"])


def test_mleap_tree_json_forest_matches_mleap_bridge_trees():
    """The airbnb RandomForest bundle (20 trees, categorical and continuous splits)."""
    import json
    from spark_models.native.spark_trees import tree_json_arrays
    from tests.test_mleap_tree_kernel import _reference_leaf
    texts, width = _airbnb_forest()
    trees = [tree_json_arrays(t, normalize=False, where=f"tree{i}") for i, t in enumerate(texts)]
    ensemble = concatenate(trees, base_score=np.zeros(1), n_features=width, average_over=len(trees))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, width)) * rng.choice([1.0, 10.0, 100.0], size=width)
    inner = np.nonzero(ensemble.feature >= 0)[0][:200]
    x[np.arange(len(inner)), ensemble.feature[inner]] = ensemble.threshold[inner]  # on the thresholds
    lines = [[json.loads(line) for line in t.splitlines() if line.strip()] for t in texts]
    reference = np.mean([[_reference_leaf(tree, row)[0] for row in x] for tree in lines], axis=0)
    _same(ensemble.predict(x), reference, rtol=1e-12)


def test_malformed_tree_json_is_refused_with_the_line_and_categorical_splits_work():
    import json
    from spark_models.native.spark_trees import tree_json_arrays
    leaf = '{"type": "leaf", "values": [1.0]}'
    inner = '{"type": "internal", "split": {"type": "continuous", "featureIndex": 0, "threshold": 0.5}}'
    assert tree_json_arrays("\n".join([inner, leaf, leaf]), normalize=False, where="t")["left"] == [1, -1, -1]
    with pytest.raises(MalformedModelError, match="ends before"):
        tree_json_arrays("\n".join([inner, leaf]), normalize=False, where="t")
    with pytest.raises(MalformedModelError, match="line 2"):
        tree_json_arrays("\n".join([inner, "{nope", leaf]), normalize=False, where="t")
    with pytest.raises(MalformedModelError, match="after the tree"):
        tree_json_arrays("\n".join([leaf, leaf]), normalize=False, where="t")
    two = '{"type": "leaf", "values": [2.0]}'
    for is_left, expect in ((True, [1, 2, 2, 2, 2]), (False, [2, 1, 1, 1, 1])):
        split = {"type": "categorical", "featureIndex": 0, "categories": [1.0, 3.0], "isLeft": is_left}
        lines = "\n".join([json.dumps({"type": "internal", "split": split}), leaf, two])
        tree = concatenate([tree_json_arrays(lines, normalize=False, where="t")], base_score=np.zeros(1), n_features=1)
        x = np.array([[3.0], [2.0], [np.nan], [1.5], [7.0]])
        np.testing.assert_array_equal(tree.predict(x), expect)
        np.testing.assert_array_equal(tree.predict(np.array([[1.0]])), [expect[0]])


def test_lightgbm_categorical_splits_are_refused():
    import lightgbm as lgb
    x, score, _ = _data(2, nan=False)
    x[:, 1] = np.random.default_rng(0).integers(0, 5, size=len(x))
    score = score + 3 * (x[:, 1] == 2)
    model = lgb.LGBMRegressor(n_estimators=5, verbose=-1, n_jobs=1, min_child_samples=5, min_data_per_group=5,
                              cat_smooth=1).fit(x, score, categorical_feature=[1])
    with pytest.raises(NotSupportedError, match="categorical"):
        from_model(model)
