"""Every op fitted in Spark on data with nulls (and scored with unseen categories/words), exported,
run in numpy and compared with Spark's transform: 1e-9 relative for doubles, exact otherwise.

Nulls reach vector ops the two ways Spark allows: a VectorAssembler that skips them, or one
that keeps them (NaN inside the vector) in front of stages fitted on the skipped rows.
"""

import numpy as np
import pandas as pd
import pytest
from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml import classification as C
from pyspark.ml import feature as F
from pyspark.ml.clustering import KMeans

import mleap_bridge
from spark_models.exceptions import SchemaEnforcementError

pytestmark = pytest.mark.spark


def _frame(n, seed):
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"id": np.arange(n), "x1": rng.normal(size=n), "x2": rng.normal(2, 3, size=n),
                          "x3": rng.uniform(0, 1, size=n)})
    noise = rng.normal(0, 0.7, size=n)  # overlapping classes: probabilities in between, where thresholds matter
    frame["label"] = (frame.x1 + 0.3 * frame.x2 + noise > 0.5).astype(float)
    frame["label3"] = np.digitize(frame.x1 - frame.x3 + noise, [-0.6, 0.3]).astype(float)
    for column, step in (("x1", 7), ("x2", 11), ("x3", 13)):
        frame.loc[frame.index[step // 2::step], column] = np.nan  # nulls in Spark, NaN in pandas
    return frame


@pytest.fixture(scope="module")
def train(spark):
    return spark.createDataFrame(_frame(240, 0))


@pytest.fixture(scope="module")
def scoring():
    return _frame(50, 1)


def _spark_out(spark, model, frame):
    return model.transform(spark.createDataFrame(frame)).toPandas().sort_values("id").reset_index(drop=True)


def _values(series):
    first = series.iloc[0]
    if hasattr(first, "toArray"):
        return np.stack(series.map(lambda v: v.toArray()))
    return np.stack(series) if isinstance(first, np.ndarray) else series.to_numpy(dtype=float)


def _compare(spark, model, frame, columns, path):
    mleap_bridge.to_bundle(model, path)
    ours = mleap_bridge.load_bundle(path).transform(frame).sort_values("id").reset_index(drop=True)
    theirs = _spark_out(spark, model, frame)
    assert ours["id"].tolist() == theirs["id"].tolist()
    for c in columns:
        np.testing.assert_allclose(_values(ours[c]), _values(theirs[c]), rtol=1e-9, atol=1e-12, err_msg=c)
    return ours


def _scalers():
    return [F.StandardScaler(inputCol="raw", outputCol="std", withMean=True, withStd=True),
            F.StandardScaler(inputCol="raw", outputCol="centred", withMean=True, withStd=False),
            F.MinMaxScaler(inputCol="raw", outputCol="minmax"), F.MaxAbsScaler(inputCol="raw", outputCol="maxabs"),
            F.Normalizer(inputCol="raw", outputCol="l2"), F.Binarizer(inputCol="raw", outputCol="bin", threshold=0.4),
            F.PCA(k=2, inputCol="raw", outputCol="pca")]


VECTOR_COLUMNS = ["raw", "std", "centred", "minmax", "maxabs", "l2", "bin", "pca"]


@pytest.fixture(scope="module")
def skip_fitted(train):
    """Vector ops fitted on data with nulls: the assembler skips the null rows."""
    assembler = F.VectorAssembler(inputCols=["x1", "x2", "x3"], outputCol="raw", handleInvalid="skip")
    return Pipeline(stages=[assembler, *_scalers()]).fit(train)


def test_imputer_and_scalar_ops_with_nulls(spark, train, scoring, tmp_path):
    stages = [F.Imputer(inputCols=["x1", "x2", "x3"], outputCols=["x1_i", "x2_i", "x3_i"], strategy="median"),
              F.Binarizer(inputCol="x3", outputCol="x3_bin", threshold=0.5),  # a null scalar in
              F.VectorAssembler(inputCols=["x1_i", "x2_i", "x3_i"], outputCol="raw"),
              *_scalers()]
    model = Pipeline(stages=stages).fit(train)
    _compare(spark, model, scoring, ["x1_i", "x2_i", "x3_i", "x3_bin", *VECTOR_COLUMNS], tmp_path / "b")


def test_vector_ops_skip_null_rows(spark, skip_fitted, scoring, tmp_path):
    out = _compare(spark, skip_fitted, scoring, VECTOR_COLUMNS, tmp_path / "b")
    assert len(out) < len(scoring)


def test_vector_ops_keep_nulls_as_nan(spark, skip_fitted, scoring, tmp_path):
    keep = F.VectorAssembler(inputCols=["x1", "x2", "x3"], outputCol="raw", handleInvalid="keep")
    model = PipelineModel([keep, *skip_fitted.stages[1:]])
    out = _compare(spark, model, scoring, VECTOR_COLUMNS, tmp_path / "b")
    assert len(out) == len(scoring) and np.isnan(np.stack(out["std"])).any()


@pytest.mark.parametrize("kind", ["lr_threshold", "lr_multinomial", "svc", "nb_gaussian", "kmeans", "dt_thresholds",
                                  "rf_thresholds", "gbt_thresholds"])
def test_predictors_with_nulls(spark, train, scoring, tmp_path, kind):
    """Fitted on skipped null rows; scored with NaN features (Spark computes NaN scores, so do we)."""
    estimator, columns = {
        "lr_threshold": (C.LogisticRegression(maxIter=20, threshold=0.7), ["rawPrediction", "probability", "prediction"]),
        "lr_multinomial": (C.LogisticRegression(maxIter=20, labelCol="label3"), ["rawPrediction", "probability", "prediction"]),
        "svc": (C.LinearSVC(maxIter=10, threshold=0.2), ["rawPrediction", "prediction"]),
        "nb_gaussian": (C.NaiveBayes(modelType="gaussian", labelCol="label3"), ["rawPrediction", "probability", "prediction"]),
        "kmeans": (KMeans(k=3, seed=1), ["prediction"]),
        "dt_thresholds": (C.DecisionTreeClassifier(labelCol="label3", maxDepth=4), ["rawPrediction", "probability", "prediction"]),
        "rf_thresholds": (C.RandomForestClassifier(labelCol="label3", numTrees=5, maxDepth=3, seed=2),
                          ["rawPrediction", "probability", "prediction"]),
        "gbt_thresholds": (C.GBTClassifier(maxIter=4, maxDepth=2, seed=2), ["rawPrediction", "probability", "prediction"]),
    }[kind]
    skip = F.VectorAssembler(inputCols=["x1", "x2", "x3"], outputCol="features", handleInvalid="skip")
    fitted = Pipeline(stages=[skip, estimator]).fit(train)
    predictor = fitted.stages[-1]
    thresholds = {"dt_thresholds": [0.5, 0.2, 0.3], "rf_thresholds": [0.2, 0.5, 0.3], "gbt_thresholds": [0.7, 0.3]}
    if kind in thresholds:
        predictor.setThresholds(thresholds[kind])  # tree estimators take no thresholds; their models do
    keep = F.VectorAssembler(inputCols=["x1", "x2", "x3"], outputCol="features", handleInvalid="keep")
    if kind == "kmeans":  # Spark's KMeansModel fails on NaN features; so do we, naming the node
        mleap_bridge.to_bundle(PipelineModel([keep, predictor]), tmp_path / "nan")
        with pytest.raises(SchemaEnforcementError, match=r"\(k_means\): null/NaN in features column 'features' at row"):
            mleap_bridge.load_bundle(tmp_path / "nan").transform(scoring)
        with pytest.raises(Exception, match="norm"):
            _spark_out(spark, PipelineModel([keep, predictor]), scoring)
        keep = skip
    ours = _compare(spark, PipelineModel([keep, predictor]), scoring, columns, tmp_path / "b")
    if kind.endswith("thresholds") or kind == "lr_threshold":  # the thresholds change some predictions
        plain = predictor.copy()
        plain.clear(plain.thresholds) if kind != "lr_threshold" else plain.setThreshold(0.5)
        assert (_spark_out(spark, PipelineModel([keep, plain]), scoring)["prediction"] != ours["prediction"]).any()


@pytest.fixture(scope="module")
def text_model(spark):
    docs = pd.DataFrame({"id": range(5), "text": [
        "The quick brown fox", "jumps over the lazy dog", "Ünïcode wörds and the fox",
        "dog eat dog, world", "the THE the fox fox"]})
    stages = [
        F.Tokenizer(inputCol="text", outputCol="words"),
        F.RegexTokenizer(inputCol="text", outputCol="gapped", pattern="[\\s,]+", gaps=True, minTokenLength=2),
        F.RegexTokenizer(inputCol="text", outputCol="letters", pattern="\\p{L}+", gaps=False),
        F.StopWordsRemover(inputCol="words", outputCol="kept"),
        F.NGram(n=2, inputCol="kept", outputCol="bigrams"),
        F.HashingTF(inputCol="words", outputCol="tf", numFeatures=32),
        F.CountVectorizer(inputCol="gapped", outputCol="counts", minTF=0.3),
        F.IDF(inputCol="counts", outputCol="tfidf"),
    ]
    return Pipeline(stages=stages).fit(spark.createDataFrame(docs))


def test_text_ops_with_unseen_words(spark, text_model, tmp_path):
    frame = pd.DataFrame({"id": range(3), "text": ["zebra fox FOX fox quagga", "Überraschung, dog",
                                                   "aa bb cc dd ee ff gg hh ii jj fox"]})
    mleap_bridge.to_bundle(text_model, tmp_path / "t")
    ours = mleap_bridge.load_bundle(tmp_path / "t").transform(frame)
    for source in (text_model, mleap_bridge.to_spark(tmp_path / "t")):
        theirs = _spark_out(spark, source, frame)
        for c in ("words", "gapped", "letters", "kept", "bigrams"):
            assert [list(v) for v in ours[c]] == [list(v) for v in theirs[c]], c
        for c in ("tf", "counts", "tfidf"):
            np.testing.assert_allclose(np.stack(ours[c]), _values(theirs[c]), rtol=1e-12, err_msg=c)
    assert ours["letters"][1] == ["überraschung", "dog"]  # \p{L} is Unicode letters, as in Java
    assert ours["counts"][2].sum() == 0.0  # fractional minTF: one "fox" among 11 tokens is below 0.3 × 11


def test_null_text_is_a_clear_error_like_spark(spark, text_model, tmp_path):
    frame = pd.DataFrame({"id": [0, 1], "text": ["a fox", None]})
    with pytest.raises(Exception, match="(?i)null|NullPointer"):
        _spark_out(spark, text_model, frame)  # Spark fails on null text too
    mleap_bridge.to_bundle(text_model, tmp_path / "t")
    runtime = mleap_bridge.load_bundle(tmp_path / "t")
    with pytest.raises(SchemaEnforcementError, match=r"\(tokenizer\): null value in column 'text' at row 1"):
        runtime.transform(frame)
    with pytest.raises(SchemaEnforcementError, match=r"\(count_vectorizer\): null value in column 'gapped'"):
        _count_only(text_model, tmp_path).transform(pd.DataFrame({"gapped": [["fox"], None]}))


def _count_only(text_model, tmp_path):
    counts = next(s for s in text_model.stages if isinstance(s, F.CountVectorizerModel))
    mleap_bridge.to_bundle(counts, tmp_path / "cv")
    return mleap_bridge.load_bundle(tmp_path / "cv")
