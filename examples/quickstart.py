"""Quickstart: save a scikit-learn model, then score a small dataset with it through local Spark.

Run:  python examples/quickstart.py
"""

from __future__ import annotations

import os
import sys
import tempfile

from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier

import spark_models.pyfunc
import spark_models.sklearn
from spark_models.models import infer_signature

os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)


def main() -> None:
    from pyspark.sql import SparkSession

    iris = load_iris(as_frame=True)
    X = iris.data.rename(columns=lambda c: c.replace(" (cm)", "").replace(" ", "_"))
    model = RandomForestClassifier(n_estimators=20, max_depth=4, random_state=0).fit(X, iris.target)
    model_dir = os.path.join(tempfile.mkdtemp(), "iris_rf")
    spark_models.sklearn.save_model(model, model_dir, signature=infer_signature(X, model.predict(X)), input_example=X.head(3))

    spark = SparkSession.builder.master("local[2]").config("spark.ui.enabled", "false").getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    df = spark.createDataFrame(X.sample(10, random_state=1))

    predict = spark_models.pyfunc.spark_udf(spark, model_dir)  # columns bound by name from the signature
    scored = df.withColumn("prediction", predict())
    scored.show(truncate=False)
    spark.stop()


if __name__ == "__main__":
    main()
