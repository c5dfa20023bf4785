"""Input examples: MLflow's files and MLmodel keys, loaded back as the kind of object saved."""

import base64
import json

import numpy as np
import pandas as pd
import pytest

import spark_models.pyfunc
from spark_models.models import Model, ModelSignature
from spark_models.types import ColSpec, Schema


class Echo(spark_models.pyfunc.PythonModel):
    def predict(self, context, model_input):
        return model_input


def _save(path, example, signature=None):
    spark_models.pyfunc.save_model(path, python_model=Echo(), input_example=example, signature=signature)
    return Model.load(path)


@pytest.mark.parametrize(
    "example",
    [
        pd.DataFrame({"a": [1.0, 2.0], "s": ["x", "y"]}),
        pd.DataFrame({"t": pd.to_datetime(["2020-01-01 10:00:00", "2021-06-30 00:00:00"]), "b": [b"\x00\xff", b"z"]}),
        {"a": 1.0, "s": "x"},
        {"a": [1.0, 2.0], "s": ["x", "y"]},
        [{"a": 1.0, "s": "x"}, {"a": 2.0, "s": "y"}],
        [[1.0, 2.0], [3.0, 4.0]],
        np.arange(6, dtype=np.float32).reshape(3, 2),
        {"img": np.zeros((2, 2), np.float32), "ids": np.array([1, 2])},
    ],
    ids=["dataframe", "datetime-binary", "record", "dict", "records", "list", "ndarray", "tensor-dict"],
)
def test_round_trip_returns_the_kind_saved(tmp_model_dir, example):
    meta = _save(tmp_model_dir, example)
    loaded = meta.load_input_example(tmp_model_dir)
    assert type(loaded) is type(example)
    if isinstance(example, pd.DataFrame):
        pd.testing.assert_frame_equal(loaded, example)
    elif isinstance(example, np.ndarray):
        np.testing.assert_array_equal(loaded, example)
    elif isinstance(example, dict) and isinstance(next(iter(example.values())), np.ndarray):
        assert {k: v.tolist() for k, v in loaded.items()} == {k: v.tolist() for k, v in example.items()}
    else:
        assert loaded == example


def test_files_and_mlmodel_keys_match_mlflow(tmp_model_dir):
    meta = _save(tmp_model_dir, pd.DataFrame({"a": [1.0], "b": [b"bin"]}))
    info = meta.saved_input_example_info
    assert info["artifact_path"] == "input_example.json" and info["type"] == "dataframe" and info["pandas_orient"] == "split"
    payload = json.loads((tmp_model_dir / "input_example.json").read_text())
    assert payload == {"columns": ["a", "b"], "data": [[1.0, base64.b64encode(b"bin").decode()]]}
    serving = json.loads((tmp_model_dir / "serving_input_example.json").read_text())
    assert serving == {"dataframe_split": payload}
    # bytes come back as bytes (decoded via the signature's binary column)
    assert meta.load_input_example(tmp_model_dir)["b"].tolist() == [b"bin"]


def test_tensor_example_file(tmp_model_dir):
    meta = _save(tmp_model_dir, np.array([[1, 2]], dtype=np.int64))
    assert json.loads((tmp_model_dir / "input_example.json").read_text()) == [[1, 2]]  # MLflow 3's form
    assert json.loads((tmp_model_dir / "serving_input_example.json").read_text()) == {"inputs": [[1, 2]]}
    assert meta.saved_input_example_info["type"] == "ndarray"


def test_reads_mlflow_2_tensor_example(tmp_model_dir):
    meta = _save(tmp_model_dir, np.array([[1.0, 2.0]]))
    (tmp_model_dir / "input_example.json").write_text('{"inputs": [[3.0, 4.0]]}')
    meta.saved_input_example_info.pop("input_kind")  # as MLflow 2 wrote it
    np.testing.assert_array_equal(meta.load_input_example(tmp_model_dir), np.array([[3.0, 4.0]]))


def test_signature_inferred_from_example_and_model_output(tmp_model_dir):
    meta = _save(tmp_model_dir, pd.DataFrame({"a": np.array([1, 2], dtype="int32")}))
    assert meta.signature == ModelSignature(Schema([ColSpec("integer", "a")]), Schema([ColSpec("integer", "a")]))


def test_given_signature_wins(tmp_model_dir):
    sig = ModelSignature(Schema([ColSpec("double", "a")]))
    assert _save(tmp_model_dir, pd.DataFrame({"a": [1.0]}), sig).signature == sig


def test_mlflow_reads_our_examples(tmp_path):
    mlflow_models = pytest.importorskip("mlflow.models")
    df = pd.DataFrame({"a": [1.0, 2.0], "s": ["x", "y"]})
    _save(tmp_path / "df", df)
    pd.testing.assert_frame_equal(mlflow_models.Model.load(str(tmp_path / "df")).load_input_example(str(tmp_path / "df")), df)
    arr = np.arange(4, dtype=np.float64).reshape(2, 2)
    _save(tmp_path / "nd", arr)
    np.testing.assert_array_equal(mlflow_models.Model.load(str(tmp_path / "nd")).load_input_example(str(tmp_path / "nd")), arr)


def test_we_read_mlflow_examples(tmp_path):
    mlflow_pyfunc = pytest.importorskip("mlflow.pyfunc")

    class MEcho(mlflow_pyfunc.PythonModel):
        def predict(self, context, model_input, params=None):
            return model_input

    df = pd.DataFrame({"a": [1.0, 2.0], "s": ["x", "y"]})
    mlflow_pyfunc.save_model(str(tmp_path / "df"), python_model=MEcho(), input_example=df)
    pd.testing.assert_frame_equal(Model.load(tmp_path / "df").load_input_example(tmp_path / "df"), df)
    arr = np.arange(4, dtype=np.float64).reshape(2, 2)
    mlflow_pyfunc.save_model(str(tmp_path / "nd"), python_model=MEcho(), input_example=arr)
    np.testing.assert_array_equal(Model.load(tmp_path / "nd").load_input_example(tmp_path / "nd"), arr)
