"""Bundles written by MLeap itself, from 0.8 to 0.25: they load, score as MLeap scores them, and
their ``to_spark`` conversion predicts what the numpy runtime predicts."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mleap_bridge

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "mleap"
BUNDLES = {  # file: (MLeap version that wrote it, writer)
    "airbnb.model.lr.zip": ("0.8.0-SNAPSHOT", "jvm"),
    "airbnb.model.rf.zip": ("0.8.0-SNAPSHOT", "jvm"),
    "demo.zip": ("0.8.1", "python"),
    "one_hot_encoder_pipeline.zip": ("0.8.1", "python"),
    "min_max_scaler_tf.zip": ("0.16.0-SNAPSHOT", "jvm"),
    "sklearn_multinomial_lr.zip": ("0.25.3", "python"),
}


def _airbnb_frame():
    frame = mleap_bridge.read_leapframe(FIXTURES / "frame.airbnb.json")
    variants = [frame.assign(state="CA", room_type="Private room", bedrooms=1.0, square_feet=400.0),
                frame.assign(cancellation_policy="flexible", bathrooms=1.0, review_scores_rating=70.0)]
    return pd.concat([frame, *variants], ignore_index=True)


SCORING = {  # file: (input frame, output column)
    "airbnb.model.lr.zip": (_airbnb_frame, "price_prediction"),
    "airbnb.model.rf.zip": (_airbnb_frame, "price_prediction"),
    "demo.zip": (lambda: pd.DataFrame({"demo:a": [44.5, 1.0, -2.0], "demo:c": [22.1, 3.0, 0.5],
                                       "demo:d": [98.2, 0.5, 0.0]}), "demo:prediction"),
    "one_hot_encoder_pipeline.zip": (lambda: pd.DataFrame({"col_1": ["A", "B", "C", "Q"]}), "col_1_label_one_hot_encoded"),
    "min_max_scaler_tf.zip": (lambda: pd.DataFrame({"dti": [0.5, 32256.0, -0.01], "loan_amount": [500.0, 9000.0, 1.2e6]}),
                              "scaled_features"),
    "sklearn_multinomial_lr.zip": (lambda: mleap_bridge.read_leapframe(FIXTURES / "frame.sklearn_multinomial_lr.json"),
                                   "label"),
}


@pytest.mark.parametrize("name", sorted(BUNDLES))
def test_mleap_bundles_of_every_version_load_and_score(name):
    model = mleap_bridge.load_bundle(FIXTURES / name)
    assert (model.bundle.version, model.bundle.writer) == BUNDLES[name]
    make_frame, column = SCORING[name]
    out = model.transform(make_frame())
    values = np.stack(out[column]) if out[column].dtype == object else out[column].to_numpy()
    assert np.isfinite(values).all() and len(out) == len(make_frame())


def test_random_forest_scores_what_mleap_scores():
    """MLeap's own test (TransformServiceSpec) expects 218.2767196535019 for this frame."""
    model = mleap_bridge.load_bundle(FIXTURES / "airbnb.model.rf.zip")
    assert [n.op for n in model.nodes][-1] == "random_forest_regression"
    frame = mleap_bridge.read_leapframe(FIXTURES / "frame.airbnb.json")
    assert model.transform(frame)["price_prediction"][0] == 218.2767196535019
    assert model.transform_row(frame.iloc[0].to_dict())["price_prediction"] == 218.2767196535019


def test_min_max_scaler_and_demo_values():
    scaled = mleap_bridge.load_bundle(FIXTURES / "min_max_scaler_tf.zip").transform(
        pd.DataFrame({"dti": [-0.01, 32256.0], "loan_amount": [500.0, 1200000.0]}))["scaled_features"]
    np.testing.assert_allclose(np.stack(scaled), [[0.0, 0.0], [1.0, 1.0]])  # min/max from the bundle, defaults 0..1
    demo = mleap_bridge.read_bundle(FIXTURES / "demo.zip")
    scaler, linear = demo.root.children[0].children[1], demo.root.children[1]
    x = np.array([1.0, 3.0, 0.5])
    expected = ((x - scaler.attr("mean", "tensor")) / scaler.attr("std", "tensor")) @ linear.attr("coefficients", "tensor") \
        + linear.attr("intercept", "double")
    frame = pd.DataFrame({"demo:a": [x[0]], "demo:c": [x[1]], "demo:d": [x[2]]})
    assert mleap_bridge.load_bundle(FIXTURES / "demo.zip").transform(frame)["demo:prediction"][0] == pytest.approx(expected)


@pytest.mark.spark
@pytest.mark.parametrize("name", sorted(BUNDLES))
def test_to_spark_predicts_what_the_runtime_predicts(spark, name):
    make_frame, column = SCORING[name]
    frame = make_frame()
    ours = mleap_bridge.load_bundle(FIXTURES / name).transform(frame)[column]
    theirs = mleap_bridge.to_spark(FIXTURES / name).transform(spark.createDataFrame(frame)).toPandas()[column]
    if ours.dtype == object:
        ours, theirs = np.stack(ours), np.stack(theirs.map(lambda v: v.toArray()))
    np.testing.assert_allclose(np.asarray(ours, dtype=float), np.asarray(theirs, dtype=float), rtol=1e-9, atol=1e-12)
