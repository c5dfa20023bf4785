"""Programs: what a loaded model compiles to (inputs, parts, node counts) and the errors on the way."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pyspark.errors.exceptions.captured import SparkRuntimeException
from pyspark.sql import functions as F

from spark_models.exceptions import NotSupportedError
from spark_models.native.programs import booster_program, sklearn_program


def _frame(rng, n=60):
    return pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n), "c": rng.normal(size=n)})


def test_a_linear_model_refuses_nan_and_null_as_scikit_learn_does(spark):
    from sklearn.linear_model import LogisticRegression

    X = _frame(np.random.default_rng(0))
    program = sklearn_program(LogisticRegression().fit(X, X.a > 0), list(X.columns))
    assert program.inputs == ["a", "b", "c"] and program.parts == ["LogisticRegression"] and program.tree_nodes == 0
    df = spark.createDataFrame([(1.0, 2.0, 3.0), (1.0, None, 3.0), (1.0, 2.0, float("nan"))], "a double, b double, c double")
    column = program.column({n: F.col(n) for n in program.inputs})
    assert [r.p for r in df.limit(1).select(column.alias("p")).collect()] == [True]
    for bad, name in ((1, "b"), (2, "c")):
        row = df.collect()[bad]
        one = spark.createDataFrame([row], df.schema)
        with pytest.raises(SparkRuntimeException, match=f"LogisticRegression input contains NaN or null in column '{name}'"):
            one.select(column.alias("p")).collect()


def test_unsupported_parts_are_named_before_any_column_is_built():
    from sklearn.linear_model import LinearRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import PolynomialFeatures, StandardScaler

    X = _frame(np.random.default_rng(1))
    y = X.a > 0
    with pytest.raises(NotSupportedError, match="KNeighborsClassifier"):
        sklearn_program(KNeighborsClassifier(3).fit(X, y), None)
    with pytest.raises(NotSupportedError, match="PolynomialFeatures"):
        sklearn_program(make_pipeline(PolynomialFeatures(), StandardScaler(), LinearRegression()).fit(X, X.a), None)
    with pytest.raises(NotSupportedError, match="predict_fn='predict_log_proba'"):
        sklearn_program(KNeighborsClassifier(3).fit(X, y), None, output="predict_log_proba")


def test_inputs_come_from_feature_names_then_the_signature():
    from sklearn.tree import DecisionTreeRegressor

    X = _frame(np.random.default_rng(2))
    named = sklearn_program(DecisionTreeRegressor(max_depth=2).fit(X[["c", "a", "b"]], X.a), ["a", "b", "c"])
    assert named.inputs == ["c", "a", "b"]  # the model's own order: columns are bound by name
    unnamed = sklearn_program(DecisionTreeRegressor(max_depth=2).fit(X.to_numpy(), X.a), ["x", "y", "z"])
    assert unnamed.inputs == ["x", "y", "z"] and unnamed.tree_nodes == 3
    with pytest.raises(NotSupportedError, match="no feature names and the model has no signature"):
        sklearn_program(DecisionTreeRegressor(max_depth=2).fit(X.to_numpy(), X.a), None)
    with pytest.raises(NotSupportedError, match="fitted on 3 features but the signature has 2"):
        sklearn_program(DecisionTreeRegressor(max_depth=2).fit(X.to_numpy(), X.a), ["x", "y"])


def test_booster_inputs_use_its_feature_names():
    import xgboost as xgb

    X = _frame(np.random.default_rng(3))
    named = booster_program(xgb.XGBRegressor(n_estimators=2, max_depth=2).fit(X[["b", "c", "a"]], X.a), ["a", "b", "c"])
    assert named.inputs == ["b", "c", "a"]
    positional = booster_program(xgb.XGBRegressor(n_estimators=2, max_depth=2).fit(X.to_numpy(), X.a), ["p", "q", "r"])
    assert positional.inputs == ["p", "q", "r"]
    with pytest.raises(NotSupportedError, match="reads 3 features but 2 input names"):
        booster_program(xgb.XGBRegressor(n_estimators=2, max_depth=2).fit(X.to_numpy(), X.a), ["p", "q"])
