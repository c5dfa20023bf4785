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


# ---- non-finite numbers, strict JSON, unsafe zips ---------------------------------------

def test_null_doubles_read_as_nan_like_mleap():
    """MLeap's JSON library writes NaN/±inf as null and reads null back as NaN."""
    assert np.isnan(A.decode({"double": None}))
    assert np.isnan(A.get({"missing_value": {"double": None}}, "missing_value", "double"))
    assert A.get({"missing_value": {}}, "missing_value", "double") == 0.0  # omitted default is still 0.0
    assert np.isnan(A.decode({"type": "list", "double": [None, 1.0]})[0])
    assert np.isnan(A.decode({"type": "tensor", "double": [None, 1.0], "shape": {"dimensions": [{"size": 2}]}})[0])
    assert A.scalar("double", float("nan")) == {"double": None}
    assert A.listed("double", [float("-inf"), 0.0, float("inf")]) == {"type": "list", "double": [None, 0.0, None]}
    assert A.tensor([1.0, float("nan")])["double"] == [1.0, None]


def test_writer_refuses_non_finite_json_naming_the_node(tmp_path):
    node = mleap_bridge.Node("bad_node", "binarizer", {"threshold": {"double": float("nan")}},
                             [("input", "x")], [("output", "y")])
    with pytest.raises(MalformedModelError, match=r"'bad_node' \(op 'binarizer'\), model\.json.*non-finite"):
        mleap_bridge.write_bundle(mleap_bridge.Bundle(node, "b"), tmp_path / "b")


def test_absolute_zip_entries_are_refused(tmp_path):
    evil = tmp_path / "abs.zip"
    target = tmp_path / "pwned.txt"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("bundle.json", "{}")
        zf.writestr(str(target), "x")  # an absolute path
    with pytest.raises(MalformedModelError, match="unsafe zip entry"):
        mleap_bridge.load_bundle(evil)
    assert not target.exists()


def test_bundle_writer_is_recognised():
    """The mleap package's scikit-learn writer (indent=3) lays matrices out row-major; the JVM column-major."""
    assert mleap_bridge.read_bundle(FIXTURES / "demo.zip").writer == "python"  # mleap 0.8.1, scikit-learn
    assert mleap_bridge.read_bundle(FIXTURES / "sklearn_multinomial_lr.zip").writer == "python"  # mleap 0.25.3
    assert mleap_bridge.read_bundle(AIRBNB).writer == "jvm"  # MLeap 0.8 from Spark
    assert mleap_bridge.read_bundle(FIXTURES / "min_max_scaler_tf.zip").writer == "jvm"  # MLeap 0.16


def test_python_written_matrices_become_column_major(tmp_path):
    """Re-writing a scikit-learn bundle gives MLeap's (JVM) layout, so MLeap and we read it the same."""
    source = mleap_bridge.read_bundle(FIXTURES / "sklearn_multinomial_lr.zip")
    frame = mleap_bridge.read_leapframe(FIXTURES / "frame.sklearn_multinomial_lr.json")
    mleap_bridge.write_bundle(source, tmp_path / "again")
    again = mleap_bridge.load_bundle(tmp_path / "again")
    assert again.bundle.writer == "jvm"
    np.testing.assert_array_equal(again.transform(frame)["label"], frame["expected_label"])


# ---- LeapFrames -------------------------------------------------------------------------

def test_adult_census_leapframe_is_typed():
    census = mleap_bridge.read_leapframe(FIXTURES / "adult_census_leapframe.json")
    raw = json.loads((FIXTURES / "adult_census_leapframe.json").read_text())
    assert list(census.columns) == [f["name"] for f in raw["schema"]["fields"]]
    assert census.iloc[0].tolist() == raw["rows"][0] == [17, "Private", 340, "12th", "Never-married", 0, 25, "<=50K"]
    assert census["age"].dtype == np.int32 and census["workclass"].dtype == object  # MLeap's "integer" is 32-bit
    assert mleap_bridge.write_leapframe(census) == raw  # types and values written back as MLeap wrote them


def test_leapframe_non_nullable_sparse_and_list_fields(tmp_path):
    """Field types as MLeap's JsonSupport writes them: non-nullable scalars, sparse tensors, lists."""
    frame = {"schema": {"fields": [
        {"name": "x", "type": {"type": "basic", "base": "double", "isNullable": False}},
        {"name": "n", "type": {"type": "basic", "base": "long", "isNullable": False}},
        {"name": "k", "type": "integer"},
        {"name": "v", "type": {"type": "tensor", "base": "double", "isNullable": False, "dimensions": [3]}},
        {"name": "words", "type": {"type": "list", "base": "string"}},
    ]}, "rows": [
        [1.5, 7, None, {"indices": [[2]], "values": [4.0], "dimensions": [3]}, ["a", "b"]],
        [2.5, 8, 3, {"values": [1.0, 2.0, 3.0], "dimensions": [3]}, ["c"]],
    ]}
    df = mleap_bridge.read_leapframe(frame)
    assert df["x"].dtype == np.float64 and df["n"].dtype == np.int64 and str(df["k"].dtype) == "Int32"
    assert [v.tolist() for v in df["v"]] == [[0.0, 0.0, 4.0], [1.0, 2.0, 3.0]]
    assert df["words"].tolist() == [["a", "b"], ["c"]]
    back = mleap_bridge.write_leapframe(df, tmp_path / "f.json")
    assert back["schema"] == frame["schema"]
    assert back["rows"][0][:3] == [1.5, 7, None] and back["rows"][0][3] == {"values": [0.0, 0.0, 4.0], "dimensions": [3]}
    assert json.loads((tmp_path / "f.json").read_text()) == back
    with pytest.raises(MalformedModelError, match="field 'q': unknown type"):
        mleap_bridge.read_leapframe({"schema": {"fields": [{"name": "q", "type": {"type": "struct"}}]}, "rows": [[1]]})


def test_leapframe_types_of_plain_dataframes():
    df = pd.DataFrame({"d": [1.0, np.nan], "i32": np.array([1, 2], dtype=np.int32), "i": [1, 2], "b": [True, False],
                       "s": ["a", None], "v": [np.array([1.0, 2.0]), np.array([3.0, 4.0])]})
    frame = mleap_bridge.write_leapframe(df)
    assert [f["type"] for f in frame["schema"]["fields"]] == [
        "double", "integer", "long", "boolean", "string", {"type": "tensor", "base": "double", "dimensions": [2]}]
    assert frame["rows"][1][:5] == [None, 2, 2, False, None]


def test_schema_has_column_types():
    schema = mleap_bridge.load_bundle(AIRBNB).schema
    types = schema["types"]
    assert set(types) == set(schema["inputs"]) | set(schema["outputs"])
    assert types["state"] == "string" and types["bathrooms"] == "double"
    assert types["state_index"] == "double" and types["state_index_oh"] == "vector"
    assert types["features_lr"] == "vector" and types["price_prediction"] == "double"


def test_java_regex_translation():
    from mleap_bridge.java_regex import compile_java

    assert compile_java(r"\p{L}+", "n").findall("Ünïcode wörds, 42 Ω") == ["Ünïcode", "wörds", "Ω"]
    assert compile_java(r"[\p{Alpha}\d]+", "n").findall("ab1 Üc") == ["ab1", "c"]  # Java's POSIX classes are ASCII
    assert compile_java(r"\P{Digit}+", "n").findall("ab12c") == ["ab", "c"]
    assert compile_java(r"\QA.B\E", "n").findall("A.B AxB") == ["A.B"]
    assert compile_java(r"(?<w>a)\k<w>", "n").search("xaa").group(0) == "aa"
    assert compile_java(r"\w+", "n").findall("wörd") == ["w", "rd"]  # \w is ASCII in Java
    for pattern, reason in ((r"[a-z&&[^e]]", "intersection"), (r"\p{IsLatin}", r"\\p\{IsLatin\}"),
                            (r"[\P{L}]", "inside a character class"), ("(unclosed", "missing")):
        with pytest.raises(NotSupportedError, match=rf"node 'tok'.*{reason}"):
            compile_java(pattern, "tok")
