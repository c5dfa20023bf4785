"""Spark ML training data, fitted pipelines (fixtures) and their predictions, shared by the
spark-flavor tests. Registered as a pytest plugin by the root ``conftest.py``."""

import numpy as np
import pandas as pd
import pytest
from pyspark.ml import Pipeline
from pyspark.ml.classification import LogisticRegression
from pyspark.ml.feature import OneHotEncoder, StringIndexer, VectorAssembler
from pyspark.ml.regression import RandomForestRegressor


def training_data(n=120, seed=0):
    rng = np.random.default_rng(seed)
    colors = rng.choice(["red", "green", "blue"], n).astype(object)
    colors[::17] = None
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    label = ((x1 + (colors == "red") - 0.5 * x2) > 0.3).astype(float)
    return pd.DataFrame({"x1": x1, "x2": x2, "color": colors, "label": label})


def scoring_frame():
    """30 rows to score, one with an unseen category and some with a missing one."""
    frame = training_data(30, seed=7).drop(columns="label")
    frame.loc[3, "color"] = "purple"
    return frame


def spark_predictions(spark, model, frame, column="prediction"):
    """``column`` of Spark's own ``model.transform`` (vectors as lists)."""
    rows = model.transform(spark.createDataFrame(frame)).select(column).toPandas()[column]
    return rows.map(lambda v: v.toArray().tolist() if hasattr(v, "toArray") else v)


@pytest.fixture(scope="module")
def train(spark):
    return spark.createDataFrame(training_data())


@pytest.fixture(scope="module")
def lr_pipeline(train):
    stages = [
        StringIndexer(inputCol="color", outputCol="color_idx", handleInvalid="keep"),
        OneHotEncoder(inputCols=["color_idx"], outputCols=["color_vec"], handleInvalid="keep"),
        VectorAssembler(inputCols=["x1", "x2", "color_vec"], outputCol="features"),
        LogisticRegression(maxIter=20),
    ]
    return Pipeline(stages=stages).fit(train)


@pytest.fixture(scope="module")
def rf_pipeline(train):
    stages = [
        VectorAssembler(inputCols=["x1", "x2"], outputCol="features"),
        RandomForestRegressor(labelCol="x1", numTrees=8, maxDepth=4, seed=1),
    ]
    return Pipeline(stages=stages).fit(train)
