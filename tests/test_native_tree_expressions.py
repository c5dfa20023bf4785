"""compile_trees: tree ensembles as pure Spark Column expressions, compared with the libraries'
own predictions (and with the numpy evaluator, exactly) on rows with NaN, null, values exactly on
split thresholds and their float32 neighbours."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from spark_models.exceptions import InvalidArgumentError, NotSupportedError
from spark_models.native.tree_expressions import compile_trees, float32_thresholds
from spark_models.native.tree_sources import from_model
from tests.test_native_trees import _data, _probe, _targets

RTOL = 1e-12


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _frame(spark, rows: np.ndarray):
    """Rows as a DataFrame; every other NaN becomes a null (the Python path hands both over as NaN)."""
    names = [f"x{i}" for i in range(rows.shape[1])]
    data = [(i, *[None if (v != v and (i + j) % 2) else float(v) for j, v in enumerate(r)])
            for i, r in enumerate(rows)]
    return spark.createDataFrame(data, "id long, " + ", ".join(f"{n} double" for n in names)), names


def _score(spark, ensemble, rows, outputs):
    frame, names = _frame(spark, rows)
    columns = [compile_trees(ensemble, names, output=o).alias(o) for o in outputs]
    got = frame.select("id", *columns).orderBy("id").collect()
    assert [r["id"] for r in got] == list(range(len(rows)))
    return {o: np.array([r[o] for r in got]) for o in outputs}


def _same(got, want, rtol=RTOL):
    want = np.asarray(want)
    if want.dtype.kind in "iuUOb":
        np.testing.assert_array_equal(got.astype(want.dtype), want)
    else:
        np.testing.assert_allclose(np.asarray(got, dtype=float), want.astype(float), rtol=rtol, atol=0)


def _check(spark, model, x, rng, *, proba: bool):
    ensemble = from_model(model)
    rows = _probe(x, ensemble, rng)
    if not np.isnan(x).any():
        rows = np.nan_to_num(rows)  # a model fitted without NaN support
    outputs = ["predict", "raw"] + (["predict_proba"] if proba else [])
    got = _score(spark, ensemble, rows, outputs)
    _same(got["predict"], model.predict(rows))
    raw = ensemble.raw_score(rows)
    _same(got["raw"], raw[:, 0] if raw.shape[1] == 1 else raw, rtol=0 if ensemble.accumulate_float32 else RTOL)
    if proba:
        _same(got["predict_proba"], ensemble.predict_proba(rows), rtol=0 if ensemble.accumulate_float32 else RTOL)
        _same(got["predict_proba"], model.predict_proba(rows), rtol=2.5e-7 if ensemble.accumulate_float32 else RTOL)


def _sklearn_cases():
    """Every scikit-learn tree model type, small (building a Column costs one JVM call per node)."""
    from sklearn import ensemble as E
    from sklearn import tree as T

    return [(T.DecisionTreeClassifier(max_depth=4, random_state=0), "multi", True),
            (T.DecisionTreeRegressor(max_depth=4, random_state=0), "reg2", False),
            (T.ExtraTreeRegressor(max_depth=3, random_state=0), "reg", False),
            (E.RandomForestClassifier(3, max_depth=3, random_state=0), "binary", True),
            (E.RandomForestRegressor(3, max_depth=3, random_state=0), "reg", False),
            (E.ExtraTreesClassifier(3, max_depth=3, random_state=0), "multi", True),
            (E.GradientBoostingClassifier(n_estimators=4, max_depth=2, random_state=0), "binary", True),
            (E.GradientBoostingClassifier(n_estimators=3, max_depth=2, random_state=0), "multi", True),
            (E.GradientBoostingRegressor(n_estimators=4, max_depth=2, random_state=0), "reg", False),
            (E.HistGradientBoostingClassifier(max_iter=4, max_leaf_nodes=5, random_state=0), "binary", True),
            (E.HistGradientBoostingClassifier(max_iter=2, max_leaf_nodes=4, random_state=0), "multi", True),
            (E.HistGradientBoostingRegressor(max_iter=4, max_leaf_nodes=5, loss="poisson", random_state=0), "count", False)]


def test_sklearn_tree_models_compile_exactly(spark):
    x, score, rng = _data(0, n=200)
    for model, kind, proba in _sklearn_cases():
        plain_gb = type(model).__name__.startswith("GradientBoosting")  # no NaN support in these
        x_fit = np.nan_to_num(x) if plain_gb else x
        model.fit(x_fit, _targets(score, kind))
        _check(spark, model, x_fit, rng, proba=proba)


def test_xgboost_float32_splits_and_sums_are_bit_exact(spark):
    import xgboost as xgb

    x, score, rng = _data(1, n=200)
    common = dict(n_estimators=4, max_depth=3, n_jobs=1, random_state=1)
    for model, kind in [(xgb.XGBClassifier(**common), "binary"), (xgb.XGBClassifier(**common), "multi"),
                        (xgb.XGBRegressor(**common), "reg"), (xgb.XGBRegressor(objective="count:poisson", **common), "count"),
                        (xgb.XGBRFRegressor(n_estimators=3, max_depth=3, n_jobs=1), "reg")]:
        model.fit(x, _targets(score, kind))
        _check(spark, model, x, rng, proba=kind in ("binary", "multi"))


def test_lightgbm_missing_types_compile(spark):
    import lightgbm as lgb

    x, score, rng = _data(2, n=200)
    x[::7, 3] = 0.0
    common = dict(n_estimators=3, num_leaves=5, random_state=2, n_jobs=1, verbose=-1, min_child_samples=5)
    for model, kind in [(lgb.LGBMClassifier(**common), "binary"), (lgb.LGBMClassifier(**common), "multi"),
                        (lgb.LGBMRegressor(objective="poisson", **common), "count"),
                        (lgb.LGBMRegressor(zero_as_missing=True, **common), "reg"),
                        (lgb.LGBMRegressor(use_missing=False, **common), "reg"),
                        (lgb.LGBMRegressor(boosting_type="rf", bagging_freq=1, bagging_fraction=0.7, **common), "reg")]:
        model.fit(x, _targets(score, kind))
        _check(spark, model, x, rng, proba=kind in ("binary", "multi"))


def test_random_models_and_data_property(spark):
    """Random forests / boosters with random depth, size and data scale (seeded): compiled = numpy."""
    from sklearn.ensemble import HistGradientBoostingRegressor, RandomForestClassifier
    for seed in range(4):
        r = np.random.default_rng(100 + seed)
        x, score, rng = _data(100 + seed, n=200, d=int(r.integers(2, 6)))
        x *= 10.0 ** r.uniform(-6, 6)
        model = (RandomForestClassifier(int(r.integers(1, 6)), max_depth=int(r.integers(1, 7)), random_state=seed)
                 if seed % 2 else HistGradientBoostingRegressor(max_iter=int(r.integers(2, 12)), random_state=seed))
        model.fit(x, _targets(score, "multi" if seed % 2 else "reg"))
        _check(spark, model, x, rng, proba=bool(seed % 2))


def test_float32_thresholds_reproduce_float32_comparisons():
    rng = np.random.default_rng(3)
    t = np.concatenate([rng.normal(size=2000) * 10.0 ** rng.uniform(-30, 30, 2000),
                        np.float32(rng.normal(size=500)).astype(np.float64),
                        [0.0, -0.0, 1e-45, 3.4e38, 3.5e38, -3.5e38, 1e39, -1e39, np.inf, -np.inf]])
    for strict in (False, True):
        d = float32_thresholds(t, strict=strict)
        for x in (t, np.nextafter(t, np.inf), np.nextafter(t, -np.inf), d, np.nextafter(d, np.inf), -t,
                  (t.astype(np.float32).astype(np.float64) + np.nextafter(t.astype(np.float32), np.float32(np.inf))) / 2):
            x32 = x.astype(np.float32).astype(np.float64)
            want = (x32 < t) if strict else (x32 <= t)
            keep = ~(strict & (t == -np.inf))  # x < -inf: never true, refused when compiling
            np.testing.assert_array_equal((x <= d)[keep], want[keep])


def test_arguments_are_checked(spark):
    from sklearn.tree import DecisionTreeRegressor
    x, score, _ = _data(0, n=50, nan=False)
    ensemble = from_model(DecisionTreeRegressor(max_depth=2).fit(x, score))
    with pytest.raises(InvalidArgumentError, match="reads 6 features but 2"):
        compile_trees(ensemble, ["x0", "x1"])
    with pytest.raises(InvalidArgumentError, match="output must be one of"):
        compile_trees(ensemble, [f"x{i}" for i in range(6)], output="proba")
    with pytest.raises(NotSupportedError, match="predict_proba of a tree regressor"):
        compile_trees(ensemble, [f"x{i}" for i in range(6)], output="predict_proba")


def test_table_walk_equals_the_inline_form(spark, monkeypatch):
    """Past INLINE_TREE_NODES the ensemble is walked as node tables: the same answers, exactly."""
    import xgboost as xgb
    from sklearn.ensemble import RandomForestClassifier

    from spark_models.native import tree_expressions

    monkeypatch.setattr(tree_expressions, "INLINE_TREE_NODES", 0)
    x, score, rng = _data(7, n=200)
    forest = RandomForestClassifier(4, max_depth=5, random_state=0).fit(x, _targets(score, "multi"))
    _check(spark, forest, x, rng, proba=True)
    booster = xgb.XGBClassifier(n_estimators=6, max_depth=3, n_jobs=1).fit(x, _targets(score, "binary"))
    _check(spark, booster, x, rng, proba=True)


@pytest.mark.slow
def test_a_500_tree_forest_and_a_1000_round_booster_run(spark):
    """The sizes the inline form cannot hold: both compile (as node tables) and score exactly."""
    import xgboost as xgb
    from sklearn.ensemble import RandomForestRegressor

    from spark_models.native.tree_expressions import INLINE_TREE_NODES, node_count

    x, score, rng = _data(8, n=3000, nan=False)
    forest = RandomForestRegressor(500, max_depth=8, random_state=0, n_jobs=2).fit(x, score)
    booster = xgb.XGBRegressor(n_estimators=1000, max_depth=6, learning_rate=0.05, n_jobs=2).fit(x, score)
    rows = x[:150].copy()
    rows[::5, 2] = np.nan
    for model in (forest, booster):
        ensemble = from_model(model)
        assert node_count(ensemble) > INLINE_TREE_NODES
        got = _score(spark, ensemble, rows, ["predict"])["predict"]
        rtol = 0 if ensemble.accumulate_float32 else RTOL
        _same(got, ensemble.predict(rows), rtol=rtol)
        _same(got, model.predict(rows), rtol=2.5e-7 if ensemble.accumulate_float32 else RTOL)
