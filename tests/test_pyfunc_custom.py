"""Custom PythonModel models: the reference doc's examples, both predict forms, artifacts."""

import textwrap

import numpy as np
import pandas as pd
import pytest

import spark_models.pyfunc
import spark_models.pyfunc.model
from spark_models.exceptions import ArtifactNotFoundError, InvalidArgumentError
from spark_models.flavors.testing import check_flavor
from spark_models.mlmodel import Model

# The reference doc's "add n" example with only `mlflow` renamed.
ADD_N_EXAMPLE = '''
import mlflow.pyfunc

# Define the model class
class AddN(mlflow.pyfunc.PythonModel):

    def __init__(self, n):
        self.n = n

    def predict(self, context, model_input):
        return model_input.apply(lambda column: column + self.n)

# Construct and save the model
model_path = "add_n_model"
add5_model = AddN(n=5)
mlflow.pyfunc.save_model(path=model_path, python_model=add5_model)

# Load the model in `python_function` format
loaded_model = mlflow.pyfunc.load_model(model_path)

# Evaluate the model
import pandas as pd
model_input = pd.DataFrame([range(10)])
model_output = loaded_model.predict(model_input)
assert model_output.equals(pd.DataFrame([range(5, 15)]))
'''


def test_reference_add_n_example_runs_with_only_the_import_changed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = ADD_N_EXAMPLE.replace("mlflow", "spark_models")
    exec(compile(code, "add_n_example", "exec"), {"__name__": "add_n_example"})
    meta = Model.load(tmp_path / "add_n_model")
    assert meta.get_flavor("python_function")["loader_module"] == "spark_models.pyfunc.model"


# The reference doc's XGBWrapper pattern (artifact file + load_context + conda_env), with a
# scikit-learn model in the artifact instead of xgboost.
WRAPPER_EXAMPLE = '''
from sys import version_info
import skops.io
from sklearn import datasets
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.model_selection import train_test_split

PYTHON_VERSION = "{major}.{minor}.{micro}".format(major=version_info.major, minor=version_info.minor, micro=version_info.micro)
iris = datasets.load_iris()
x = iris.data[:, 2:]
y = iris.target
x_train, x_test, y_train, _ = train_test_split(x, y, test_size=0.2, random_state=42)
gb_model = GradientBoostingClassifier(n_estimators=10, max_depth=3).fit(x_train, y_train)
gb_model_path = "gb_model.skops"
skops.io.dump(gb_model, gb_model_path)
artifacts = {"gb_model": gb_model_path}

import mlflow.pyfunc
class GBWrapper(mlflow.pyfunc.PythonModel):

    def load_context(self, context):
        import skops.io
        self.gb_model = skops.io.load(context.artifacts["gb_model"], trusted=skops.io.get_untrusted_types(file=context.artifacts["gb_model"]))

    def predict(self, context, model_input):
        return self.gb_model.predict_proba(model_input.values)

import cloudpickle, sklearn
conda_env = {
    'channels': ['defaults'],
    'dependencies': ['python={}'.format(PYTHON_VERSION), 'pip', {'pip': ['mlflow', 'scikit-learn=={}'.format(sklearn.__version__), 'cloudpickle=={}'.format(cloudpickle.__version__)]}],
    'name': 'gb_env'
}
mlflow_pyfunc_model_path = "gb_mlflow_pyfunc"
mlflow.pyfunc.save_model(path=mlflow_pyfunc_model_path, python_model=GBWrapper(), artifacts=artifacts, conda_env=conda_env)
loaded_model = mlflow.pyfunc.load_model(mlflow_pyfunc_model_path)
import pandas as pd
test_predictions = loaded_model.predict(pd.DataFrame(x_test))
expected = gb_model.predict_proba(x_test)
'''


def test_reference_wrapper_example(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    scope = {"__name__": "wrapper_example"}
    exec(compile(WRAPPER_EXAMPLE.replace("mlflow", "spark_models"), "wrapper_example", "exec"), scope)
    np.testing.assert_allclose(scope["test_predictions"], scope["expected"])
    model_dir = tmp_path / "gb_spark_models_pyfunc"  # the rename reached the path too
    assert (model_dir / "artifacts" / "gb_model.skops").is_file()
    assert (model_dir / "requirements.txt").read_text().splitlines()[0] == "spark_models"  # as given (renamed)
    art = Model.load(model_dir).get_flavor("python_function")["artifacts"]["gb_model"]
    assert art == {"path": "artifacts/gb_model.skops", "uri": "gb_model.skops"}


class Mlflow3Style(spark_models.pyfunc.PythonModel):
    """MLflow 3's form: no context argument, params keyword."""

    def predict(self, model_input, params=None):
        scale = (params or {}).get("scale", 1.0)
        return model_input["x"] * scale


class ContextWithParams(spark_models.pyfunc.PythonModel):
    def load_context(self, context):
        self.offset = float(open(context.artifacts["offset"]).read())
        self.config = context.model_config

    def predict(self, context, model_input, params=None):
        return model_input["x"] + self.offset + (params or {}).get("extra", 0)


def test_mlflow3_predict_form_with_params(tmp_model_dir):
    spark_models.pyfunc.save_model(tmp_model_dir, python_model=Mlflow3Style())
    model = spark_models.pyfunc.load_model(tmp_model_dir)
    df = pd.DataFrame({"x": [1.0, 2.0]})
    assert model.predict(df).tolist() == [1.0, 2.0]
    assert model.predict(df, params={"scale": 3.0}).tolist() == [3.0, 6.0]
    assert isinstance(model.unwrap_python_model(), Mlflow3Style)


def test_artifacts_context_and_model_config(tmp_path):
    (tmp_path / "offset.txt").write_text("10")
    path = tmp_path / "m"
    spark_models.pyfunc.save_model(path, python_model=ContextWithParams(), artifacts={"offset": str(tmp_path / "offset.txt")}, model_config={"k": 1})
    (tmp_path / "offset.txt").unlink()  # the model holds its own copy
    model = spark_models.pyfunc.load_model(path, model_config={"j": 2})
    assert model.predict(pd.DataFrame({"x": [1.0]}), params={"extra": 5}).tolist() == [16.0]
    assert model.unwrap_python_model().config == {"k": 1, "j": 2}
    from spark_models.mlmodel import Model

    assert Model.load(path).flavors["python_function"]["config"] == {"k": 1}  # MLflow's key (MODEL_CONFIG)


def test_model_config_under_mlflows_config_key_is_read(tmp_path):
    import yaml

    (tmp_path / "offset.txt").write_text("0")
    path = tmp_path / "m"
    spark_models.pyfunc.save_model(path, python_model=ContextWithParams(), artifacts={"offset": str(tmp_path / "offset.txt")})
    mlmodel = yaml.safe_load((path / "MLmodel").read_text())
    for key, value in (("config", {"from": "mlflow"}), ("model_config", {"from": "spark-models 0.1"})):
        mlmodel["flavors"]["python_function"].pop("config", None)
        mlmodel["flavors"]["python_function"][key] = value
        (path / "MLmodel").write_text(yaml.safe_dump(mlmodel))
        assert spark_models.pyfunc.load_model(path).unwrap_python_model().config == value


def test_artifacts_from_fsspec_uri_and_same_basename(tmp_path):
    import fsspec

    fs = fsspec.filesystem("memory")
    fs.pipe("/bucket/a/offset.txt", b"1")
    fs.pipe("/bucket/b/offset.txt", b"2")

    class TwoArtifacts(spark_models.pyfunc.PythonModel):
        def load_context(self, context):
            self.values = {k: open(v).read() for k, v in context.artifacts.items()}

        def predict(self, context, model_input):
            return self.values

    path = tmp_path / "m"
    spark_models.pyfunc.save_model(path, python_model=TwoArtifacts(), artifacts={"first": "memory://bucket/a/offset.txt", "second": "memory://bucket/b/offset.txt"})
    assert spark_models.pyfunc.load_model(path).predict(None) == {"first": "1", "second": "2"}


def test_custom_flavor_with_loader_module_and_code_paths(tmp_path):
    """The reference doc's 'custom flavor' route: our own loader module shipped as code."""
    code = tmp_path / "src" / "my_tiny_flavor.py"
    code.parent.mkdir()
    code.write_text(textwrap.dedent('''
        import json, os

        class _Scaler:
            def __init__(self, factor):
                self.factor = factor
            def predict(self, model_input, params=None):
                return model_input * self.factor

        def _load_pyfunc(path):
            with open(path) as f:
                return _Scaler(json.load(f)["factor"])
    '''))
    data = tmp_path / "weights.json"
    data.write_text('{"factor": 4}')
    path = tmp_path / "m"
    spark_models.pyfunc.save_model(path, loader_module="my_tiny_flavor", data_path=data, code_paths=[code])
    from tests.isolation import run_json

    out = run_json(f"""
        import json, pandas as pd, spark_models.pyfunc
        m = spark_models.pyfunc.load_model({str(path)!r})
        print(json.dumps(m.predict(pd.DataFrame({{"a": [1, 2]}}))["a"].tolist()))
    """)
    assert out == [4, 8]


def test_conformance_python_model(tmp_path):
    class Doubler(spark_models.pyfunc.PythonModel):
        def predict(self, context, model_input):
            return model_input["x"].to_numpy() * 2

    df = pd.DataFrame({"x": [1.0, 2.0, 3.0]})
    check_flavor(
        spark_models.pyfunc.model,
        Doubler(),
        df,
        tmp_path,
        native_predict=lambda m, x: m.predict(None, x) if isinstance(m, Doubler) else m.predict(x),
        save=lambda m, p, **kw: spark_models.pyfunc.save_model(p, python_model=m, **kw),
    )


def test_save_model_argument_errors(tmp_path):
    with pytest.raises(InvalidArgumentError, match="exactly one"):
        spark_models.pyfunc.save_model(tmp_path / "a")
    with pytest.raises(InvalidArgumentError, match="predict"):
        spark_models.pyfunc.save_model(tmp_path / "b", python_model=object())
    with pytest.raises(ArtifactNotFoundError, match="'w'"):
        spark_models.pyfunc.save_model(tmp_path / "c", python_model=Mlflow3Style(), artifacts={"w": str(tmp_path / "missing.bin")})
    assert not (tmp_path / "c").exists()
