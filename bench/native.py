"""Benchmark: models compiled to native Spark expressions vs the Arrow UDFs and Spark ML itself.

Run:  python bench/native.py [--rows 1000000] [--repeats 3] [--cases lr,rf_small,rf,gbt,xgb,spark_lr,spark_rf,spark_gbt]

Workload: local[2], N rows x 8 double columns (cached); every job writes to Spark's ``noop`` sink so
each prediction is computed. Models are trained on 20,000 rows:

- ``lr``: scikit-learn LogisticRegression (binary; ``predict``)
- ``rf_small``: RandomForestRegressor 10 trees, depth 4; ``rf``: 50 trees, depth 8
- ``gbt``: GradientBoostingRegressor 200 trees, depth 6; ``xgb``: xgboost 200 rounds, depth 6
- ``spark_lr`` / ``spark_rf`` (50 x 8) / ``spark_gbt`` (200 x 6): Spark ML pipelines
  (VectorAssembler + model), also scored by Spark ML's own ``transform``.

Methods: ``native`` (spark_native), ``ours`` (spark_udf, Arrow), ``hand`` (a pandas UDF calling
``model.predict`` on the captured model), ``mlflow`` (mlflow.pyfunc.spark_udf, env_manager local;
scikit-learn and xgboost models), ``transform`` (Spark ML). "first" is the first job of a method in
this process (UDF creation and compilation included); "warm" the best of the next ``--repeats``
jobs on the same scored DataFrame.
Ratios are against ``ours`` measured in the same run. Times are never asserted.
"""

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

FEATURES = [f"x{i}" for i in range(8)]
CASES = ("lr", "rf_small", "rf", "gbt", "xgb", "spark_lr", "spark_rf", "spark_gbt")


def _training_data():
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.random((20_000, len(FEATURES))) * 2 - 1, columns=FEATURES)
    y = X.x0 + X.x1 * X.x2 - X.x3 + np.sin(3 * X.x4) + rng.normal(0, 0.1, len(X))
    return X, y


def _sklearn_model(case: str):
    from sklearn.ensemble import GradientBoostingRegressor, RandomForestRegressor
    from sklearn.linear_model import LogisticRegression

    X, y = _training_data()
    if case == "lr":
        return LogisticRegression().fit(X, (y > 0).astype(int)), X
    if case == "rf_small":
        return RandomForestRegressor(10, max_depth=4, random_state=0, n_jobs=2).fit(X, y), X
    if case == "rf":
        return RandomForestRegressor(50, max_depth=8, random_state=0, n_jobs=2).fit(X, y), X
    if case == "gbt":
        return GradientBoostingRegressor(n_estimators=200, max_depth=6, random_state=0).fit(X, y), X
    import xgboost as xgb

    return xgb.XGBRegressor(n_estimators=200, max_depth=6, n_jobs=2).fit(X, y), X


def _save(case: str, root: Path, spark) -> dict:
    """Our model directory, MLflow's (when importable) and the objects the hand UDF / transform use."""
    from spark_models.models import infer_signature

    if case.startswith("spark_"):
        return _save_spark(case, root, spark)
    model, X = _sklearn_model(case)
    flavor = "xgboost" if case == "xgb" else "sklearn"
    import importlib

    sample = X.head(50)
    signature = infer_signature(sample, model.predict(sample))
    ours = str(root / f"{case}-ours")
    importlib.import_module(f"spark_models.{flavor}").save_model(model, ours, signature=signature)
    out = {"ours": ours, "model": model}
    try:
        import mlflow.models

        out["mlflow"] = str(root / f"{case}-mlflow")
        importlib.import_module(f"mlflow.{flavor}").save_model(
            model, out["mlflow"], signature=mlflow.models.infer_signature(sample, model.predict(sample)),
            **({"serialization_format": "cloudpickle"} if flavor == "sklearn" else {}))
    except ImportError:
        pass
    return out


def _save_spark(case: str, root: Path, spark) -> dict:
    from pyspark.ml import Pipeline
    from pyspark.ml.classification import LogisticRegression, RandomForestClassifier
    from pyspark.ml.feature import VectorAssembler
    from pyspark.ml.regression import GBTRegressor

    import spark_models.spark
    from spark_models.models import infer_signature

    X, y = _training_data()
    train = spark.createDataFrame(X.assign(y=y, label=(y > 0).astype(float)))
    model = {"spark_lr": LogisticRegression(maxIter=50), "spark_rf": RandomForestClassifier(numTrees=50, maxDepth=8, seed=0),
             "spark_gbt": GBTRegressor(labelCol="y", maxIter=200, maxDepth=6, seed=0, checkpointInterval=10)}[case]
    spark.sparkContext.setCheckpointDir(str(root / "checkpoints"))  # 200 rounds overflow the stack without
    pipeline = Pipeline(stages=[VectorAssembler(inputCols=FEATURES, outputCol="features"), model]).fit(train)
    path = str(root / f"{case}-ours")
    spark_models.spark.save_model(pipeline, path, signature=infer_signature(X.head(5), pd.Series([0.0] * 5)),
                                  sample_input=train.limit(5))
    return {"ours": path, "pipeline": pipeline}


def _hand_udf(model):
    from typing import Iterator, Tuple

    from pyspark.sql.functions import pandas_udf

    @pandas_udf("double")
    def predict(batches: Iterator[Tuple[pd.Series, ...]]) -> Iterator[pd.Series]:
        for columns in batches:
            frame = pd.DataFrame(dict(zip(FEATURES, columns)))
            yield pd.Series(model.predict(frame), dtype="float64")

    return lambda df: df.select(predict(*FEATURES).alias("p"))


def _methods(case: str, saved: dict, spark) -> dict:
    """Method name → function building the scored DataFrame (UDF creation included)."""
    import spark_models
    from udf import spark_udf

    def native(df):
        return df.select(spark_models.spark_native(spark, saved["ours"], "double")().alias("p"))

    def ours(df):
        return df.select(spark_udf(spark, saved["ours"], "double")().alias("p"))

    methods = {"native": native, "ours": ours}
    if "model" in saved:
        methods["hand"] = _hand_udf(saved["model"])
    if "mlflow" in saved:
        import mlflow.pyfunc

        methods["mlflow"] = lambda df: df.select(
            mlflow.pyfunc.spark_udf(spark, saved["mlflow"], result_type="double", env_manager="local")(*FEATURES).alias("p"))
    if "pipeline" in saved:
        methods["transform"] = lambda df: saved["pipeline"].transform(df).select("prediction")
    return methods


def _time(job) -> tuple[float, object]:
    """Seconds to build (when ``job`` is callable) and write the scored DataFrame; the DataFrame."""
    start = time.perf_counter()
    scored = job() if callable(job) else job
    scored.write.format("noop").mode("overwrite").save()
    return time.perf_counter() - start, scored


def run(cases, rows: int, repeats: int) -> None:
    from bench.sessions import bench_session
    from pyspark.sql import functions as F

    spark = bench_session("local[2]")
    spark.sparkContext.setLogLevel("ERROR")
    df = spark.range(rows).select(*[(F.rand(seed=i) * 2 - 1).alias(c) for i, c in enumerate(FEATURES)]).cache()
    df.count()
    print(f"# {platform.node()} {platform.processor() or platform.machine()} cores={os.cpu_count()} "
          f"python={platform.python_version()} rows={rows}")
    with tempfile.TemporaryDirectory() as root:
        for case in cases:
            saved = _save(case, Path(root), spark)
            methods = _methods(case, saved, spark)
            first, built = {}, {}
            for name, m in methods.items():
                first[name], built[name] = _time(lambda m=m: m(df))
            warm = {name: float("inf") for name in methods}
            for _ in range(repeats):
                for name in methods:  # interleaved, so load changes hit every method
                    warm[name] = min(warm[name], _time(built[name])[0])
            _report(case, first, warm)


def _report(case: str, first: dict, warm: dict) -> None:
    base_w, base_f = warm["ours"], first["ours"]
    for name in first:
        print(f"{case:10s} {name:9s} warm {warm[name]:7.2f} s ({base_w / warm[name]:5.2f}x ours)   "
              f"first {first[name]:7.2f} s ({base_f / first[name]:5.2f}x ours)")
    sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cases", default=",".join(CASES))
    args = parser.parse_args()
    run([c for c in args.cases.split(",") if c], args.rows, args.repeats)


if __name__ == "__main__":
    main()
