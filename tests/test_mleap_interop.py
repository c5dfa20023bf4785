"""What MLeap's own readers expect of our bundles, checked against the JVM objects MLeap serializes.

MLeap's JVM ops store Spark's ``Matrix.toArray`` (column-major), write NaN/±inf as JSON null,
take the binary branch for ``num_classes == 2``, and read labels of an IndexToString from the
column metadata. Each test compares with Spark's own ``transform``.
"""

import json

import numpy as np
import pandas as pd
import pytest
from pyspark.ml import Pipeline
from pyspark.ml import feature as F
from pyspark.ml.classification import LogisticRegression, NaiveBayes

import mleap_bridge
from spark_models.exceptions import InvalidArgumentError, SchemaEnforcementError

pytestmark = pytest.mark.spark


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(11)
    n = 200
    frame = pd.DataFrame({"id": np.arange(n), "x1": rng.normal(size=n), "x2": rng.normal(size=n),
                          "x3": rng.uniform(0, 2, size=n)})
    frame["y3"] = np.digitize(frame.x1 + 0.7 * frame.x2 - frame.x3, [-1.2, 0.0]).astype(float)
    frame["y2"] = (frame.x1 - frame.x2 > 0.3).astype(float)
    return frame


@pytest.fixture(scope="module")
def train(spark, data):
    return spark.createDataFrame(data)


def _strict(token):
    raise AssertionError(f"not JSON: {token}")  # NaN/Infinity tokens; MLeap writes null


def _node_json(bundle_dir, op):
    for path in sorted(bundle_dir.rglob("model.json")):
        model = json.loads(path.read_text(), parse_constant=_strict)
        if model["op"] == op:
            return model["attributes"]
    raise AssertionError(f"no {op} node")


def _spark(spark, model, frame, column):
    out = model.transform(spark.createDataFrame(frame)).toPandas().sort_values("id")[column]
    return np.stack(out.map(lambda v: v.toArray())) if hasattr(out.iloc[0], "toArray") else out.to_numpy()


def _ours(bundle, frame, column):
    out = mleap_bridge.load_bundle(bundle).transform(frame).sort_values("id")[column]
    return np.stack(out) if out.dtype == object else out.to_numpy()


def test_matrices_are_written_as_mleap_writes_them(spark, train, data, tmp_path):
    """coefficient_matrix and theta hold the JVM's Matrix.toArray with dims [rows, cols]."""
    assembler = F.VectorAssembler(inputCols=["x1", "x2", "x3"], outputCol="features")
    lr = Pipeline(stages=[assembler, LogisticRegression(labelCol="y3", maxIter=30)]).fit(train)
    nb = Pipeline(stages=[assembler, NaiveBayes(labelCol="y3", modelType="gaussian")]).fit(train)
    mleap_bridge.to_bundle(lr, tmp_path / "lr")
    mleap_bridge.to_bundle(nb, tmp_path / "nb")
    java_lr, java_nb = lr.stages[-1]._java_obj, nb.stages[-1]._java_obj
    for name, op, attribute, jvm in (("lr", "logistic_regression", "coefficient_matrix", java_lr.coefficientMatrix()),
                                     ("nb", "naive_bayes", "theta", java_nb.theta()),
                                     ("nb", "naive_bayes", "sigma", java_nb.sigma())):
        written = _node_json(tmp_path / name, op)[attribute]
        assert jvm.numRows() == 3 and jvm.numCols() == 3 and written["double"] == list(jvm.toArray()), attribute
        assert [d["size"] for d in written["shape"]["dimensions"]] == [jvm.numRows(), jvm.numCols()], attribute
    for name, model in (("lr", lr), ("nb", nb)):
        for column in ("probability", "prediction"):
            np.testing.assert_allclose(_ours(tmp_path / name, data, column), _spark(spark, model, data, column),
                                       rtol=1e-9, err_msg=f"{name} {column}")
        rebuilt = mleap_bridge.to_spark(tmp_path / name)
        np.testing.assert_allclose(_spark(spark, rebuilt, data, "probability"), _spark(spark, model, data, "probability"),
                                   rtol=1e-12, err_msg=name)


def test_two_class_multinomial_is_written_for_mleaps_binary_reader(spark, train, data, tmp_path):
    model = Pipeline(stages=[F.VectorAssembler(inputCols=["x1", "x2", "x3"], outputCol="features"),
                             LogisticRegression(labelCol="y2", family="multinomial", maxIter=30,
                                                thresholds=[0.4, 0.6])]).fit(train)
    mleap_bridge.to_bundle(model, tmp_path / "m2")
    attributes = _node_json(tmp_path / "m2", "logistic_regression")
    assert attributes["num_classes"] == {"long": 2}
    assert {"coefficients", "intercept", "threshold"} <= set(attributes)  # what MLeap's num_classes == 2 branch reads
    assert attributes["threshold"]["double"] == pytest.approx(0.6)  # p1/0.6 > p0/0.4  ⇔  p1 > 0.6
    for column in ("rawPrediction", "probability", "prediction"):  # with the matrix, even raw scores match Spark
        np.testing.assert_allclose(_ours(tmp_path / "m2", data, column), _spark(spark, model, data, column),
                                   rtol=1e-9, atol=1e-12, err_msg=column)
    bundle = mleap_bridge.read_bundle(tmp_path / "m2")  # as MLeap's reader sees it: the binary attributes only
    node = next(n for n in bundle.root.children if n.op == "logistic_regression")
    del node.attributes["coefficient_matrix"], node.attributes["intercept_vector"]
    mleap_bridge.write_bundle(bundle, tmp_path / "binary_only")
    for column in ("probability", "prediction"):
        np.testing.assert_allclose(_ours(tmp_path / "binary_only", data, column), _spark(spark, model, data, column),
                                   rtol=1e-9, atol=1e-12, err_msg=column)


def test_imputer_nan_missing_value_is_null_and_zero_is_kept(spark, tmp_path):
    frame = pd.DataFrame({"id": range(5), "x": [1.0, np.nan, 0.0, 3.0, 0.0]})
    model = Pipeline(stages=[F.Imputer(inputCols=["x"], outputCols=["x_i"], strategy="mean")]).fit(spark.createDataFrame(frame))
    mleap_bridge.to_bundle(model, tmp_path / "imp")
    assert _node_json(tmp_path / "imp", "imputer")["missing_value"] == {"double": None}  # MLeap's encoding of NaN
    ours = _ours(tmp_path / "imp", frame, "x_i")
    np.testing.assert_allclose(ours, _spark(spark, model, frame, "x_i"), rtol=1e-12)
    assert ours[2] == 0.0 and ours[1] == pytest.approx(1.0)  # a real 0.0 is not imputed
    rebuilt = mleap_bridge.to_spark(tmp_path / "imp")
    np.testing.assert_allclose(_spark(spark, rebuilt, frame, "x_i"), ours, rtol=1e-12)


def test_bucketizer_infinite_splits_are_null_and_restored(spark, tmp_path):
    inf = float("inf")
    stage = F.Bucketizer(splits=[-inf, 0.0, 1.0, inf], inputCol="x", outputCol="b")
    mleap_bridge.to_bundle(stage, tmp_path / "bk")
    assert _node_json(tmp_path / "bk", "bucketizer")["splits"]["double"] == [None, 0.0, 1.0, None]
    frame = pd.DataFrame({"id": range(4), "x": [-5.0, 0.5, 1.0, 5.0]})
    ours = _ours(tmp_path / "bk", frame, "b")
    np.testing.assert_array_equal(ours, _spark(spark, stage, frame, "b"))
    assert ours.tolist() == [0.0, 1.0, 2.0, 2.0]
    rebuilt = mleap_bridge.to_spark(tmp_path / "bk").stages[0]
    assert rebuilt.getSplits() == [-inf, 0.0, 1.0, inf]


def test_bucketizer_skip_drops_null_rows_like_spark(spark, tmp_path):
    stage = F.Bucketizer(splits=[-10.0, 0.0, 10.0], inputCol="x", outputCol="b", handleInvalid="skip")
    frame = pd.DataFrame({"id": range(5), "x": [-1.0, np.nan, 3.0, np.nan, 0.0]})
    mleap_bridge.to_bundle(stage, tmp_path / "skip")
    ours = mleap_bridge.load_bundle(tmp_path / "skip").transform(frame)
    theirs = stage.transform(spark.createDataFrame(frame)).toPandas()
    assert ours["id"].tolist() == theirs["id"].tolist() == [0, 2, 4]
    assert ours["b"].tolist() == theirs["b"].tolist() == [0.0, 1.0, 1.0]


def test_index_to_string_labels_from_column_metadata(spark, tmp_path):
    frame = pd.DataFrame({"id": range(5), "c": ["b", "a", "b", "c", "b"]})
    df = spark.createDataFrame(frame)
    model = Pipeline(stages=[F.StringIndexer(inputCol="c", outputCol="ci"),
                             F.IndexToString(inputCol="ci", outputCol="back")]).fit(df)
    mleap_bridge.to_bundle(model, tmp_path / "its", sample_df=df)
    assert _node_json(tmp_path / "its", "reverse_string_indexer")["labels"]["string"] == ["b", "a", "c"]
    ours = _ours(tmp_path / "its", frame, "back")
    assert ours.tolist() == _spark(spark, model, frame, "back").tolist() == frame["c"].tolist()
    mleap_bridge.to_bundle(model, tmp_path / "transformed", sample_df=model.transform(df))  # as MLeap is given it
    assert _node_json(tmp_path / "transformed", "reverse_string_indexer")["labels"]["string"] == ["b", "a", "c"]
    with pytest.raises(InvalidArgumentError, match=rf"IndexToString {model.stages[1].uid}: no labels set.*'ci'.*sample_df"):
        mleap_bridge.to_bundle(model, tmp_path / "no_sample")


def test_hashing_tf_spark2_hash_version(spark, tmp_path):
    """hashUnsafeBytesVersion 1 (or absent, as in Spark-2-era bundles) is Spark 2's murmur3 variant."""
    from mleap_bridge.murmur3 import murmur3_32

    gw = spark.sparkContext._gateway
    murmur, offset = gw.jvm.org.apache.spark.unsafe.hash.Murmur3_x86_32, gw.jvm.org.apache.spark.unsafe.Platform.BYTE_ARRAY_OFFSET
    for term in ["", "a", "ab", "abc", "abcd", "abcde", "héllo", "日本語", "ü"]:  # every tail length, bytes ≥ 0x80
        data = term.encode("utf-8")
        assert murmur3_32(data, 42, 1) == murmur.hashUnsafeBytes(data, offset, len(data), 42), term
        assert murmur3_32(data, 42, 2) == murmur.hashUnsafeBytes2(data, offset, len(data), 42), term
    docs = pd.DataFrame({"id": range(3), "w": [["héllo", "wörld", "a"], ["日本語", "abcde"], []]})
    mleap_bridge.to_bundle(F.HashingTF(inputCol="w", outputCol="tf", numFeatures=32), tmp_path / "tf")
    bundle = mleap_bridge.read_bundle(tmp_path / "tf")
    del bundle.root.children[0].attributes["hashUnsafeBytesVersion"]  # as MLeap wrote it for Spark 2
    mleap_bridge.write_bundle(bundle, tmp_path / "tf1")
    ours = _ours(tmp_path / "tf1", docs, "tf")
    old = mleap_bridge.to_spark(tmp_path / "tf1")  # Spark's HashingTF built with hashFuncVersion 1
    np.testing.assert_array_equal(ours, _spark(spark, old, docs, "tf"))
    assert not np.array_equal(ours, _ours(tmp_path / "tf", docs, "tf"))  # the versions really differ here


def test_vector_assembler_default_and_nan_inside_vectors(spark, tmp_path):
    """Without handle_invalid (MLeap never writes it) the default is Spark's: error on null/NaN scalars."""
    from pyspark.ml.linalg import Vectors

    node = mleap_bridge.Node("va", "vector_assembler", {}, [("input0", "v"), ("input1", "x")], [("output", "f")])
    mleap_bridge.write_bundle(mleap_bridge.Bundle(node, "va"), tmp_path / "va")
    runtime = mleap_bridge.load_bundle(tmp_path / "va")
    assert mleap_bridge.to_spark(tmp_path / "va").stages[0].getHandleInvalid() == "error"
    frame = pd.DataFrame({"v": [np.array([1.0, np.nan])], "x": [2.0]})
    spark_df = spark.createDataFrame([(Vectors.dense([1.0, float("nan")]), 2.0)], ["v", "x"])
    theirs = F.VectorAssembler(inputCols=["v", "x"], outputCol="f").transform(spark_df).first().f.toArray()
    np.testing.assert_array_equal(runtime.transform(frame)["f"][0], theirs)  # NaN inside a vector is not invalid
    with pytest.raises(SchemaEnforcementError, match=r"'va' \(vector_assembler\).*\['x'\] at row 0"):
        runtime.transform(frame.assign(x=np.nan))
