"""spark_native / spark_udf(runtime=...): saved scikit-learn, xgboost and lightgbm model directories
scored as pure Spark expressions, equal to the Arrow UDF and to the model's own predict on the same
rows (NaN, Spark null, unseen categories), binding columns exactly as spark_udf does.

Not tested here: scoring on executors that have no Python packages at all. The local[2] workers
share this interpreter, so such an environment cannot be built in a test; the plan checks below
(no Python UDF in the executed plan) are what that guarantee rests on.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import functions as F

import spark_models
import spark_models.sklearn
from spark_models.exceptions import InvalidArgumentError, NotSupportedError, SchemaEnforcementError
from spark_models.models import infer_signature
from spark_models.native.scoring import AUTO_TREE_NODES, NativeModelUDF
from udf import spark_udf

pytestmark = pytest.mark.spark
RTOL = 1e-12
LOGGER = "spark_models.native.scoring"
PYTHON_UDF_NODES = ("ArrowEvalPython", "BatchEvalPython", "PythonUDF")


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def numeric_frame(n: int = 240, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n) * 3.0, "c": rng.uniform(-1, 1, n)})


def with_missing(X: pd.DataFrame) -> tuple[pd.DataFrame, list[tuple]]:
    """``X`` with NaN in some cells, and its rows for Spark where every other NaN is a null."""
    X = X.copy()
    X.iloc[::7, 0] = np.nan
    X.iloc[3::11, 1] = np.nan
    rows = [(i, *[None if (isinstance(v, float) and v != v and (i + j) % 2) else v for j, v in enumerate(r)])
            for i, r in enumerate(X.itertuples(index=False))]
    return X, rows


def frame_of(spark, X: pd.DataFrame, rows: list[tuple] | None = None):
    types = {"float64": "double", "object": "string", "int64": "long"}
    ddl = "id long, " + ", ".join(f"{c} {types[str(t)]}" for c, t in X.dtypes.items())
    if rows is None:  # NaN → null
        rows = [(i, *[None if isinstance(v, float) and v != v else v for v in r])
                for i, r in enumerate(X.itertuples(index=False))]
    return spark.createDataFrame(rows, ddl)


def score_both(spark, path, df, *, result_type=None, args=(), kwargs=None):
    """(native, python) predictions of ``path`` on ``df`` (one collect, rows in id order)."""
    native = spark_udf(spark, str(path), result_type=result_type, runtime="native")
    python = spark_udf(spark, str(path), result_type=result_type)
    assert isinstance(native, NativeModelUDF) and native.runtime == "native" and python.runtime == "python"
    assert native.return_type == python.return_type
    kwargs = kwargs or {}
    out = df.select("id", native(*args, **kwargs).alias("n"), python(*args, **kwargs).alias("p")).orderBy("id").collect()
    assert [r.id for r in out] == list(range(df.count()))
    return np.array([_plain(r.n) for r in out]), np.array([_plain(r.p) for r in out])


def _plain(value):
    return np.nan if value is None else value


def same(got, want, rtol=RTOL):
    want = np.asarray(want)
    if want.dtype.kind in "iuUOb":
        np.testing.assert_array_equal(np.asarray(got).astype(want.dtype), want)
    else:
        np.testing.assert_allclose(np.asarray(got, dtype=float), want.astype(float), rtol=rtol, atol=0)


def save_sklearn(model, path, X, **kwargs):
    fn = kwargs.get("pyfunc_predict_fn", "predict")
    spark_models.sklearn.save_model(model, path, signature=infer_signature(X, getattr(model, fn)(X)), **kwargs)
    return path


# ---- fitted models, shared by the module ------------------------------------------------------

@pytest.fixture(scope="module")
def lr_dir(tmp_path_factory):
    from sklearn.linear_model import LogisticRegression

    X = numeric_frame()
    model = LogisticRegression().fit(X, (X.a + 0.3 * X.b > 0.2).astype(int) + (X.c > 0.5))
    return save_sklearn(model, tmp_path_factory.mktemp("lr") / "m", X), model


# ---- 1. parity: native == Arrow UDF == model.predict ------------------------------------------

def test_logistic_regression_labels_and_probabilities(spark, lr_dir, tmp_path):
    path, model = lr_dir
    X = numeric_frame(200, seed=1)
    X.iloc[0] = [0.0, 0.0, 0.0]
    df = frame_of(spark, X)
    native, python = score_both(spark, path, df)
    same(native, model.predict(X))
    same(python, native.astype(np.int64))
    proba_dir = save_sklearn(model, tmp_path / "proba", X, pyfunc_predict_fn="predict_proba")
    native, python = score_both(spark, proba_dir, df)
    assert spark_udf(spark, str(proba_dir), runtime="native").return_type.simpleString() == "array<double>"
    want = model.predict_proba(X)
    same(np.stack(native), want)
    same(np.stack(python), want)


@pytest.mark.slow
def test_scaler_imputer_logistic_pipeline_with_nan_and_null(spark, tmp_path):
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    train, _ = with_missing(numeric_frame(300, seed=2))
    y = (train.a.fillna(0) - train.b.fillna(0) > 0).astype(int)
    model = Pipeline([("scale", StandardScaler()), ("impute", SimpleImputer(strategy="median")),
                      ("lr", LogisticRegression())]).fit(train, y)
    X, rows = with_missing(numeric_frame(200, seed=3))
    native, python = score_both(spark, save_sklearn(model, tmp_path / "m", train), frame_of(spark, X, rows))
    same(native, model.predict(X))
    same(python, model.predict(X))
    text = spark_udf(spark, str(tmp_path / "m"), runtime="native").explain()
    for part in ("StandardScaler", "SimpleImputer", "LogisticRegression", "0 tree split nodes"):
        assert part in text, text


@pytest.mark.slow
def test_column_transformer_one_hot_forest_with_unseen_and_null_categories(spark, tmp_path):
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    rng = np.random.default_rng(4)

    def frame(n):
        X = numeric_frame(n, seed=int(rng.integers(1000)))[["a", "b"]]
        return X.assign(color=rng.choice(["red", "green", "blue"], n).astype(object))

    train = frame(300)
    y = ((train.color == "red") + (train.a > 0)).astype(int)
    pre = ColumnTransformer([("onehot", OneHotEncoder(handle_unknown="ignore"), ["color"]),
                             ("scale", StandardScaler(), ["a", "b"])])
    model = Pipeline([("pre", pre), ("rf", RandomForestClassifier(8, max_depth=4, random_state=0))]).fit(train, y)
    X = frame(200)
    X.loc[[1, 5, 9], "color"] = "purple"  # unseen: all one-hot columns 0
    X.loc[[2, 6], "color"] = None
    native, python = score_both(spark, save_sklearn(model, tmp_path / "m", train), frame_of(spark, X))
    same(native, model.predict(X))
    same(python, model.predict(X))
    u = spark_udf(spark, str(tmp_path / "m"), runtime="native")
    nodes = sum(int((t.tree_.children_left >= 0).sum()) for t in model[-1].estimators_)
    assert f"{nodes} tree split nodes" in u.explain() and "RandomForestClassifier" in u.explain()


def test_hist_gradient_boosting_regressor_with_nan_and_null(spark, tmp_path):
    from sklearn.ensemble import HistGradientBoostingRegressor

    train, _ = with_missing(numeric_frame(300, seed=5))
    model = HistGradientBoostingRegressor(max_iter=15, max_depth=4, random_state=0)
    model.fit(train, np.where(train.a.isna(), 10.0, train.a * 2 + train.c))  # missing values matter
    X, rows = with_missing(numeric_frame(200, seed=6))
    native, python = score_both(spark, save_sklearn(model, tmp_path / "m", train), frame_of(spark, X, rows))
    same(native, model.predict(X))
    same(python, model.predict(X))


def test_xgboost_regressor_is_float32_exact(spark, tmp_path):
    xgb = pytest.importorskip("xgboost")
    import spark_models.xgboost
    from spark_models.native.tree_sources import from_model

    train, _ = with_missing(numeric_frame(300, seed=7))
    y = np.where(train.a.isna(), 5.0, train.a - train.c)
    model = xgb.XGBRegressor(n_estimators=12, max_depth=3, learning_rate=0.3).fit(train, y)
    spark_models.xgboost.save_model(model, tmp_path / "m", signature=infer_signature(train, model.predict(train)))
    X, rows = with_missing(numeric_frame(200, seed=8))
    native, python = score_both(spark, tmp_path / "m", frame_of(spark, X, rows))
    want = model.predict(X)  # float32
    evaluator = from_model(model).predict(X.to_numpy())
    np.testing.assert_array_equal(native.astype(np.float64), np.asarray(evaluator, dtype=np.float64))
    ulps = np.abs(native.astype(np.float32).view(np.int32).astype(np.int64) - want.view(np.int32).astype(np.int64))
    assert ulps.max() <= 1, ulps.max()
    np.testing.assert_array_equal(python.astype(np.float32), want)


@pytest.mark.slow
def test_lightgbm_classifier_labels(spark, tmp_path):
    lgb = pytest.importorskip("lightgbm")
    import spark_models.lightgbm

    train, _ = with_missing(numeric_frame(300, seed=9))
    y = np.where(train.a.isna(), 2, (train.a + train.c > 0).astype(int))  # missing values matter
    model = lgb.LGBMClassifier(n_estimators=10, num_leaves=7, min_child_samples=5, verbose=-1).fit(train, y)
    spark_models.lightgbm.save_model(model, tmp_path / "m", signature=infer_signature(train, model.predict(train)))
    X, rows = with_missing(numeric_frame(200, seed=10))
    native, python = score_both(spark, tmp_path / "m", frame_of(spark, X, rows))
    same(native, model.predict(X))
    same(python, model.predict(X))


# ---- 2. binding: exactly as spark_udf -----------------------------------------------------------

def test_binding_by_name_keywords_and_structs(spark, lr_dir):
    path, model = lr_dir
    X = numeric_frame(120, seed=11)
    want = model.predict(X)
    df = frame_of(spark, X).withColumn("st", F.struct(F.col("c"), F.col("b"), F.col("a")))
    renamed = df.select("id", F.col("a").alias("x"), F.col("b").alias("y"), F.col("c").alias("z"))
    native, python = spark_native_of(spark, path), spark_udf(spark, str(path))

    def calls(u):
        return {"plain": u(), "swapped": u("c", "b", "a"), "cols": u(F.col("b"), F.col("c"), F.col("a")),
                "struct": u(F.struct("b", "a", "c")), "struct_col": u(F.col("st")), "struct_name": u("st")}

    columns = [c.alias(f"{runtime}_{k}") for runtime, u in (("n", native), ("p", python)) for k, c in calls(u).items()]
    out = df.select("id", *columns).orderBy("id").toPandas()
    assert out.id.tolist() == list(range(len(X)))
    for name in calls(native):
        same(out[f"n_{name}"].to_numpy(), want)
        same(out[f"p_{name}"].to_numpy(), want)
    kw = renamed.select("id", native(a="x", b="y", c="z").alias("k"), native(a=F.col("x"), c="z", b="y").alias("k2"),
                        python(a="x", b="y", c="z").alias("p")).orderBy("id").toPandas()
    for name in ("k", "k2", "p"):
        same(kw[name].to_numpy(), want)


def test_single_argument_is_a_column_by_its_name_or_a_struct(spark, lr_dir, tmp_path):
    """One argument binds as in spark_udf: a model input by its name, else a struct's fields
    (never the one column under another name)."""
    from pyspark.errors import AnalysisException
    from sklearn.linear_model import LinearRegression

    X = numeric_frame(80, seed=16)
    model = LinearRegression().fit(X[["a"]], X.b)
    one = spark_native_of(spark, save_sklearn(model, tmp_path / "one", X[["a"]]))
    python = spark_udf(spark, str(tmp_path / "one"))
    df = frame_of(spark, X).withColumn("other", F.col("c"))
    out = df.select("id", one("a").alias("n"), one(F.struct(F.col("c").alias("a"))).alias("s"),
                    python(F.struct(F.col("c").alias("a"))).alias("p")).orderBy("id").toPandas()
    same(out.n.to_numpy(), model.predict(X[["a"]]))
    same(out.s.to_numpy(), model.predict(X[["c"]].set_axis(["a"], axis=1)))
    same(out.p.to_numpy(), out.s.to_numpy())
    with pytest.raises(AnalysisException):  # "other" is not the model's input "a"
        df.select(one("other")).schema
    three = spark_native_of(spark, lr_dir[0])
    with pytest.raises(SchemaEnforcementError, match=r"\['b', 'c'\]"):
        three("a")


def spark_native_of(spark, path):
    u = spark_models.spark_native(spark, str(path))
    assert isinstance(u, NativeModelUDF) and u.runtime == "native"
    return u


def test_missing_columns_and_unnamed_expressions_are_errors(spark, lr_dir):
    path, _ = lr_dir
    u = spark_native_of(spark, path)
    df = frame_of(spark, numeric_frame(10))
    assert u.validate(df) is df
    with pytest.raises(SchemaEnforcementError, match=r"lacks: \['a', 'c'\]"):
        u.validate(df.drop("a", "c"))
    with pytest.raises(SchemaEnforcementError, match=r"lacks: \['a', 'c'\]"):
        spark_udf(spark, str(path)).validate(df.drop("a", "c"))  # the same error as the Arrow UDF's
    with pytest.raises(SchemaEnforcementError, match="'c'"):
        u("a", "b")  # the call itself names what the model lacks
    with pytest.raises(InvalidArgumentError, match="alias"):
        u(F.col("a") + 1, F.col("b"), F.col("c"))
    with pytest.raises(InvalidArgumentError):
        u("a", b="b")  # positional and keyword at once, as spark_udf
    with pytest.raises(InvalidArgumentError):
        spark_udf(spark, str(path))("a", b="b")


# ---- 3. runtime choice -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def unsupported_dirs(tmp_path_factory):
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import PolynomialFeatures

    X = numeric_frame(150, seed=12)
    y = (X.a > 0).astype(int)
    base = tmp_path_factory.mktemp("unsupported")
    knn = save_sklearn(KNeighborsClassifier(3).fit(X, y), base / "knn", X)
    poly = Pipeline([("poly", PolynomialFeatures(2)), ("lr", LogisticRegression())]).fit(X, y)
    return {"KNeighborsClassifier": knn, "PolynomialFeatures": save_sklearn(poly, base / "poly", X)}


def test_native_refuses_and_auto_falls_back_naming_why(spark, unsupported_dirs, caplog):
    X = numeric_frame(50, seed=13)
    df = frame_of(spark, X)
    for part, path in unsupported_dirs.items():
        with pytest.raises(NotSupportedError, match=part):
            spark_udf(spark, str(path), runtime="native")
        with pytest.raises(NotSupportedError, match=part):
            spark_models.spark_native(spark, str(path))
        caplog.clear()
        with caplog.at_level(logging.INFO, logger=LOGGER):
            u = spark_udf(spark, str(path), runtime="auto")
        assert u.runtime == "python" and not isinstance(u, NativeModelUDF)
        reasons = [r.getMessage() for r in caplog.records if r.name == LOGGER]
        assert any("Arrow UDF" in m and part in m for m in reasons), reasons
    with pytest.raises(NotSupportedError, match="'poly'"):  # the step's name in the pipeline too
        spark_udf(spark, str(unsupported_dirs["PolynomialFeatures"]), runtime="native")
    got = df.select("id", u().alias("p")).orderBy("id").toPandas()  # the fallback scores
    assert len(got) == 50


def test_auto_compiles_small_models_and_not_large_forests(spark, lr_dir, tmp_path, caplog):
    from sklearn.ensemble import RandomForestRegressor

    path, _ = lr_dir
    with caplog.at_level(logging.INFO, logger=LOGGER):
        assert spark_udf(spark, str(path), runtime="auto").runtime == "native"
    X = numeric_frame(400, seed=14)
    forest = RandomForestRegressor(30, max_leaf_nodes=64, random_state=0).fit(X, X.a * X.b + X.c)
    nodes = sum(int((t.tree_.children_left >= 0).sum()) for t in forest.estimators_)
    assert nodes > AUTO_TREE_NODES
    big = save_sklearn(forest, tmp_path / "big", X)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger=LOGGER):
        u = spark_udf(spark, str(big), runtime="auto")
    assert u.runtime == "python"
    assert any(str(nodes) in r.getMessage() and "Arrow UDF" in r.getMessage() for r in caplog.records), caplog.text
    assert spark_udf(spark, str(big), runtime="native").runtime == "native"  # asked for: compiled anyway


def test_invalid_runtime_and_params_with_native(spark, lr_dir):
    path, _ = lr_dir
    with pytest.raises(InvalidArgumentError, match="runtime"):
        spark_udf(spark, str(path), runtime="jvm")
    with pytest.raises(InvalidArgumentError, match="params"):
        spark_udf(spark, str(path), runtime="native", params={"x": 1})
    assert spark_udf(spark, str(path), runtime="python").runtime == "python"
    assert spark_udf(spark, str(path), runtime="auto", params={"x": 1}).runtime == "python"  # params need Python


# ---- 4/5. the plan is pure; explain; result types ----------------------------------------------

def test_plan_has_no_python_udf(spark, lr_dir):
    path, _ = lr_dir
    df = frame_of(spark, numeric_frame(50)).repartition(2)  # not folded into a local relation
    for runtime, python_nodes in (("native", False), ("python", True)):
        u = spark_udf(spark, str(path), runtime=runtime)
        plan = df.withColumn("p", u())._jdf.queryExecution().executedPlan().toString()
        assert any(n in plan for n in PYTHON_UDF_NODES) is python_nodes, plan


def test_explain_and_result_types(spark, lr_dir):
    path, model = lr_dir
    X = numeric_frame(60, seed=15)
    df = frame_of(spark, X)
    u = spark_native_of(spark, path)
    text = u.explain()
    assert "LogisticRegression" in text and "inputs ['a', 'b', 'c']" in text and "returns bigint" in text, text
    assert u.model_info["uri"] == str(path) and u.return_type.simpleString() == "bigint"
    as_double = spark_models.spark_native(spark, str(path), result_type="double")
    as_string = spark_udf(spark, str(path), result_type="string", runtime="native")
    assert as_double.return_type.simpleString() == "double" and "returns double" in as_double.explain()
    out = df.select("id", as_double().alias("d"), as_string().alias("s")).orderBy("id").toPandas()
    assert out.d.tolist() == [float(v) for v in model.predict(X)]
    assert out.s.tolist() == [str(v) for v in model.predict(X)]

