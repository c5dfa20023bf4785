"""The MLmodel file: fields, round trips, files written by other tools, bad files."""

import datetime as dt

import pytest
import yaml

from spark_models.exceptions import FlavorNotFoundError, MalformedModelError, ModelNotFoundError, SparkModelsError
from spark_models.models import Model, ModelSignature
from spark_models.types import ColSpec, Schema

# The reference doc's sklearn example (an MLflow 1.x file), verbatim.
REFERENCE_MLMODEL = """time_created: 2018-05-25T17:28:53.35

flavors:
  sklearn:
    sklearn_version: 0.19.1
    pickled_model: model.pkl
  python_function:
    loader_module: mlflow.sklearn
"""


def test_reads_reference_doc_mlflow_1x_file(tmp_path):
    (tmp_path / "MLmodel").write_text(REFERENCE_MLMODEL)
    m = Model.load(tmp_path)
    assert m.get_flavor("sklearn") == {"sklearn_version": "0.19.1", "pickled_model": "model.pkl"}
    assert m.get_flavor("python_function")["loader_module"] == "mlflow.sklearn"
    assert m.time_created == dt.datetime(2018, 5, 25, 17, 28, 53, 350000)
    # Nothing invented on load: no uuid, no utc_time_created, no versions.
    assert m.model_uuid is None and m.utc_time_created is None and m.mlflow_version is None


def test_round_trip_keeps_unknown_fields(tmp_path):
    content = yaml.safe_load(REFERENCE_MLMODEL)
    content.update(
        {
            "prompts": None,
            "model_size_bytes": 815,
            "some_future_field": {"nested": [1, 2, 3]},
            "run_id": "abc",
            "signature": {"inputs": '[{"type": "double", "name": "x", "required": true}]', "outputs": None, "params": None},
        }
    )
    (tmp_path / "MLmodel").write_text(yaml.safe_dump(content))
    m = Model.load(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    m.save(out)
    again = yaml.safe_load((out / "MLmodel").read_text())
    for key in ("some_future_field", "model_size_bytes", "time_created", "run_id", "flavors"):
        assert again[key] == content[key], key
    assert "prompts" in again  # a null unknown field survives too
    assert Model.load(out).signature.inputs == Schema([ColSpec("double", "x")])


def test_new_model_fields(monkeypatch, tmp_path):
    monkeypatch.setenv("DATABRICKS_RUNTIME_VERSION", "15.4")
    sig = ModelSignature(Schema([ColSpec("long", "a")]))
    m = Model(run_id="r1", signature=sig, metadata={"team": "x"}).add_flavor("python_function", loader_module="m")
    m.save(tmp_path)
    d = yaml.safe_load((tmp_path / "MLmodel").read_text())
    assert d["databricks_runtime"] == "15.4"
    assert d["run_id"] == "r1" and d["metadata"] == {"team": "x"}
    assert len(d["model_uuid"]) == 32
    created = dt.datetime.fromisoformat(d["utc_time_created"])
    assert abs(created - dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)) < dt.timedelta(minutes=1)
    assert d["signature"]["inputs"] == '[{"type": "long", "name": "a", "required": true}]'
    assert d["spark_models_version"]


def test_save_to_file_path(tmp_path):
    target = tmp_path / "custom_name.yaml"
    Model().add_flavor("x", a=1).save(target)
    assert yaml.safe_load(target.read_text())["flavors"] == {"x": {"a": 1}}


def test_get_flavor_lists_present_flavors():
    m = Model().add_flavor("sklearn").add_flavor("python_function", loader_module="x")
    with pytest.raises(FlavorNotFoundError, match=r"no 'spark' flavor.*python_function, sklearn"):
        m.get_flavor("spark")


def test_missing_directory_and_missing_mlmodel(tmp_path):
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        Model.load(tmp_path / "nope")
    with pytest.raises(ModelNotFoundError, match="has no MLmodel file"):
        Model.load(tmp_path)


def test_malformed_yaml_names_file_and_line(tmp_path):
    (tmp_path / "MLmodel").write_text("flavors:\n  sklearn: {a: 1\n  other: [\n")
    with pytest.raises(MalformedModelError) as e:
        Model.load(tmp_path)
    assert "MLmodel" in str(e.value) and "line" in str(e.value)
    assert isinstance(e.value, SparkModelsError)


@pytest.mark.parametrize(
    "content, message",
    [
        ("just a string", "must be a YAML mapping"),
        ("run_id: x\n", "no 'flavors'"),
        ("flavors:\n  sklearn: 3\n", "flavor 'sklearn' must be a mapping"),
        ("flavors:\n  a: {}\nsignature:\n  inputs: '[{\"type\": \"decimal\", \"name\": \"x\"}]'\n", "Unsupported column type 'decimal'"),
    ],
)
def test_invalid_content(tmp_path, content, message):
    (tmp_path / "MLmodel").write_text(content)
    with pytest.raises(MalformedModelError, match=message):
        Model.load(tmp_path)
