"""compile_linear: linear models as pure Spark Column expressions, compared with numpy / Spark ML."""

from __future__ import annotations

import numpy as np
import pytest
from pyspark.sql import functions as F
from sklearn import linear_model, svm

from spark_models.exceptions import InvalidArgumentError, NotSupportedError
from spark_models.native.linear import compile_linear

N_FEATURES = 5
COLS = [f"x{i}" for i in range(N_FEATURES)]


def _data(seed: int, n: int = 3000) -> np.ndarray:
    """Rows with magnitudes from 1e-8 to 1e8 (per row and per feature)."""
    rng = np.random.default_rng(seed)
    scale = 10.0 ** rng.uniform(-8, 8, size=(n, 1))
    return rng.normal(size=(n, N_FEATURES)) * scale * rng.uniform(0.5, 2, size=N_FEATURES)


def _frame(spark, X):
    rows = [(i, *map(float, r)) for i, r in enumerate(X)]
    schema = "id long, " + ", ".join(f"{c} double" for c in COLS)
    return spark.createDataFrame(rows, schema)


def _score(spark, X, column):
    out = _frame(spark, X).select("id", column.alias("y")).orderBy("id").collect()
    return [r["y"] for r in out]


def _close(got, want, bound):
    got, want, bound = np.asarray(got, dtype=float), np.asarray(want, dtype=float), np.asarray(bound)
    assert got.shape == want.shape
    err = np.abs(got - want)
    assert np.all(err <= 1e-12 * bound), f"max relative error {np.max(err / bound)}"


def _dot_bound(X, coef, intercept):
    """The scale a rounding error of a dot product is relative to: sum |x_i c_i| + |b|."""
    coef2 = np.atleast_2d(coef)
    return np.abs(X) @ np.abs(coef2).T + np.abs(np.atleast_1d(intercept))


def _fit_training(seed, n_classes=None):
    rng = np.random.default_rng(100 + seed)
    X = rng.normal(size=(400, N_FEATURES))
    w = rng.normal(size=N_FEATURES)
    if n_classes is None:
        return X, X @ w + rng.normal(scale=0.1, size=400)
    z = X @ rng.normal(size=(N_FEATURES, n_classes))
    return X, np.argmax(z + rng.gumbel(size=z.shape), axis=1)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("cls", [linear_model.LinearRegression, linear_model.Ridge,
                                 linear_model.Lasso, linear_model.ElasticNet])
def test_sklearn_regressors_match_predict(spark, cls, seed):
    Xt, y = _fit_training(seed)
    kwargs = {"alpha": 0.01} if cls in (linear_model.Lasso, linear_model.ElasticNet) else {}
    model = cls(**kwargs).fit(Xt, y)
    X = _data(seed)
    got = _score(spark, X, compile_linear(model, COLS, output="predict"))
    _close(got, model.predict(X), _dot_bound(X, model.coef_, model.intercept_)[:, 0])


def test_sklearn_multi_target_regression_is_an_array(spark):
    Xt, y = _fit_training(3)
    model = linear_model.LinearRegression().fit(Xt, np.c_[y, -2 * y + 1])
    X = _data(3, n=500)
    got = _score(spark, X, compile_linear(model, COLS, output="predict"))
    _close(got, model.predict(X), _dot_bound(X, model.coef_, model.intercept_))


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("n_classes", [2, 4])
def test_sklearn_logistic_predict_and_proba(spark, seed, n_classes):
    Xt, y = _fit_training(seed, n_classes)
    labels = np.array(["ant", "bee", "cat", "dog"])[: n_classes]
    model = linear_model.LogisticRegression(C=10.0, max_iter=500).fit(Xt, labels[y])
    X = _data(seed) * 1e-6  # moderate margins: probabilities away from 0/1 as well as saturated
    frame = _frame(spark, X)
    out = frame.select(
        "id",
        compile_linear(model, COLS, output="predict").alias("label"),
        compile_linear(model, COLS, output="predict_proba").alias("proba"),
        compile_linear(model, COLS, output="raw").alias("raw"),
    ).orderBy("id").collect()
    assert [r["label"] for r in out] == list(model.predict(X))
    raw_bound = _dot_bound(X, model.coef_, model.intercept_)
    _close([r["raw"] for r in out], model.decision_function(X), raw_bound[:, 0] if n_classes == 2 else raw_bound)
    want = model.predict_proba(X)
    _close([r["proba"] for r in out], want, np.maximum(np.abs(want), 1e-3))


def test_sklearn_argmax_ties_take_the_first_class(spark):
    model = linear_model.LogisticRegression().fit(np.eye(5)[:3], [0, 1, 2])
    model.coef_ = np.array([[1.0, 0, 0, 0, 0], [1.0, 0, 0, 0, 0], [0, 0, 1.0, 0, 0]])
    model.intercept_ = np.zeros(3)
    X = np.zeros((4, 5))
    X[:, [0, 2]] = [[1.0, 1.0], [0, 0], [0, 2.0], [2.0, 2.0]]
    got = _score(spark, X, compile_linear(model, COLS))
    assert got == list(model.predict(X)) == [0, 0, 2, 0]


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("n_classes", [2, 3])
def test_linear_svc_predict(spark, seed, n_classes):
    Xt, y = _fit_training(seed, n_classes)
    model = svm.LinearSVC(max_iter=5000).fit(Xt, y + 10)
    X = _data(seed)
    got = _score(spark, X, compile_linear(model, COLS, output="predict"))
    assert got == list(model.predict(X))
    with pytest.raises(NotSupportedError, match="LinearSVC"):
        compile_linear(model, COLS, output="predict_proba")


def test_nulls_give_null_and_nan_follows_numpy(spark):
    Xt, y = _fit_training(0, 3)
    multi = linear_model.LogisticRegression().fit(Xt, y)
    binary = linear_model.LogisticRegression().fit(Xt, y == 1)
    reg = linear_model.Ridge().fit(Xt, y.astype(float))
    rows = [(0, None, 1.0, 2.0, 3.0, 4.0), (1, float("nan"), 1.0, 2.0, 3.0, 4.0),
            (2, float("inf"), 0.0, 0.0, 0.0, 0.0), (3, 1.0, 1.0, 1.0, 1.0, 1.0)]
    frame = spark.createDataFrame(rows, "id long, " + ", ".join(f"{c} double" for c in COLS))
    exprs = {
        "reg": compile_linear(reg, COLS), "bin": compile_linear(binary, COLS),
        "multi": compile_linear(multi, COLS), "p": compile_linear(multi, COLS, output="predict_proba"),
        "bp": compile_linear(binary, COLS, output="predict_proba"),
    }
    out = frame.select("id", *[e.alias(k) for k, e in exprs.items()]).orderBy("id").collect()
    assert all(out[0][k] is None for k in exprs)
    X = np.array([r[1:] for r in rows[1:]], dtype=float)
    with np.errstate(invalid="ignore"):
        raw_multi = X @ multi.coef_.T + multi.intercept_
        raw_bin = X @ binary.coef_[0] + binary.intercept_[0]
        want_reg = X @ reg.coef_ + reg.intercept_
    assert np.isnan(out[1]["reg"]) and np.isnan(want_reg[0])
    assert [r["bin"] for r in out[1:]] == list(binary.classes_[(raw_bin > 0).astype(int)])
    assert [r["multi"] for r in out[1:]] == list(multi.classes_[np.argmax(raw_multi, axis=1)])
    assert all(np.isnan(v) for v in out[1]["p"]) and all(np.isnan(v) for v in out[1]["bp"])
    assert out[3]["multi"] == multi.predict(X[2:])[0]


def test_refusals_name_the_estimator_and_reason():
    with pytest.raises(NotSupportedError, match="SGDRegressor"):
        compile_linear(linear_model.SGDRegressor(), COLS)
    model = linear_model.Ridge().fit(np.eye(5), np.arange(5.0))
    with pytest.raises(NotSupportedError, match="Ridge.*predict_proba"):
        compile_linear(model, COLS, output="predict_proba")
    with pytest.raises(NotSupportedError, match="not fitted"):
        compile_linear(linear_model.Lasso(), COLS)
    with pytest.raises(InvalidArgumentError, match="5 features but 2 input columns"):
        compile_linear(model, COLS[:2])
    with pytest.raises(InvalidArgumentError, match="output"):
        compile_linear(model, COLS, output="proba")


def _spark_training(spark, seed, n_classes):
    Xt, y = _fit_training(seed, n_classes)
    y = y.astype(float) if n_classes else y
    rows = [(*map(float, r), float(t)) for r, t in zip(Xt, y)]
    return spark.createDataFrame(rows, ", ".join(f"{c} double" for c in COLS) + ", label double")


def _assembled(frame):
    from pyspark.ml.feature import VectorAssembler

    return VectorAssembler(inputCols=COLS, outputCol="features").transform(frame)


def _vectors(rows, key):
    return np.array([r[key].toArray() for r in rows])


@pytest.mark.parametrize("seed", [0, 1])
def test_spark_ml_linear_regression(spark, seed):
    from pyspark.ml.regression import LinearRegression

    model = LinearRegression(regParam=0.01, elasticNetParam=0.5).fit(_assembled(_spark_training(spark, seed, None)))
    X = _data(seed, n=1000)
    scored = model.transform(_assembled(_frame(spark, X)))
    out = scored.select(
        "id", "prediction",
        compile_linear(model, COLS).alias("from_columns"),
        compile_linear(model, [F.col("features")]).alias("from_vector"),
    ).orderBy("id").collect()
    want = np.array([r["prediction"] for r in out])
    bound = _dot_bound(X, model.coefficients.toArray(), model.intercept)[:, 0]
    _close([r["from_columns"] for r in out], want, bound)
    _close([r["from_vector"] for r in out], want, bound)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("n_classes,family", [(2, "binomial"), (3, "multinomial"), (2, "multinomial")])
def test_spark_ml_logistic_regression(spark, seed, n_classes, family):
    from pyspark.ml.classification import LogisticRegression

    estimator = LogisticRegression(regParam=0.001, family=family, threshold=0.4 if family == "binomial" else 0.5)
    model = estimator.fit(_assembled(_spark_training(spark, seed, n_classes)))
    X = _data(seed, n=1000) * 1e-7
    scored = model.transform(_assembled(_frame(spark, X)))
    out = scored.select(
        "id", "prediction", "probability", "rawPrediction",
        compile_linear(model, COLS).alias("label"),
        compile_linear(model, [F.col("features")], output="predict_proba").alias("proba"),
        compile_linear(model, COLS, output="raw").alias("raw"),
    ).orderBy("id").collect()
    assert [r["label"] for r in out] == [r["prediction"] for r in out]
    want_p, want_raw = _vectors(out, "probability"), _vectors(out, "rawPrediction")
    coef = model.coefficientMatrix.toArray()
    raw_bound = _dot_bound(X, coef, model.interceptVector.toArray())
    raw_bound = np.c_[raw_bound, raw_bound] if raw_bound.shape[1] == 1 else raw_bound
    _close([r["raw"] for r in out], want_raw, raw_bound)
    _close([r["proba"] for r in out], want_p, np.maximum(np.abs(want_p), 1e-3))


@pytest.mark.parametrize("seed", [0, 1])
def test_wide_multinomial_uses_a_linear_size_tree_and_still_matches(spark, seed):
    rng = np.random.default_rng(seed)
    d, k = 40, 8
    Xt = rng.normal(size=(400, d))
    model = linear_model.LogisticRegression(max_iter=300).fit(Xt, np.argmax(Xt[:, :k], axis=1))
    cols = [f"c{i}" for i in range(d)]
    proba = compile_linear(model, cols, output="predict_proba")
    assert len(str(proba)) < 200_000  # the direct form would be ~classes**3 * features nodes
    X = rng.normal(size=(2000, d)) * 10.0 ** rng.uniform(-3, 1, size=(2000, 1))
    frame = spark.createDataFrame([(i, *map(float, r)) for i, r in enumerate(X)],
                                  "id long, " + ", ".join(f"{c} double" for c in cols))
    out = frame.select("id", proba.alias("p"), compile_linear(model, cols).alias("y")).orderBy("id").collect()
    want = model.predict_proba(X)
    _close([r["p"] for r in out], want, np.maximum(want, 1e-3))
    assert [r["y"] for r in out] == list(model.predict(X))
    plan = frame.select(proba)._jdf.queryExecution().executedPlan().toString()
    assert "Python" not in plan and "Arrow" not in plan


def test_spark_ml_multinomial_wide_form_matches_transform(spark, monkeypatch):
    from pyspark.ml.classification import LogisticRegression

    from spark_models.native import linear

    monkeypatch.setattr(linear, "DIRECT_SOFTMAX_LIMIT", 0)  # force the higher-order-function form
    model = LogisticRegression(regParam=0.001).fit(_assembled(_spark_training(spark, 4, 3)))
    X = _data(4, n=1000) * 1e-7
    out = model.transform(_assembled(_frame(spark, X))).select(
        "id", "prediction", "probability",
        compile_linear(model, COLS).alias("label"),
        compile_linear(model, [F.col("features")], output="predict_proba").alias("proba"),
    ).orderBy("id").collect()
    assert [r["label"] for r in out] == [r["prediction"] for r in out]
    want = _vectors(out, "probability")
    _close([r["proba"] for r in out], want, np.maximum(want, 1e-3))


def test_sparse_or_float32_coefficients_are_refused():
    model = linear_model.LogisticRegression().fit(np.eye(5), [0, 1, 0, 1, 0])
    model.coef_ = model.coef_.astype(np.float32)
    with pytest.raises(NotSupportedError, match="LogisticRegression.*float32"):
        compile_linear(model, COLS)
    model = linear_model.LogisticRegression().fit(np.eye(5), [0, 1, 0, 1, 0]).sparsify()
    with pytest.raises(NotSupportedError, match="LogisticRegression.*coef_"):
        compile_linear(model, COLS)
