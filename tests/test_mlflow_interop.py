"""Models cross between real MLflow (mlflow-skinny) and spark-models in both directions."""


import numpy as np
import pandas as pd
import pytest

import spark_models.pyfunc
import spark_models.sklearn
from spark_models.models import infer_signature
from tests.isolation import run_json, run_python

pytest.importorskip("mlflow")

# Written the way a user's notebook would: classes in __main__, so cloudpickle stores them by
# value, with references to mlflow.pyfunc.model.PythonModel and MLflow 3's wrappers.
WRITE_WITH_MLFLOW = r'''
import json, sys, numpy as np, pandas as pd, mlflow, mlflow.sklearn, mlflow.pyfunc
from mlflow.models import infer_signature
from sklearn.ensemble import RandomForestClassifier
root = sys.argv[1] if len(sys.argv) > 1 else "{root}"
rng = np.random.default_rng(0)
X = pd.DataFrame(rng.normal(size=(40, 3)), columns=["a", "b", "c"])
y = (X.a + X.b > 0).astype(int)
rf = RandomForestClassifier(n_estimators=5, random_state=0).fit(X, y)
mlflow.sklearn.save_model(rf, root + "/sk_skops", signature=infer_signature(X, rf.predict(X)), input_example=X.head(2), skops_trusted_types=["sklearn.tree._tree.Tree"])
mlflow.sklearn.save_model(rf, root + "/sk_cloudpickle", serialization_format="cloudpickle")
open(root + "/offset.txt", "w").write("2.5")

class Legacy(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        self.offset = float(open(context.artifacts["offset"]).read())
    def predict(self, context, model_input):
        return model_input * 2 + self.offset

class Modern(mlflow.pyfunc.PythonModel):
    def predict(self, model_input, params=None):
        return model_input.sum(axis=1) * (params or {{}}).get("k", 1)

mlflow.pyfunc.save_model(root + "/py_legacy", python_model=Legacy(), artifacts={{"offset": root + "/offset.txt"}})
mlflow.pyfunc.save_model(root + "/py_modern", python_model=Modern())
X.to_parquet(root + "/X.parquet")
preds = {{
    "sk_skops": mlflow.pyfunc.load_model(root + "/sk_skops").predict(X).tolist(),
    "sk_cloudpickle": mlflow.pyfunc.load_model(root + "/sk_cloudpickle").predict(X).tolist(),
    "py_legacy": mlflow.pyfunc.load_model(root + "/py_legacy").predict(X).values.tolist(),
    "py_modern": mlflow.pyfunc.load_model(root + "/py_modern").predict(X).tolist(),
}}
print(json.dumps(preds))
'''

READ_WITHOUT_MLFLOW = r'''
import json, pandas as pd, spark_models.pyfunc, spark_models.sklearn
from spark_models.models import Model
root = "{root}"
X = pd.read_parquet(root + "/X.parquet")
try:
    import mlflow
    raise SystemExit("mlflow should not be importable here")
except ModuleNotFoundError:
    pass
out = {{
    "sk_skops": spark_models.pyfunc.load_model(root + "/sk_skops").predict(X).tolist(),
    "sk_cloudpickle": spark_models.pyfunc.load_model(root + "/sk_cloudpickle").predict(X).tolist(),
    "py_legacy": spark_models.pyfunc.load_model(root + "/py_legacy").predict(X).values.tolist(),
    "py_modern": spark_models.pyfunc.load_model(root + "/py_modern").predict(X).tolist(),
    "native": spark_models.sklearn.load_model(root + "/sk_skops").predict(X).tolist(),
    "signature_inputs": [c.name for c in Model.load(root + "/sk_skops").signature.inputs],
    "example_rows": len(Model.load(root + "/sk_skops").load_input_example(root + "/sk_skops")),
}}
import sys
out["mlflow_loaded"] = any(m == "mlflow" or m.startswith("mlflow.") for m in sys.modules)
print(json.dumps(out))
'''


@pytest.mark.slow
def test_mlflow_written_models_load_where_mlflow_is_not_importable(tmp_path):
    expected = run_json(WRITE_WITH_MLFLOW.format(root=tmp_path))
    got = run_json(READ_WITHOUT_MLFLOW.format(root=tmp_path), blocked=("mlflow",))
    for key in ("sk_skops", "sk_cloudpickle", "py_legacy", "py_modern"):
        assert got[key] == expected[key], key
    assert got["native"] == expected["sk_skops"]
    assert got["signature_inputs"] == ["a", "b", "c"]
    assert got["example_rows"] == 2
    assert got["mlflow_loaded"] is False


@pytest.mark.slow
def test_skops_model_needs_skops(tmp_path):
    run_json(WRITE_WITH_MLFLOW.format(root=tmp_path))
    proc = run_python(f"import spark_models.pyfunc; spark_models.pyfunc.load_model({str(tmp_path / 'sk_skops')!r})", blocked=("mlflow", "skops"))
    assert proc.returncode != 0
    assert "MissingDependencyError" in proc.stderr and "pip install skops" in proc.stderr


class AddOne(spark_models.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        return model_input + 1


@pytest.mark.slow
def test_spark_models_written_models_load_in_mlflow(tmp_path):
    import mlflow.pyfunc
    from sklearn.linear_model import LogisticRegression

    X = pd.DataFrame({"a": [0.1, 0.9, 0.4, 0.7], "b": [1.0, 0.0, 1.0, 0.0]})
    lr = LogisticRegression().fit(X, [0, 1, 0, 1])
    sig = infer_signature(X, lr.predict(X))
    spark_models.sklearn.save_model(lr, tmp_path / "sk", signature=sig, input_example=X.head(2))
    spark_models.pyfunc.save_model(tmp_path / "py", python_model=AddOne(), input_example=X.head(2))

    ours = spark_models.pyfunc.load_model(tmp_path / "sk").predict(X)
    theirs = mlflow.pyfunc.load_model(str(tmp_path / "sk")).predict(X)
    np.testing.assert_array_equal(theirs, ours)
    pd.testing.assert_frame_equal(
        mlflow.pyfunc.load_model(str(tmp_path / "py")).predict(X),
        spark_models.pyfunc.load_model(tmp_path / "py").predict(X),
    )
    meta = mlflow.models.Model.load(str(tmp_path / "sk"))
    assert meta.signature.inputs.input_names() == ["a", "b"]
    assert meta.signature.outputs.inputs[0].type.name == "long"
    pd.testing.assert_frame_equal(meta.load_input_example(str(tmp_path / "sk")), X.head(2))
    # MLflow's own enforcement sees our signature: a missing column is refused by MLflow.
    with pytest.raises(Exception, match="b"):
        mlflow.pyfunc.load_model(str(tmp_path / "sk")).predict(X[["a"]])
