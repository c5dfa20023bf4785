"""compile_stage: Spark ML feature stages as Column expressions, compared element-wise with the
real ``transform`` on the same DataFrame (NaN, nulls, bin edges, unseen labels, errors)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pyspark.errors.exceptions.captured import SparkRuntimeException
from pyspark.ml import Pipeline
from pyspark.ml.classification import LogisticRegression
from pyspark.ml.feature import (Binarizer, Bucketizer, Imputer, IndexToString, MaxAbsScaler,
                                MinMaxScaler, OneHotEncoder, SQLTransformer, StandardScaler,
                                StringIndexer, VectorAssembler)
from pyspark.ml.functions import vector_to_array
from pyspark.sql import functions as F

from spark_models.exceptions import NotSupportedError
from spark_models.native.spark_stages import compile_stage, is_transformer_supported

NAN = float("nan")
NUM = ["x0", "x1", "x2"]


def _rows(seed: int, n: int = 200, *, dirty: bool = True):
    """(id, x0, x1, x2, k, f, s) rows: doubles of mixed magnitudes (NaN/null when dirty), a
    constant column x2, an int k, a float f and a string s with nulls and unseen labels."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        xs = [float(rng.normal() * 10.0 ** rng.uniform(-3, 3)), float(rng.integers(-3, 4)), 2.5]
        if dirty and rng.random() < 0.15:
            xs[int(rng.integers(2))] = None if rng.random() < 0.5 else NAN
        k = None if dirty and rng.random() < 0.1 else int(rng.integers(0, 10))
        f = None if dirty and rng.random() < 0.1 else float(np.float32(rng.normal()))
        labels = ["a", "b", "c", "d"] + (["zz", None] if dirty else [])
        rows.append((i, *xs, k, f, str(rng.choice(labels)) if rng.random() > 0.05 or not dirty
                     else None))
    return [tuple(None if v == "None" else v for v in r) for r in rows]


SCHEMA = "id long, x0 double, x1 double, x2 double, k int, f float, s string"


def _frame(spark, seed, *, dirty=True, extra=()):
    return spark.createDataFrame(_rows(seed, dirty=dirty) + list(extra), SCHEMA)


def _env(df):
    return {c: F.col(c) for c in df.columns}


def _compare(model, df, outputs: list[str]):
    """Run the real ``transform`` and the compiled columns in one job; compare exactly."""
    env = _env(df)
    compile_stage(model, env, where="test")
    real = model.transform(df)
    select, pairs = ["id"], []
    for name in outputs:
        mine = env[name]
        if isinstance(mine, list):
            arr = F.when(F.col(name).isNotNull(), vector_to_array(F.col(name)))
            for k, c in enumerate(mine):
                select += [c.alias(f"m_{name}_{k}"), arr[k].alias(f"r_{name}_{k}")]
                pairs.append((f"m_{name}_{k}", f"r_{name}_{k}"))
        else:
            select += [mine.alias(f"m_{name}"), F.col(name).alias(f"r_{name}")]
            pairs.append((f"m_{name}", f"r_{name}"))
    rows = real.select(*select).orderBy("id").collect()
    assert rows
    for r in rows:
        for m, t in pairs:
            a, b = r[m], r[t]
            same = a == b or (isinstance(a, float) and isinstance(b, float)
                              and math.isnan(a) and math.isnan(b))
            assert same, f"row {r['id']} {m}: compiled {a!r} != Spark {b!r}"
    return rows


@pytest.mark.parametrize("cls, kwargs", [
    ("StandardScaler", dict(withMean=True, withStd=True)),
    ("StandardScaler", dict(withMean=True, withStd=False)),
    ("StandardScaler", dict(withMean=False, withStd=True)),
    ("MinMaxScaler", dict(min=-1.0, max=3.0)), ("MinMaxScaler", {}), ("MaxAbsScaler", {})])
def test_assembler_then_scalers(spark, cls, kwargs):
    scaler = {"StandardScaler": StandardScaler, "MinMaxScaler": MinMaxScaler,
              "MaxAbsScaler": MaxAbsScaler}[cls](inputCol="v", outputCol="out", **kwargs)
    train = _frame(spark, 0, dirty=False)
    model = Pipeline(stages=[VectorAssembler(inputCols=NUM + ["k"], outputCol="v",
                                             handleInvalid="keep"), scaler]).fit(train)
    rows = _compare(model, _frame(spark, 1), ["v", "out"])
    assert any(math.isnan(r["m_out_0"]) for r in rows)


def test_vector_input_read_from_the_frame_including_a_null_vector(spark):
    df = VectorAssembler(inputCols=NUM, outputCol="v0", handleInvalid="keep").transform(
        _frame(spark, 9, dirty=False))
    df = df.withColumn("v", F.when(F.col("id") % 7 == 0, None).otherwise(F.col("v0")))
    model = StandardScaler(inputCol="v", outputCol="out", withMean=True).fit(
        df.where("v is not null"))
    _compare(model, df.where("v is not null").drop("v0"), ["out"])  # "v" read from the frame
    env = _env(df)  # Spark's own transform fails on a null vector; ours gives nulls
    compile_stage(model, env)
    nulls = df.where("v is null").select(*env["out"]).collect()
    assert nulls and all(v is None for r in nulls for v in r)


@pytest.mark.parametrize("strategy", ["mean", "median", "mode"])
def test_imputer_multi_and_single_column(spark, strategy):
    train = _frame(spark, 2)
    model = Imputer(inputCols=["x0", "x1", "k", "f"], outputCols=["o0", "o1", "ok", "of"],
                    strategy=strategy).fit(train)
    _compare(model, _frame(spark, 3), ["o0", "o1", "ok", "of"])
    single = Imputer(inputCol="x1", outputCol="o", missingValue=1.0, strategy=strategy)
    _compare(single.fit(train), _frame(spark, 4), ["o"])


def test_string_indexer_and_one_hot(spark):
    train = _frame(spark, 5, dirty=False)
    for order in ("frequencyDesc", "alphabetAsc"):
        indexer = StringIndexer(inputCols=["s", "x1"], outputCols=["si", "xi"],
                                handleInvalid="keep", stringOrderType=order).fit(train)
        _compare(indexer, _frame(spark, 6), ["si", "xi"])
    indexed = indexer.transform(train)
    for drop_last in (True, False):
        for mode in ("keep", "error"):
            ohe = OneHotEncoder(inputCols=["si", "xi"], outputCols=["a", "b"],
                                dropLast=drop_last, handleInvalid=mode).fit(indexed)
            _compare(ohe, indexer.transform(_frame(spark, 7, dirty=False)), ["a", "b"])
    ohe = OneHotEncoder(inputCol="xi", outputCol="o", handleInvalid="keep").fit(indexed)
    odd = spark.createDataFrame([(i, v) for i, v in enumerate(
        [0.0, 1.5, 2.9, -1.0, NAN, None, 6.0, 7.0, 100.0, -0.0])], "id long, xi double")
    _compare(ohe, odd, ["o"])


def test_bucketizer_edges_nan_and_negative_zero(spark):
    splits = [-math.inf, -1.0, 0.0, 0.5, 3.0, math.inf]
    values = [-math.inf, -1.0, -0.0, 0.0, 0.5, 0.49999999999999994, 3.0, math.inf, NAN, None,
              1e300, -1e-300]
    df = spark.createDataFrame([(i, v, v) for i, v in enumerate(values)],
                               "id long, x0 double, x1 double")
    model = Bucketizer(splitsArray=[splits, [-0.0, 1.0, 2.0]], inputCols=["x0", "x1"],
                       outputCols=["b0", "b1"], handleInvalid="keep")
    inside = df.where("id in (2, 3, 8, 9) or x1 between 0 and 2")  # in bounds of [-0.0, 2]
    _compare(model, inside, ["b0", "b1"])
    closed = Bucketizer(splits=[0.0, 1.0, 2.0], inputCol="x0", outputCol="b")
    _compare(closed, df.where("x0 between 0 and 2 and id != 2"), ["b"])
    env = _env(df)
    compile_stage(closed, env)  # -0.0 sorts below the first split 0.0: Spark raises, as we do
    assert "column 'x0': -0.0" in _fails(df.where("id = 2"), [env["b"]])


def test_binarizer_scalar_and_vector(spark):
    values = [0.5, 0.5000000000000001, 0.49999999999999994, NAN, None, -math.inf]
    df = spark.createDataFrame([(i, v) for i, v in enumerate(values)], "id long, x0 double")
    env_df = VectorAssembler(inputCols=["x0"], outputCol="v", handleInvalid="keep").transform(df)
    _compare(Binarizer(threshold=0.5, inputCol="x0", outputCol="b"), df, ["b"])
    env = _env(env_df)
    env["v"] = [F.coalesce(F.col("x0"), F.lit(NAN))]
    model = Binarizer(threshold=0.5, inputCol="v", outputCol="bv")
    compile_stage(model, env)
    got = model.transform(env_df).select("id", env["bv"][0].alias("m"),
                                         vector_to_array("bv")[0].alias("r")).collect()
    assert all(r["m"] == r["r"] for r in got) and len(got) == len(values)
    multi = Binarizer(thresholds=[0.5, 0.0], inputCols=["x0", "x0"], outputCols=["p", "q"])
    _compare(multi, df, ["p", "q"])


def test_index_to_string(spark):
    df = spark.createDataFrame([(i, v) for i, v in enumerate([0.0, 1.7, 3.0, -0.5, 2.0])],
                               "id long, x0 double")
    _compare(IndexToString(inputCol="x0", outputCol="l", labels=["p", "q", "r", "s"]), df, ["l"])


def _fails(df, columns: list) -> str:
    with pytest.raises(SparkRuntimeException) as info:
        df.select(*columns).collect()
    return str(info.value)


def test_error_modes_fail_naming_the_column(spark):
    df = spark.createDataFrame([(0, 1.0, None, "a"), (1, NAN, 2.0, "b")],
                               "id long, x0 double, x1 double, s string")
    for sub in ("id = 0", "id = 1"):
        env = _env(df)
        compile_stage(VectorAssembler(inputCols=["x0", "x1"], outputCol="v"), env)
        message = _fails(df.where(sub), env["v"])
        assert ("column 'x1'" if sub == "id = 0" else "column 'x0'") in message
    indexer = StringIndexer(inputCol="s", outputCol="i").fit(df.where("s = 'a'"))
    env = _env(df)
    compile_stage(indexer, env, where="Pipeline stage 2")
    message = _fails(df, [env["i"]])
    assert "column 's'" in message and ": b" in message and "Pipeline stage 2" in message
    ohe = OneHotEncoder(inputCol="x1", outputCol="o").fit(
        spark.createDataFrame([(0.0,), (1.0,)], "x1 double"))
    env = _env(df)
    compile_stage(ohe, env)
    assert "column 'x1'" in _fails(df.where("id = 1"), env["o"])
    env = _env(df)
    compile_stage(Bucketizer(splits=[0.0, 1.0, 5.0], inputCol="x0", outputCol="b"), env)
    assert "column 'x0'" in _fails(df.where("id = 1"), [env["b"]])
    env = _env(df)
    compile_stage(IndexToString(inputCol="x1", outputCol="l", labels=["p"]), env)
    assert "column 'x1'" in _fails(df.where("id = 1"), [env["l"]])


def test_unsupported_stages(spark):
    df = _frame(spark, 8, dirty=False).withColumn("label", (F.col("x1") > 0).cast("double"))
    assembled = VectorAssembler(inputCols=NUM, outputCol="features").transform(df)
    lr = LogisticRegression(maxIter=2).fit(assembled)
    skip = Bucketizer(splits=[0.0, 1.0], inputCol="x0", outputCol="b", handleInvalid="skip")
    for stage in (lr, SQLTransformer(statement="SELECT * FROM __THIS__"), skip,
                  IndexToString(inputCol="x0", outputCol="l")):
        assert not is_transformer_supported(stage)
        with pytest.raises(NotSupportedError, match=f"here > {type(stage).__name__}"):
            compile_stage(stage, _env(df), where="here")
    assert is_transformer_supported(VectorAssembler(inputCols=NUM, outputCol="v"))
    nan_fit = StandardScaler(inputCol="v", outputCol="o").fit(
        VectorAssembler(inputCols=NUM, outputCol="v", handleInvalid="keep")
        .transform(_frame(spark, 8, extra=[(999, NAN, 1.0, 1.0, 1, 1.0, "a")])))
    with pytest.raises(NotSupportedError, match="std has NaN"):
        compile_stage(nan_fit, {})


def test_pipeline_of_indexer_encoder_assembler_scaler(spark):
    stages = [StringIndexer(inputCol="s", outputCol="si", handleInvalid="keep"),
              OneHotEncoder(inputCol="si", outputCol="so", handleInvalid="keep"),
              Imputer(inputCols=["x0", "k"], outputCols=["x0i", "ki"]),
              VectorAssembler(inputCols=["x0i", "so", "ki", "x1"], outputCol="v",
                              handleInvalid="keep"),
              StandardScaler(inputCol="v", outputCol="out", withMean=False),
              Binarizer(inputCol="out", outputCol="bits", threshold=0.1)]
    model = Pipeline(stages=stages).fit(_frame(spark, 10, extra=[(999, 1.0, 2.0, 2.5, 1, 1.0,
                                                                   "zz")]).na.drop())
    assert is_transformer_supported(model)
    rows = _compare(model, _frame(spark, 11), ["si", "so", "v", "out", "bits"])
    assert any(math.isnan(r["m_v_8"]) for r in rows)  # x1 NaN/null kept as NaN
