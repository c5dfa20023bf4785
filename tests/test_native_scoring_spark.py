"""spark_native on saved Spark ML pipelines (equal to the pipeline's own ``transform``), on a
Spark Connect session (the compiled Column is plain Spark: the same values, no Python UDF), and
the model options and input errors that the expression must honour as the Python path does."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pyspark.ml import Pipeline
from pyspark.ml.classification import GBTClassifier, LogisticRegression
from pyspark.ml.feature import StringIndexer, VectorAssembler
from pyspark.ml.regression import RandomForestRegressor

import spark_models
import spark_models.spark
from spark_models.exceptions import NotSupportedError
from spark_models.models import infer_signature
from spark_models.native.scoring import NativeModelUDF
from tests.test_native_scoring import (PYTHON_UDF_NODES, RTOL, frame_of, numeric_frame, same, save_sklearn,
                                       spark_native_of)
from udf import spark_udf

pytestmark = pytest.mark.spark
ROOT = Path(__file__).resolve().parents[1]


def _frame(n: int, seed: int, *, unseen: bool = False) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"x1": rng.normal(size=n), "x2": rng.normal(size=n) * 2.0,
                      "color": rng.choice(["red", "green", "blue"], n).astype(object)})
    if unseen:
        X.loc[[1, 4, 7], "color"] = "purple"
        X.loc[[2, 5], "color"] = None
    return X


def _spark_frame(spark, X: pd.DataFrame):
    return spark.createDataFrame([(i, *r) for i, r in enumerate(X.itertuples(index=False))],
                                 "id long, x1 double, x2 double, color string")


def _save(spark, pipeline, train_pdf, path):
    predictions = pipeline.transform(_spark_frame(spark, train_pdf)).select("prediction").toPandas()
    spark_models.spark.save_model(pipeline, path, signature=infer_signature(train_pdf, predictions["prediction"]))
    return path


def _native_vs_transform(spark, pipeline, path, X, *, python: bool = False):
    """Rows of (native, transform's prediction[, Arrow UDF]) in id order, from one collect."""
    u = spark_udf(spark, str(path), runtime="native")
    assert isinstance(u, NativeModelUDF) and u.return_type.simpleString() == "double"
    df = _spark_frame(spark, X).repartition(2)
    columns = [u().alias("n")] + ([spark_udf(spark, str(path))().alias("p")] if python else [])
    out = pipeline.transform(df.select("id", "x1", "x2", "color", *columns)).orderBy("id").collect()
    assert [r.id for r in out] == list(range(len(X)))
    return out, u


@pytest.mark.slow
def test_string_indexer_assembler_logistic_regression(spark, tmp_path):
    stages = [StringIndexer(inputCol="color", outputCol="ci", handleInvalid="keep"),
              VectorAssembler(inputCols=["x1", "x2", "ci"], outputCol="features"),
              LogisticRegression(maxIter=30)]
    train = _frame(300, 0)
    label = ((train.x1 + (train.color == "red") - 0.5 * train.x2) > 0.3).astype(float)
    pipeline = Pipeline(stages=stages).fit(spark.createDataFrame(train.assign(label=label)))
    X = _frame(120, 1, unseen=True)
    out, u = _native_vs_transform(spark, pipeline, _save(spark, pipeline, train, tmp_path / "m"), X, python=True)
    assert [r.n for r in out] == [r.prediction for r in out]
    assert [r.p for r in out] == [r.prediction for r in out]
    assert len({r.prediction for r in out}) == 2
    text = u.explain()
    for part in ("StringIndexerModel", "VectorAssembler", "LogisticRegressionModel", "0 tree split nodes"):
        assert part in text, text


@pytest.mark.slow
def test_assembler_gbt_classifier_and_random_forest_regressor(spark, tmp_path):
    train = _frame(300, 2)
    train_df = spark.createDataFrame(train.assign(label=(train.x1 * train.x2 > 0).astype(float)))
    assembler = VectorAssembler(inputCols=["x1", "x2"], outputCol="features")
    gbt = Pipeline(stages=[assembler, GBTClassifier(maxIter=6, maxDepth=3, seed=1)]).fit(train_df)
    rf = Pipeline(stages=[assembler, RandomForestRegressor(labelCol="x1", numTrees=5, maxDepth=4, seed=1)]).fit(train_df)
    X = _frame(150, 3)
    for i, tree in enumerate(gbt.stages[-1].trees[:3] + rf.stages[-1].trees[:3]):  # rows exactly on root splits
        split = tree._call_java("rootNode").split()
        X.loc[i, ["x1", "x2"][split.featureIndex()]] = float(split.threshold())
    for name, pipeline, exact in (("gbt", gbt, True), ("rf", rf, False)):
        out, u = _native_vs_transform(spark, pipeline, _save(spark, pipeline, train, tmp_path / name), X)
        got, want = np.array([r.n for r in out]), np.array([r.prediction for r in out])
        if exact:  # labels
            np.testing.assert_array_equal(got, want)
        else:
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=0)
        model = pipeline.stages[-1]
        nodes = sum(t.numNodes - (t.numNodes + 1) // 2 for t in model.trees)  # binary trees: splits = (n - 1) / 2
        assert f"{nodes} tree split nodes" in u.explain(), u.explain()
        assert type(model).__name__ in u.explain()


CONNECT = '''
import json, os, sys, tempfile, logging
from pathlib import Path
os.environ["PYSPARK_PYTHON"] = sys.executable
sys.path.insert(0, {root!r})
import numpy as np, pandas as pd
from pyspark.sql import SparkSession
from pyspark.sql.connect.session import SparkSession as ConnectSession
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
import xgboost as xgb
import spark_models, spark_models.sklearn, spark_models.xgboost, spark_models.spark
from spark_models.exceptions import NotSupportedError
from spark_models.models import infer_signature
from udf import spark_udf

base = Path(tempfile.mkdtemp())
rng = np.random.default_rng(0)
X = pd.DataFrame({{"a": rng.normal(size=200), "b": rng.normal(size=200)}})
X.iloc[::9, 0] = np.nan
y = (np.nan_to_num(X.a) > X.b).astype(int)
sk = Pipeline([("scale", StandardScaler()), ("impute", SimpleImputer()), ("lr", LogisticRegression())]).fit(X, y)
spark_models.sklearn.save_model(sk, base / "sk", signature=infer_signature(X, sk.predict(X)))
booster = xgb.XGBRegressor(n_estimators=8, max_depth=3).fit(X, np.nan_to_num(X.a) + X.b)
spark_models.xgboost.save_model(booster, base / "xgb", signature=infer_signature(X, booster.predict(X)))
server = (SparkSession.builder.master("local[1]").config("spark.ui.enabled", "false")
          .config("spark.plugins", "org.apache.spark.sql.connect.SparkConnectPlugin")
          .config("spark.connect.grpc.binding.port", "0").getOrCreate())
from pyspark.ml import Pipeline as SparkPipeline
from pyspark.ml.feature import VectorAssembler
from pyspark.ml.regression import LinearRegression
train = server.createDataFrame(X.fillna(0.0).assign(label=y.astype(float)))
sp = SparkPipeline(stages=[VectorAssembler(inputCols=["a", "b"], outputCol="features"), LinearRegression()]).fit(train)
spark_models.spark.save_model(sp, base / "sp", signature=infer_signature(X, y.astype(float)), mleap=False)
port = getattr(getattr(server._jvm, "org.apache.spark.sql.connect.service.SparkConnectService$"), "MODULE$").localPort()
os.environ["SPARK_CONNECT_MODE_ENABLED"] = "1"
spark = ConnectSession.builder.remote(f"sc://localhost:{{port}}").getOrCreate()
assert type(spark).__module__.startswith("pyspark.sql.connect")
rows = [(i, None if (a != a and i % 2) else float(a), float(b)) for i, (a, b) in enumerate(X.itertuples(index=False))]
df = spark.createDataFrame(rows, "id long, a double, b double").repartition(2)
u = spark_models.spark_native(spark, str(base / "sk"))
v = spark_udf(spark, str(base / "xgb"), runtime="native")
scored = df.select("id", u().alias("y"), u("b", "a").alias("swapped"), v().alias("x"))
plan = scored._explain_string(extended=False) if hasattr(scored, "_explain_string") else ""
out = scored.orderBy("id").toPandas()
try:
    spark_models.spark_native(spark, str(base / "sp"))
    spark_error = ""
except NotSupportedError as e:
    spark_error = str(e)
print(json.dumps({{
    "ids": out.id.tolist() == list(range(len(X))),
    "labels": out.y.tolist() == sk.predict(X).tolist(),
    "swapped": out.swapped.tolist() == out.y.tolist(),
    "xgb_max_ulps": int(np.abs(out.x.to_numpy(np.float32).view(np.int32).astype(np.int64)
                               - booster.predict(X).view(np.int32).astype(np.int64)).max()),
    "plan": plan, "runtime": v.runtime, "spark_error": spark_error}}))
spark.stop()
server.stop()
'''


@pytest.mark.slow
def test_native_columns_run_on_spark_connect():
    """A Connect client gets the same values from the compiled Column, with no Python UDF in the
    plan; a Spark ML pipeline needs a classic session to be loaded and compiled."""
    pytest.importorskip("grpc")
    pytest.importorskip("xgboost")
    from tests.isolation import run_json

    out = run_json(CONNECT.format(root=str(ROOT)))
    assert out["ids"] and out["labels"] and out["swapped"], out
    assert out["xgb_max_ulps"] <= 1 and out["runtime"] == "native"
    assert out["plan"] and not any(n in out["plan"] for n in PYTHON_UDF_NODES), out["plan"]
    assert "classic SparkSession" in out["spark_error"]


def test_spark_pipeline_with_an_unsupported_stage_names_it(spark, tmp_path, caplog):
    from pyspark.ml.feature import PCA

    train = _frame(80, 4)
    stages = [VectorAssembler(inputCols=["x1", "x2"], outputCol="v"), PCA(k=1, inputCol="v", outputCol="features"),
              LogisticRegression(maxIter=5)]
    train_df = spark.createDataFrame(train.assign(label=(train.x1 > 0).astype(float)))
    pipeline = Pipeline(stages=stages).fit(train_df)
    path = _save(spark, pipeline, train, tmp_path / "pca")
    with pytest.raises(NotSupportedError, match="PCAModel"):
        spark_udf(spark, str(path), runtime="native")
    assert spark_udf(spark, str(path), runtime="auto").runtime == "python"


def test_booster_classifiers_honour_predict_fn(spark, tmp_path):
    """model_config={"predict_fn": "predict_proba"} gives probabilities on both runtimes (not labels)."""
    xgb = pytest.importorskip("xgboost")
    lgb = pytest.importorskip("lightgbm")
    import spark_models.lightgbm
    import spark_models.xgboost

    train = numeric_frame(200, seed=17)
    y = (train.a > train.c).astype(int) + (train.b > 2)
    X = numeric_frame(100, seed=18)
    df = frame_of(spark, X)
    config = {"predict_fn": "predict_proba"}
    for module, model, rtol in ((spark_models.xgboost, xgb.XGBClassifier(n_estimators=6, max_depth=3), 1e-6),
                                (spark_models.lightgbm, lgb.LGBMClassifier(n_estimators=6, verbose=-1), RTOL)):
        model.fit(train, y)
        path = tmp_path / type(model).__name__
        module.save_model(model, path, signature=infer_signature(train, model.predict(train)))
        native = spark_udf(spark, str(path), "array<double>", runtime="native", model_config=config)
        python = spark_udf(spark, str(path), "array<double>", model_config=config)
        out = df.select("id", native().alias("n"), python().alias("p")).orderBy("id").collect()
        want = model.predict_proba(X)
        same(np.array([r.n for r in out]), want, rtol=rtol)
        same(np.array([r.p for r in out]), want, rtol=rtol)
        with pytest.raises(NotSupportedError, match="predict_fn='apply'"):
            spark_udf(spark, str(path), runtime="native", model_config={"predict_fn": "apply"})

def test_unknown_category_fails_the_query_naming_column_and_value(spark, tmp_path):
    """Where scikit-learn raises at predict time (handle_unknown='error'), the query fails."""
    from pyspark.errors.exceptions.captured import SparkRuntimeException
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    train = numeric_frame(60, seed=19)[["a"]].assign(color=["red", "blue", "green"] * 20)
    pre = ColumnTransformer([("onehot", OneHotEncoder(), ["color"])], remainder="passthrough")
    model = Pipeline([("pre", pre), ("lr", LogisticRegression())]).fit(train, train.color == "red")
    u = spark_native_of(spark, save_sklearn(model, tmp_path / "m", train))
    X = train.head(4).copy()
    good = frame_of(spark, X).select("id", u().alias("y")).orderBy("id").toPandas()
    same(good.y.to_numpy(), model.predict(X))
    X.loc[2, "color"] = "purple"
    with pytest.raises(SparkRuntimeException, match="(?s)color.*purple"):
        frame_of(spark, X).select(u()).collect()
