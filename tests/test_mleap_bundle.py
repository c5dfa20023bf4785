"""mleap_bridge: the Bundle.ML format and the numpy runtime, on bundles written by MLeap itself."""

import json
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mleap_bridge
from mleap_bridge import attributes as A
from spark_models.exceptions import MalformedModelError, NotSupportedError, SchemaEnforcementError

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "mleap"  # copied from ../shared/fixtures/mleap
AIRBNB = FIXTURES / "airbnb.model.lr.zip"
ONE_HOT = FIXTURES / "one_hot_encoder_pipeline.zip"



def test_attribute_values_decode_with_writer_defaults():
    assert A.decode({"double": 1.5}) == 1.5
    assert A.get({"intercept": {}}, "intercept", "double") == 0.0  # default value omitted by the writer
    assert A.get({}, "drop_last", "boolean") is False
    assert A.get({}, "mean", "tensor", None) is None
    assert A.decode({"type": "list", "string": ["a", "b"]}) == ["a", "b"]
    assert A.decode({"type": "list"}) == []
    t = A.decode(A.tensor(np.arange(6.0).reshape(2, 3)))
    assert t.shape == (2, 3) and t[1, 2] == 5.0


def test_old_mleap_bundles_load_and_score():
    model = mleap_bridge.load_bundle(AIRBNB)
    assert model.bundle.version == "0.8.0-SNAPSHOT"
    assert model.schema["outputs"][-1] == "price_prediction"
    assert set(model.schema["inputs"]) == {
        "bathrooms", "bedrooms", "security_deposit", "cleaning_fee", "extra_people", "number_of_reviews",
        "square_feet", "review_scores_rating", "room_type", "host_is_superhost", "cancellation_policy",
        "instant_bookable", "state",
    }
    frame = mleap_bridge.read_leapframe(FIXTURES / "frame.airbnb.json")
    out = model.transform(frame)
    assert list(out.columns[: len(frame.columns)]) == list(frame.columns)
    assert out["features_lr"][0].shape == (27,)
    assert out["state_index_oh"][0].tolist() == [0.0, 1.0] + [0.0] * 7  # NY is label 1 of 10, last dropped
    assert np.isfinite(out["price_prediction"][0])


def test_old_one_hot_encoder_and_keep_invalid():
    model = mleap_bridge.load_bundle(ONE_HOT)
    out = model.transform(pd.DataFrame({"col_1": ["A", "C", "unseen", None]}))
    assert out["col_1_label_le"].tolist() == [0.0, 2.0, 3.0, 3.0]  # handle_invalid keep
    assert [v.tolist() for v in out["col_1_label_one_hot_encoded"]] == [[1, 0, 0], [0, 0, 1], [0, 0, 0], [0, 0, 0]]


def test_error_names_node_and_column():
    model = mleap_bridge.load_bundle(AIRBNB)
    frame = mleap_bridge.read_leapframe(FIXTURES / "frame.airbnb.json")
    with pytest.raises(SchemaEnforcementError, match=r"string_indexer_state.*'Atlantis'.*'state'"):
        model.transform(frame.assign(state="Atlantis"))
    with pytest.raises(SchemaEnforcementError, match=r"needs input column 'bathrooms'"):
        model.transform(frame.drop(columns="bathrooms"))


def test_write_read_round_trip_dir_and_zip(tmp_path):
    bundle = mleap_bridge.read_bundle(AIRBNB)
    frame = mleap_bridge.read_leapframe(FIXTURES / "frame.airbnb.json")
    expected = mleap_bridge.load_bundle(AIRBNB).transform(frame)
    for target in (tmp_path / "dir_bundle", tmp_path / "bundle.zip"):
        mleap_bridge.write_bundle(bundle, target)
        again = mleap_bridge.load_bundle(target)
        pd.testing.assert_series_equal(again.transform(frame)["price_prediction"], expected["price_prediction"])
    with zipfile.ZipFile(tmp_path / "bundle.zip") as zf:
        assert "bundle.json" in zf.namelist() and "root/model.json" in zf.namelist()


def test_unsafe_zip_and_protobuf_are_refused(tmp_path):
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("bundle.json", "{}")
        zf.writestr("../escape.txt", "x")
    with pytest.raises(MalformedModelError, match=r"unsafe zip entry '\.\./escape\.txt'"):
        mleap_bridge.load_bundle(evil)
    assert not (tmp_path / "escape.txt").exists()
    proto = tmp_path / "proto"
    (proto / "root").mkdir(parents=True)
    (proto / "bundle.json").write_text(json.dumps({"format": "protobuf", "version": "0.25.0"}))
    with pytest.raises(NotSupportedError, match="format 'protobuf' is unsupported"):
        mleap_bridge.load_bundle(proto)


def test_unknown_op_names_op_and_node(tmp_path):
    node = mleap_bridge.Node("mystery_node", "quantum_encoder", inputs=[("input", "a")], outputs=[("output", "b")])
    mleap_bridge.write_bundle(mleap_bridge.Bundle(mleap_bridge.Node("p", "pipeline", children=[node]), "p"), tmp_path / "b")
    with pytest.raises(NotSupportedError, match="'quantum_encoder' \\(node 'mystery_node'\\)"):
        mleap_bridge.load_bundle(tmp_path / "b")


def test_leapframe_round_trip(tmp_path):
    frame = pd.DataFrame({"s": ["a", None], "x": [1.5, np.nan], "v": [np.array([1.0, 2.0]), np.array([3.0, 4.0])]})
    mleap_bridge.write_leapframe(frame, tmp_path / "f.json")
    back = mleap_bridge.read_leapframe(tmp_path / "f.json")
    assert back["s"].tolist() == ["a", None]
    assert back["x"][0] == 1.5 and np.isnan(back["x"][1])
    assert [v.tolist() for v in back["v"]] == [[1.0, 2.0], [3.0, 4.0]]
    census = mleap_bridge.read_leapframe(FIXTURES / "adult_census_leapframe.json")
    assert len(census) >= 1 and len(census.columns) > 3


def test_transform_row_matches_transform():
    model = mleap_bridge.load_bundle(AIRBNB)
    frame = mleap_bridge.read_leapframe(FIXTURES / "frame.airbnb.json")
    row = model.transform_row(frame.iloc[0].to_dict())
    assert row["price_prediction"] == model.transform(frame)["price_prediction"][0]
    assert row["state"] == "NY" and row["features_lr"].shape == (27,)
