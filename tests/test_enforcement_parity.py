"""Parity with real MLflow: the same model, the same input, the same accept/reject decision
and output dtypes, except where we differ on purpose (listed in DELIBERATE with the reason)."""

import numpy as np
import pandas as pd
import pytest

import spark_models.pyfunc
from spark_models.exceptions import SchemaEnforcementError
from tests.column_cases import COLUMNS

mlflow = pytest.importorskip("mlflow")
import mlflow.pyfunc  # noqa: E402, F811
from mlflow.exceptions import MlflowException  # noqa: E402
from mlflow.models import ModelSignature as MSig  # noqa: E402
from mlflow.types.schema import ColSpec as MCol, Schema as MSchema, TensorSpec as MTensor  # noqa: E402

# case id → why we differ from MLflow
DELIBERATE = {
    "str-as-boolean": "MLflow turns any non-empty string into True; we refuse",
    "bytes-as-boolean": "MLflow turns bytes into True; we refuse",
    "str-as-binary": "MLflow passes strings where bytes are declared; we refuse",
    "bytes-as-string": "MLflow passes bytes where strings are declared; we refuse",
    "obj_int-as-string": "MLflow passes ints where strings are declared; we refuse",
    "string-as-binary": "MLflow passes text where bytes are declared; we refuse",
    "string-as-string": "we hand models plain object strings (None for missing), MLflow keeps pandas' string dtype",
    "string_na-as-string": "as string-as-string",
    "py_datetime-as-string": "MLflow passes datetime objects where strings are declared; we refuse",
    "py_datetime-as-binary": "MLflow passes datetime objects where bytes are declared; we refuse",
    "string_na-as-binary": "MLflow passes text where bytes are declared; we refuse",
    "obj_int-as-binary": "MLflow passes ints where bytes are declared; we refuse",
    "unnamed-too-many": "MLflow silently drops trailing unnamed columns; by position an extra column is ambiguous, so we refuse",
    "single-row-long-as-double": "MLflow accepts int64 -> double only for one-row frames; we apply one rule whatever the batch size",
    # missing values reach the model in a dtype that can hold them (nullable Int32/Int64/boolean); MLflow refuses
    "Int32_na-as-integer": "nullable integers are accepted as pandas' Int32",
    "Int32_na-as-long": "nullable integers are accepted as pandas' Int64",
    "Int64_na-as-long": "nullable integers are accepted as pandas' Int64",
    "obj_int_na-as-long": "Python ints with None become pandas' Int64, exactly",
    "all_none-as-integer": "a column of only missing values is Int32 NA",
    "all_none-as-long": "a column of only missing values is Int64 NA",
    "all_none-as-float": "a column of only missing values is float NaN",
    "all_none-as-boolean": "MLflow passes the objects; we give pandas' boolean NA",
    "boolean_na-as-boolean": "pandas' nullable boolean is accepted as it is",
    "obj_bool_na-as-boolean": "MLflow passes the objects; we give pandas' boolean with NA",
    "decimal_whole-as-long": "whole Decimals (Spark's DecimalType(p, 0)) become integers",
    "obj_bool_na-as-double": "MLflow turns booleans into floats; booleans are not numbers here",
    "decimal-as-boolean": "MLflow passes Decimals where booleans are declared; we refuse",
    "decimal_whole-as-boolean": "as decimal-as-boolean",
    "iso_str-as-boolean": "MLflow passes text where booleans are declared; we refuse",
    "obj_int_na-as-string": "MLflow passes ints where strings are declared; we refuse",
    "obj_bool_na-as-string": "MLflow passes booleans where strings are declared; we refuse",
    "decimal-as-string": "MLflow passes Decimals where strings are declared; we refuse",
    "decimal_whole-as-string": "as decimal-as-string",
    "obj_int_na-as-binary": "MLflow passes ints where bytes are declared; we refuse",
    "obj_bool_na-as-binary": "MLflow passes booleans where bytes are declared; we refuse",
    "decimal-as-binary": "MLflow passes Decimals where bytes are declared; we refuse",
    "decimal_whole-as-binary": "as decimal-as-binary",
    "iso_str-as-binary": "MLflow passes text where bytes are declared; we refuse",
}

COLUMN_INPUTS = COLUMNS
TYPES = ["boolean", "integer", "long", "float", "double", "string", "binary", "datetime"]


class Echo(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        return model_input


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """One MLflow-written echo model per signature, loaded by MLflow and by us."""
    root = tmp_path_factory.mktemp("parity")
    out = {}

    def make(key, schema):
        path = str(root / key)
        mlflow.pyfunc.save_model(path, python_model=Echo(), signature=MSig(schema))
        out[key] = (mlflow.pyfunc.load_model(path), spark_models.pyfunc.load_model(path))

    for t in TYPES:
        make(t, MSchema([MCol(t, "x")]))
    make("named", MSchema([MCol("double", "a"), MCol("long", "b")]))
    make("unnamed", MSchema([MCol("double"), MCol("long")]))
    make("tensor", MSchema([MTensor(np.dtype("float32"), (-1, 2))]))
    return out


def _outcome(model, data, refusal):
    """("accept", dtypes, shape) or "reject"; only a deliberate refusal (``refusal``) counts as one,
    so a crash inside either library fails the test instead of passing as a rejection."""
    try:
        result = model.predict(data)
    except refusal:
        return "reject"
    if isinstance(result, pd.DataFrame):
        return ("accept", tuple(map(str, result.dtypes)), tuple(map(str, result.columns)))
    return ("accept", str(np.asarray(result).dtype), np.shape(result))


def _check(models, key, data, case_id):
    theirs_model, ours_model = models[key]
    theirs = _outcome(theirs_model, data, MlflowException)
    ours = _outcome(ours_model, data, SchemaEnforcementError)
    if case_id in DELIBERATE:
        assert theirs != ours, f"{case_id}: documented as different but now matches MLflow; update DELIBERATE"
    else:
        assert theirs == ours, f"{case_id}: MLflow {theirs} vs ours {ours}"


@pytest.mark.slow
@pytest.mark.parametrize("column", sorted(COLUMN_INPUTS))
def test_column_types_match_mlflow(models, column):
    for t in TYPES:
        _check(models, t, pd.DataFrame({"x": COLUMN_INPUTS[column]}), f"{column}-as-{t}")


STRUCTURE_CASES = {
    "named-exact": ("named", pd.DataFrame({"a": [1.0, 2.0], "b": [2, 3]})),
    "named-reordered": ("named", pd.DataFrame({"b": [2, 3], "a": [1.0, 2.0]})),
    "named-extra": ("named", pd.DataFrame({"b": [2, 3], "a": [1.0, 2.0], "c": ["x", "y"]})),
    "named-missing": ("named", pd.DataFrame({"a": [1.0, 2.0]})),
    "named-long-to-double-refused": ("named", pd.DataFrame({"a": [1, 2], "b": [2, 3]})),
    "single-row-long-as-double": ("named", pd.DataFrame({"a": [1], "b": [2]})),
    "unnamed-positional": ("unnamed", pd.DataFrame({"p": [1.0, 2.0], "q": [2, 3]})),
    "unnamed-too-many": ("unnamed", pd.DataFrame({"p": [1.0, 2.0], "q": [2, 3], "r": [3, 4]})),
    "tensor-ok": ("tensor", np.zeros((3, 2), np.float32)),
    "tensor-wrong-dtype": ("tensor", np.zeros((3, 2), np.float64)),
    "tensor-wrong-shape": ("tensor", np.zeros((3, 3), np.float32)),
}


@pytest.mark.slow
@pytest.mark.parametrize("case_id", sorted(STRUCTURE_CASES))
def test_structure_rules_match_mlflow(models, case_id):
    key, data = STRUCTURE_CASES[case_id]
    _check(models, key, data, case_id)
