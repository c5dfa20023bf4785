"""Types, schemas and signatures: construction rules and MLflow-identical JSON."""

import numpy as np
import pytest

from spark_models.exceptions import SchemaError
from spark_models.models import ModelSignature
from spark_models.types import ColSpec, DataType, ParamSchema, ParamSpec, Schema, TensorSpec

# The reference doc's two MLmodel excerpts.
IRIS_INPUTS = '[{"name": "sepal length (cm)", "type": "double"}, {"name": "sepal width (cm)", "type": "double"}, {"name": "petal length (cm)", "type": "double"}, {"name": "petal width (cm)", "type": "double"}]'
MNIST = {"inputs": '[{"name": "images", "dtype": "uint8", "shape": [-1, 28, 28, 1]}]', "outputs": '[{"shape": [-1, 10], "dtype": "float32"}]'}


def test_reference_doc_column_signature():
    sig = ModelSignature.from_dict({"inputs": IRIS_INPUTS, "outputs": '[{"type": "integer"}]'})
    assert sig.inputs.input_names() == ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]
    assert sig.inputs.input_types() == [DataType.double] * 4
    assert sig.outputs == Schema([ColSpec("integer")])


def test_reference_doc_tensor_signature_mlflow_1x_form():
    sig = ModelSignature.from_dict(MNIST)
    assert sig.inputs == Schema([TensorSpec(np.uint8, (-1, 28, 28, 1), "images")])
    assert sig.outputs == Schema([TensorSpec(np.float32, (-1, 10))])
    # Written back in the current form, which MLflow 2/3 read.
    assert sig.to_dict()["inputs"] == '[{"name": "images", "type": "tensor", "tensor-spec": {"dtype": "uint8", "shape": [-1, 28, 28, 1]}}]'


def test_json_identical_to_mlflow():
    mlflow_types = pytest.importorskip("mlflow.types.schema")
    M = mlflow_types
    cases = [
        (Schema([ColSpec("double", "a"), ColSpec("long", "b", required=False)]), M.Schema([M.ColSpec("double", "a"), M.ColSpec("long", "b", required=False)])),
        (Schema([ColSpec("string")]), M.Schema([M.ColSpec("string")])),
        (Schema([TensorSpec(np.float32, (-1, 28), "img")]), M.Schema([M.TensorSpec(np.dtype("float32"), (-1, 28), "img")])),
        (Schema([TensorSpec(np.int64, (-1,))]), M.Schema([M.TensorSpec(np.dtype("int64"), (-1,))])),
    ]
    for ours, theirs in cases:
        assert ours.to_json() == theirs.to_json()
        assert Schema.from_json(theirs.to_json()) == ours
        assert M.Schema.from_json(ours.to_json()) == theirs
    ours_p = ParamSchema([ParamSpec("t", "double", 0.5), ParamSpec("l", "string", ["a"], (-1,))])
    theirs_p = M.ParamSchema([M.ParamSpec("t", "double", 0.5), M.ParamSpec("l", "string", ["a"], (-1,))])
    assert ours_p.to_json() == theirs_p.to_json()
    assert ParamSchema.from_json(theirs_p.to_json()) == ours_p
    from mlflow.models import ModelSignature as MSig

    sig = ModelSignature(cases[0][0], Schema([ColSpec("long")]), ours_p)
    assert MSig.from_dict(sig.to_dict()).to_dict() == sig.to_dict()


def test_malformed_nested_types_give_clear_errors():
    """MLflow 3's array/object/map types read (tests/test_nested_types.py); malformed ones are named."""
    tags = Schema.from_json('[{"type": "array", "items": {"type": "string"}, "name": "tags", "required": true}]')
    assert repr(tags) == "['tags': Array(string)]"
    with pytest.raises(SchemaError, match="Signature inputs.*at least one property"):
        ModelSignature.from_dict({"inputs": '[{"type": "object", "name": "o", "properties": {}}]'})
    with pytest.raises(SchemaError, match="Unsupported column type 'decimal'"):
        Schema.from_json('[{"type": "array", "items": {"type": "decimal"}, "name": "d", "required": true}]')
    with pytest.raises(SchemaError, match="not valid JSON"):
        Schema.from_json("[{")


def test_schema_rules():
    with pytest.raises(SchemaError, match="mix"):
        Schema([ColSpec("double", "a"), TensorSpec(np.float32, (-1,), "b")])
    with pytest.raises(SchemaError, match="all or none"):
        Schema([ColSpec("double", "a"), ColSpec("double")])
    with pytest.raises(SchemaError, match="Duplicate"):
        Schema([ColSpec("double", "a"), ColSpec("long", "a")])
    with pytest.raises(SchemaError, match="Unsupported column type 'decimal'"):
        ColSpec("decimal", "x")
    with pytest.raises(SchemaError, match="object dtype"):
        TensorSpec(object, (-1,))
    s = Schema([ColSpec("double", "a"), ColSpec("long", "b", required=False)])
    assert s.required_input_names() == ["a"] and s.optional_input_names() == ["b"]


@pytest.mark.parametrize(
    "dtype, numpy, arrow",
    [
        (DataType.boolean, np.bool_, "bool"),
        (DataType.integer, np.int32, "int32"),
        (DataType.long, np.int64, "int64"),
        (DataType.float, np.float32, "float"),
        (DataType.double, np.float64, "double"),
        (DataType.string, object, "string"),
        (DataType.binary, object, "binary"),
        (DataType.datetime, "datetime64[ns]", "timestamp[ns]"),
    ],
)
def test_type_mappings(dtype, numpy, arrow):
    assert dtype.to_numpy() == np.dtype(numpy)
    assert str(dtype.to_arrow()) == arrow
    assert dtype.to_spark().typeName() in {"boolean", "integer", "long", "float", "double", "string", "binary", "timestamp"}
