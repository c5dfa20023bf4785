"""Bundles written by the mleap PyPI package's scikit-learn serializers (an independent producer)."""

import numpy as np
import pandas as pd
import pytest

import mleap_bridge

pytest.importorskip("mleap.sklearn")
from sklearn.linear_model import LinearRegression, LogisticRegression  # noqa: E402
from sklearn.pipeline import Pipeline  # noqa: E402
from sklearn.preprocessing import MinMaxScaler, StandardScaler  # noqa: E402

import mleap.sklearn.base  # noqa: E402,F401  (adds mlinit / serialize_to_bundle)
import mleap.sklearn.logistic  # noqa: E402,F401
import mleap.sklearn.pipeline  # noqa: E402,F401
import mleap.sklearn.preprocessing.data  # noqa: E402,F401
from mleap.sklearn.preprocessing.data import FeatureExtractor  # noqa: E402


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(80, 3)), columns=["a", "b", "c"])
    return X, X.a * 2 - X.b + rng.normal(0, 0.1, 80)


def _bundle(steps, X, y, tmp_path):
    pipe = Pipeline([(s.name, s) for s in steps])
    pipe.mlinit()
    pipe.fit(X, y)
    pipe.serialize_to_bundle(str(tmp_path), "sk", init=True)
    return pipe, mleap_bridge.load_bundle(tmp_path / "sk.zip")


def test_scaler_and_linear_regression(data, tmp_path):
    X, y = data
    fe = FeatureExtractor(input_scalars=["a", "b", "c"], output_vector="features")
    scaler = StandardScaler()
    scaler.mlinit(prior_tf=fe, output_features="scaled")
    lr = LinearRegression()
    lr.mlinit(input_features="scaled", prediction_column="pred")
    pipe, bundle = _bundle([fe, scaler, lr], X, y.to_frame(), tmp_path)  # mleap needs a 2-D target here
    np.testing.assert_allclose(bundle.transform(X)["pred"], pipe.predict(X).ravel(), rtol=1e-9)


def test_min_max_scaler_and_logistic_regression(data, tmp_path):
    X, y = data
    fe = FeatureExtractor(input_scalars=["a", "b", "c"], output_vector="features")
    scaler = MinMaxScaler()
    scaler.mlinit(prior_tf=fe, output_features="scaled")
    clf = LogisticRegression()
    clf.mlinit(input_features="scaled", prediction_column="label")
    pipe, bundle = _bundle([fe, scaler, clf], X, (y > 0).astype(int), tmp_path)
    out = bundle.transform(X)
    np.testing.assert_array_equal(out["label"].to_numpy(), pipe.predict(X))


def test_multinomial_logistic_regression_row_major_matrix(data, tmp_path):
    """mleap.sklearn writes coef_ row-major (MLeap's JVM writers: column-major); both must score right."""
    X, _ = data
    y = np.digitize(X.a + 0.5 * X.b - X.c, [-0.5, 0.5])
    fe = FeatureExtractor(input_scalars=["a", "b", "c"], output_vector="features")
    clf = LogisticRegression(max_iter=500)
    clf.mlinit(input_features="features", prediction_column="label")
    pipe, bundle = _bundle([fe, clf], X, y, tmp_path)
    assert bundle.bundle.writer == "python" and len(set(y)) == 3
    np.testing.assert_array_equal(bundle.transform(X)["label"].to_numpy(), pipe.predict(X))


def test_committed_current_mleap_fixture_scores_like_scikit_learn():
    """A bundle written by mleap 0.25.3 (tests/fixtures/mleap/make_sklearn_fixture.py)."""
    from pathlib import Path

    fixtures = Path(__file__).resolve().parent / "fixtures" / "mleap"
    bundle = mleap_bridge.load_bundle(fixtures / "sklearn_multinomial_lr.zip")
    frame = mleap_bridge.read_leapframe(fixtures / "frame.sklearn_multinomial_lr.json")
    assert bundle.bundle.version == "0.25.3" and set(frame["expected_label"]) == {0.0, 1.0, 2.0}
    np.testing.assert_array_equal(bundle.transform(frame)["label"], frame["expected_label"])


def test_pca_components_layout(data, tmp_path):
    """mleap.sklearn writes components_ (k × features) row-major; the bundle projects x onto them.

    (Its serializer does not store mean_, so the bundle computes x @ components_.T without centring.)"""
    import mleap.sklearn.decomposition.pca  # noqa: F401
    from sklearn.decomposition import PCA

    X, _ = data
    X = X.assign(d=X.a * 0.5 + X.b)
    fe = FeatureExtractor(input_scalars=["a", "b", "c", "d"], output_vector="features")
    pca = PCA(n_components=2)
    pca.mlinit(input_features="features", prediction_column="pcs")
    pipe, bundle = _bundle([fe, pca], X, None, tmp_path)
    got = np.stack(bundle.transform(X)["pcs"])
    np.testing.assert_allclose(got, X.to_numpy() @ pca.components_.T, rtol=1e-9)
