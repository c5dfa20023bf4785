"""Spark pipelines → bundle → numpy runtime, compared with Spark's own transform."""

import numpy as np
import pandas as pd
import pytest
from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.classification import LogisticRegression
from pyspark.ml.feature import OneHotEncoder, StandardScaler, StringIndexer, VectorAssembler
from pyspark.ml.regression import LinearRegression

import mleap_bridge
from spark_models.exceptions import NotSupportedError, SchemaEnforcementError

pytestmark = pytest.mark.spark


def _frame(n, seed):
    rng = np.random.default_rng(seed)
    colors = rng.choice(["red", "green", "blue", "teal"], n, p=[0.4, 0.3, 0.2, 0.1]).astype(object)
    colors[::11] = None
    sizes = rng.choice(["S", "M", "L"], n).astype(object)
    x1, x2 = rng.normal(size=n), rng.normal(3, 2, size=n)
    label = (x1 + (colors == "red") - 0.3 * x2 + rng.normal(0, 0.3, n) > 0).astype(float)
    label3 = np.digitize(x1 + 0.2 * x2 + 1.5 * (colors == "blue"), [-0.2, 0.8]).astype(float)
    return pd.DataFrame({"id": np.arange(n), "x1": x1, "x2": x2, "color": colors, "size": sizes,
                         "label": label, "label3": label3, "y": 2 * x1 - x2 + 3 * (colors == "green") + rng.normal(0, 0.1, n)})


@pytest.fixture(scope="module")
def train(spark):
    return spark.createDataFrame(_frame(300, 0))


def _scoring_frame(invalid=True):
    frame = _frame(60, 1).drop(columns=["label", "label3", "y"])
    if invalid:
        frame.loc[5, "color"] = "purple"  # unseen
        frame.loc[6, "size"] = "XXL"
    return frame


def _spark_output(spark, model, frame, columns):
    out = model.transform(spark.createDataFrame(frame)).toPandas().sort_values("id").reset_index(drop=True)
    for c in columns:
        out[c] = out[c].map(lambda v: v.toArray() if hasattr(v, "toArray") else v)
    return out


def _compare(spark, model, frame, columns, tmp_path, name="b.zip"):
    mleap_bridge.to_bundle(model, tmp_path / name)
    ours = mleap_bridge.load_bundle(tmp_path / name).transform(frame).sort_values("id").reset_index(drop=True)
    theirs = _spark_output(spark, model, frame, columns)
    assert ours["id"].tolist() == theirs["id"].tolist()
    for c in columns:
        a, b = ours[c].tolist(), theirs[c].tolist()
        if isinstance(b[0], np.ndarray):
            np.testing.assert_allclose(np.stack(a), np.stack(b), rtol=1e-9, atol=1e-12, err_msg=c)
        else:
            np.testing.assert_allclose(np.asarray(a, float), np.asarray(b, float), rtol=1e-9, atol=1e-12, err_msg=c)
    return ours


def _features(invalid="keep", drop_last=True, with_mean=True):
    return [
        StringIndexer(inputCols=["color", "size"], outputCols=["color_idx", "size_idx"], handleInvalid=invalid),
        OneHotEncoder(inputCols=["color_idx", "size_idx"], outputCols=["color_vec", "size_vec"],
                      dropLast=drop_last, handleInvalid="keep" if invalid == "keep" else "error"),
        VectorAssembler(inputCols=["x1", "x2"], outputCol="raw"),
        StandardScaler(inputCol="raw", outputCol="scaled", withMean=with_mean, withStd=True),
        VectorAssembler(inputCols=["scaled", "color_vec", "size_vec"], outputCol="features"),
    ]


FEATURE_COLS = ["color_idx", "size_idx", "color_vec", "size_vec", "raw", "scaled", "features"]


@pytest.mark.parametrize("drop_last", [True, False])
def test_features_and_binary_logistic_regression(spark, train, tmp_path, drop_last):
    model = Pipeline(stages=[*_features("keep", drop_last), LogisticRegression(maxIter=30)]).fit(train)
    _compare(spark, model, _scoring_frame(), [*FEATURE_COLS, "rawPrediction", "probability", "prediction"], tmp_path)


def test_multinomial_logistic_regression_with_thresholds(spark, train, tmp_path):
    lr = LogisticRegression(maxIter=30, labelCol="label3", family="multinomial", thresholds=[0.5, 0.3, 0.2])
    model = Pipeline(stages=[*_features("keep"), lr]).fit(train)
    out = _compare(spark, model, _scoring_frame(), ["rawPrediction", "probability", "prediction"], tmp_path)
    assert set(out["prediction"]) <= {0.0, 1.0, 2.0}


def test_linear_regression_and_skip_invalid(spark, train, tmp_path):
    model = Pipeline(stages=[*_features("skip", with_mean=False), LinearRegression(labelCol="y")]).fit(train)
    frame = _scoring_frame()
    out = _compare(spark, model, frame, ["prediction", "features"], tmp_path)
    assert len(out) < len(frame) and 5 not in set(out["id"])  # rows with unseen/null categories skipped


def test_error_mode_raises_like_spark(spark, train, tmp_path):
    clean = _frame(300, 0).dropna()
    model = Pipeline(stages=_features("error")).fit(spark.createDataFrame(clean))
    mleap_bridge.to_bundle(model, tmp_path / "err")
    runtime = mleap_bridge.load_bundle(tmp_path / "err")
    good = _scoring_frame(invalid=False).dropna()
    _compare(spark, model, good, FEATURE_COLS, tmp_path, "again")
    with pytest.raises(SchemaEnforcementError, match="'purple'.*'color'"):
        runtime.transform(_scoring_frame().fillna({"color": "red"}))
    with pytest.raises(SchemaEnforcementError, match="null value None in column 'color'"):
        runtime.transform(_scoring_frame(invalid=False))


def test_bare_model_and_unsupported_stage(spark, train, tmp_path):
    indexer = StringIndexer(inputCol="color", outputCol="color_idx", handleInvalid="keep").fit(train)
    out = _compare(spark, indexer, _scoring_frame(), ["color_idx"], tmp_path)
    assert out["color_idx"].max() == 4.0  # null and unseen → the extra bucket
    from pyspark.ml.feature import SQLTransformer

    with pytest.raises(NotSupportedError, match=r"SQLTransformer \(sql_x\)"):
        mleap_bridge.to_bundle(PipelineModel([SQLTransformer(statement="SELECT * FROM __THIS__")._resetUid("sql_x")]),
                               tmp_path / "u")


FIXTURES = __import__("pathlib").Path(__file__).resolve().parent / "fixtures" / "mleap"


def test_mleap_written_bundle_scores_the_same_in_spark(spark):
    frame = mleap_bridge.read_leapframe(FIXTURES / "frame.airbnb.json")
    frame = pd.concat([frame, frame.assign(state="CA", room_type="Private room", bedrooms=1.0)], ignore_index=True)
    ours = mleap_bridge.load_bundle(FIXTURES / "airbnb.model.lr.zip").transform(frame)
    pipeline = mleap_bridge.to_spark(FIXTURES / "airbnb.model.lr.zip")
    theirs = pipeline.transform(spark.createDataFrame(frame)).toPandas()
    np.testing.assert_allclose(ours["price_prediction"], theirs["price_prediction"], rtol=1e-9)
    np.testing.assert_allclose(np.stack(ours["features_lr"]), np.stack(theirs["features_lr"].map(lambda v: v.toArray())))

    one_hot = mleap_bridge.load_bundle(FIXTURES / "one_hot_encoder_pipeline.zip")
    letters = pd.DataFrame({"col_1": ["A", "B", "C", "Q"]})
    spark_out = mleap_bridge.to_spark(FIXTURES / "one_hot_encoder_pipeline.zip").transform(spark.createDataFrame(letters))
    got = [r.col_1_label_one_hot_encoded.toArray().tolist() for r in spark_out.collect()]
    assert got == [v.tolist() for v in one_hot.transform(letters)["col_1_label_one_hot_encoded"]]


def test_spark_to_bundle_to_spark_round_trip(spark, train, tmp_path):
    lr = LogisticRegression(maxIter=30, labelCol="label3", family="multinomial")
    for name, model in (("bin", Pipeline(stages=[*_features("keep"), LogisticRegression(maxIter=20)]).fit(train)),
                        ("multi", Pipeline(stages=[*_features("keep"), lr]).fit(train)),
                        ("lin", Pipeline(stages=[*_features("skip", with_mean=False), LinearRegression(labelCol="y")]).fit(train))):
        mleap_bridge.to_bundle(model, tmp_path / name)
        rebuilt = mleap_bridge.to_spark(tmp_path / name)
        frame = _scoring_frame()
        a = _spark_output(spark, model, frame, ["prediction"])["prediction"]
        b = _spark_output(spark, rebuilt, frame, ["prediction"])["prediction"]
        np.testing.assert_allclose(a, b, rtol=1e-12, err_msg=name)


def test_scaling_ops_match_spark_and_round_trip(spark, train, tmp_path):
    from pyspark.ml.feature import PCA, Binarizer, MaxAbsScaler, MinMaxScaler, Normalizer

    stages = [
        VectorAssembler(inputCols=["x1", "x2", "label3"], outputCol="raw"),
        MinMaxScaler(inputCol="raw", outputCol="minmax", min=-1.0, max=2.0),
        MaxAbsScaler(inputCol="raw", outputCol="maxabs"),
        Normalizer(inputCol="raw", outputCol="l1", p=1.0),
        Normalizer(inputCol="raw", outputCol="linf", p=float("inf")),
        Binarizer(inputCol="raw", outputCol="bin", threshold=0.5),
        Binarizer(inputCol="x1", outputCol="x1_bin", threshold=0.0),
        PCA(k=2, inputCol="raw", outputCol="pca"),
    ]
    model = Pipeline(stages=stages).fit(train)
    frame = _frame(40, 9)
    frame.loc[0, ["x1", "x2", "label3"]] = 0.0  # a zero vector: norms of 0 leave it unchanged
    columns = ["minmax", "maxabs", "l1", "linf", "bin", "x1_bin", "pca"]
    _compare(spark, model, frame, columns, tmp_path)
    rebuilt = mleap_bridge.to_spark(tmp_path / "b.zip")
    a, b = _spark_output(spark, model, frame, columns), _spark_output(spark, rebuilt, frame, columns)
    for c in columns:
        np.testing.assert_allclose(np.stack(a[c]) if a[c].dtype == object else a[c],
                                   np.stack(b[c]) if b[c].dtype == object else b[c], rtol=1e-12, err_msg=c)


def test_discrete_ops_match_spark_and_round_trip(spark, train, tmp_path):
    from pyspark.ml.feature import Bucketizer, Imputer, IndexToString

    inf = float("inf")
    stages = [
        Imputer(inputCols=["x1", "x2"], outputCols=["x1_i", "x2_i"], strategy="median"),
        Bucketizer(splits=[-inf, -1.0, 0.0, 1.0, inf], inputCol="x1_i", outputCol="x1_b"),
        Bucketizer(splits=[-10.0, 0.0, 3.0, 20.0], inputCol="x2", outputCol="x2_b", handleInvalid="keep"),
        StringIndexer(inputCol="color", outputCol="color_idx", handleInvalid="keep"),
        IndexToString(inputCol="color_idx", outputCol="color_back", labels=["red", "green", "blue", "teal", "other"]),
    ]
    model = Pipeline(stages=stages).fit(train)
    frame = _scoring_frame(invalid=False)
    frame.loc[[1, 4], "x1"] = np.nan
    frame.loc[2, "x2"] = np.nan
    columns = ["x1_i", "x2_i", "x1_b", "x2_b", "color_idx"]
    out = _compare(spark, model, frame, columns, tmp_path)
    theirs = _spark_output(spark, model, frame, [])
    assert out["color_back"].tolist() == theirs["color_back"].tolist()
    assert np.isnan(out["x2_b"][2])  # a null (NaN in pandas) input gives null, as in Spark
    rebuilt = _spark_output(spark, mleap_bridge.to_spark(tmp_path / "b.zip"), frame, [])
    for c in [*columns, "color_back"]:
        assert rebuilt[c].tolist() == theirs[c].tolist() or np.allclose(rebuilt[c], theirs[c], equal_nan=True), c


TREE_KINDS = ["dt_reg", "rf_reg", "gbt_reg", "dt_clf", "rf_clf", "gbt_clf"]
_TREE_PIPELINES: dict = {}


def _tree_pipeline(train, kind):
    """A fitted StringIndexer → VectorAssembler → tree model pipeline (fitted once per kind)."""
    from pyspark.ml import classification as C
    from pyspark.ml import regression as R

    if kind not in _TREE_PIPELINES:
        estimator = {
            "dt_reg": R.DecisionTreeRegressor(labelCol="y", maxDepth=5),
            "rf_reg": R.RandomForestRegressor(labelCol="y", numTrees=7, maxDepth=4, seed=3),
            "gbt_reg": R.GBTRegressor(labelCol="y", maxIter=6, maxDepth=3, seed=3),
            "dt_clf": C.DecisionTreeClassifier(labelCol="label3", maxDepth=5),
            "rf_clf": C.RandomForestClassifier(labelCol="label3", numTrees=7, maxDepth=4, seed=3),
            "gbt_clf": C.GBTClassifier(labelCol="label", maxIter=6, maxDepth=3, seed=3),
        }[kind]
        stages = [
            StringIndexer(inputCol="color", outputCol="color_idx", handleInvalid="keep"),  # a categorical feature
            VectorAssembler(inputCols=["x1", "x2", "color_idx"], outputCol="features"),
            estimator,
        ]
        _TREE_PIPELINES[kind] = Pipeline(stages=stages).fit(train)
    return _TREE_PIPELINES[kind]


@pytest.mark.parametrize("kind", TREE_KINDS)
def test_tree_models_match_spark(spark, train, tmp_path, kind):
    model = _tree_pipeline(train, kind)
    columns = ["prediction"] if kind.endswith("reg") else ["prediction", "probability", "rawPrediction"]
    _compare(spark, model, _scoring_frame(), columns, tmp_path)
    rebuilt = _spark_output(spark, mleap_bridge.to_spark(tmp_path / "b.zip"), _scoring_frame(), columns)
    expected = _spark_output(spark, model, _scoring_frame(), columns)
    for c in columns:
        np.testing.assert_allclose(np.stack(rebuilt[c].tolist()), np.stack(expected[c].tolist()), rtol=1e-9, err_msg=c)
    tree_node = mleap_bridge.read_bundle(tmp_path / "b.zip").root.children[-1]
    text = "".join(v for k, v in tree_node.files.items() if k.endswith("tree.json"))
    assert '"categorical"' in text and '"continuous"' in text  # both split kinds exercised


def _bundle_files(bundle):
    """Every file of a bundle directory but bundle.json (which holds a fresh uid and timestamp)."""
    return {p.relative_to(bundle).as_posix(): p.read_text() for p in sorted(bundle.rglob("*"))
            if p.is_file() and p.name != "bundle.json"}


def _tree_logs(caplog, uid):
    return [r.getMessage() for r in caplog.records if r.name == "mleap_bridge.ops.tree_export" and uid in r.getMessage()]


@pytest.mark.parametrize("kind", TREE_KINDS)
def test_tree_export_from_sparks_node_tables_equals_the_py4j_fallback(spark, train, tmp_path, kind, caplog, monkeypatch):
    import logging
    import shutil

    from mleap_bridge.ops import tree_export
    from mleap_bridge.spark import to_bundle

    model = _tree_pipeline(train, kind)
    uid = model.stages[-1].uid
    saved = tmp_path / "spark"
    model.write().save(str(saved))
    caplog.set_level(logging.DEBUG, logger="mleap_bridge.ops.tree_export")
    to_bundle(model, tmp_path / "py4j")  # small trees without a saved copy: node by node through py4j
    assert len(_tree_logs(caplog, uid)) == 1 and "through py4j" in _tree_logs(caplog, uid)[0]
    expected = _bundle_files(tmp_path / "py4j")
    assert sum(name.endswith("tree.json") for name in expected) == (1 if kind.startswith("dt") else len(model.stages[-1].trees))

    caplog.clear()
    to_bundle(model, tmp_path / "saved", spark_data_dir=saved)  # what save_model does with its sparkml/
    assert f"from {saved}/stages/2_{uid}" in _tree_logs(caplog, uid)[0]
    assert _bundle_files(tmp_path / "saved") == expected

    caplog.clear()
    monkeypatch.setattr(tree_export, "_PY4J_MAX_NODES", 0)  # any tree is "large": Spark saves it to a temporary dir
    to_bundle(model, tmp_path / "temporary")
    message = _tree_logs(caplog, uid)[0]
    assert "from " in message and "mleap-bridge-stage-" in message
    temporary = message.split(" from ")[1].split(" in ")[0]
    assert not __import__("os").path.exists(temporary)  # deleted after reading
    assert _bundle_files(tmp_path / "temporary") == expected

    caplog.clear()
    broken = tmp_path / "broken"
    shutil.copytree(saved, broken)
    shutil.rmtree(broken / "stages" / f"2_{uid}" / "data")  # unreadable: the export falls back to py4j
    to_bundle(model, tmp_path / "fallback", spark_data_dir=broken)
    logged = _tree_logs(caplog, uid)
    assert "failed" in logged[0] and "through py4j instead" in logged[0] and "through py4j in" in logged[1]
    assert _bundle_files(tmp_path / "fallback") == expected


def test_tree_export_ignores_a_spark_save_of_another_fit_with_the_same_uids(spark, train, tmp_path, caplog):
    import logging

    from pyspark.ml.classification import RandomForestClassifier

    from mleap_bridge.spark import to_bundle

    forest = RandomForestClassifier(labelCol="label3", numTrees=3, maxDepth=4, seed=3)
    pipeline = Pipeline(stages=[VectorAssembler(inputCols=["x1", "x2"], outputCol="features"), forest])
    deep, shallow = pipeline.fit(train), pipeline.fit(train, {forest.maxDepth: 1})
    assert deep.stages[-1].uid == shallow.stages[-1].uid  # Pipeline.fit names models after their estimators
    deep.write().save(str(tmp_path / "deep"))
    caplog.set_level(logging.DEBUG, logger="mleap_bridge.ops.tree_export")
    to_bundle(shallow, tmp_path / "b", spark_data_dir=tmp_path / "deep")
    logged = _tree_logs(caplog, forest.uid)
    assert "holds" in logged[0] and "nodes" in logged[0] and "through py4j instead" in logged[0]
    to_bundle(shallow, tmp_path / "expected")
    assert _bundle_files(tmp_path / "b") == _bundle_files(tmp_path / "expected")


@pytest.mark.parametrize("kind", ["svc", "nb_multinomial", "nb_bernoulli", "nb_gaussian", "kmeans", "kmeans_cosine"])
def test_other_predictors_match_spark_and_round_trip(spark, train, tmp_path, kind):
    from pyspark.ml.classification import LinearSVC, NaiveBayes
    from pyspark.ml.clustering import KMeans
    from pyspark.ml.feature import Binarizer, MinMaxScaler

    features = [VectorAssembler(inputCols=["x1", "x2"], outputCol="raw"),
                MinMaxScaler(inputCol="raw", outputCol="nonneg")]  # multinomial NB needs non-negative features
    estimator, column = {
        "svc": (LinearSVC(featuresCol="raw", maxIter=20), ["rawPrediction", "prediction"]),
        "nb_multinomial": (NaiveBayes(featuresCol="nonneg", labelCol="label3"), ["rawPrediction", "probability", "prediction"]),
        "nb_bernoulli": (NaiveBayes(featuresCol="bits", labelCol="label3", modelType="bernoulli"), ["probability", "prediction"]),
        "nb_gaussian": (NaiveBayes(featuresCol="raw", labelCol="label3", modelType="gaussian"), ["rawPrediction", "probability", "prediction"]),
        "kmeans": (KMeans(featuresCol="raw", k=4, seed=2), ["prediction"]),
        "kmeans_cosine": (KMeans(featuresCol="raw", k=3, seed=2, distanceMeasure="cosine"), ["prediction"]),
    }[kind]
    if kind == "nb_bernoulli":
        features.append(Binarizer(inputCol="raw", outputCol="bits", threshold=0.0))
    model = Pipeline(stages=[*features, estimator]).fit(train)
    frame = _scoring_frame()
    _compare(spark, model, frame, column, tmp_path)
    rebuilt = _spark_output(spark, mleap_bridge.to_spark(tmp_path / "b.zip"), frame, column)
    expected = _spark_output(spark, model, frame, column)
    for c in column:
        np.testing.assert_allclose(np.stack(rebuilt[c].tolist()), np.stack(expected[c].tolist()), rtol=1e-9, err_msg=c)


def test_text_ops_match_spark_and_round_trip(spark, tmp_path):
    from pyspark.ml.feature import IDF, NGram, CountVectorizer, HashingTF, RegexTokenizer, StopWordsRemover, Tokenizer

    docs = pd.DataFrame({"id": range(6), "text": [
        "The quick brown Fox", "jumps over  the lazy dog", "Ünïcode wörds and the fox",
        "a b c d e f", "THE the The", "dog-eat-dog world, 42 times"]})
    stages = [
        Tokenizer(inputCol="text", outputCol="words"),
        RegexTokenizer(inputCol="text", outputCol="alnum", pattern="\\w+", gaps=False, minTokenLength=2),
        StopWordsRemover(inputCol="words", outputCol="kept"),
        NGram(n=2, inputCol="kept", outputCol="bigrams"),
        HashingTF(inputCol="words", outputCol="tf", numFeatures=64),
        CountVectorizer(inputCol="alnum", outputCol="counts", minTF=1.0),
        IDF(inputCol="counts", outputCol="tfidf"),
    ]
    model = Pipeline(stages=stages).fit(spark.createDataFrame(docs))
    mleap_bridge.to_bundle(model, tmp_path / "text")
    ours = mleap_bridge.load_bundle(tmp_path / "text").transform(docs)
    for source in (model, mleap_bridge.to_spark(tmp_path / "text")):
        theirs = source.transform(spark.createDataFrame(docs)).toPandas().sort_values("id").reset_index(drop=True)
        for c in ("words", "alnum", "kept", "bigrams"):
            assert [list(v) for v in ours[c]] == [list(v) for v in theirs[c]], c
        for c in ("tf", "counts", "tfidf"):
            np.testing.assert_allclose(np.stack(ours[c]), np.stack(theirs[c].map(lambda v: v.toArray())), rtol=1e-12, err_msg=c)
