"""Bad models and bad input: each a clear spark_models.exceptions error."""

import shutil

import pytest
import yaml
from sklearn.linear_model import LinearRegression

import spark_models.pyfunc
import spark_models.sklearn
from spark_models.exceptions import (
    ArtifactNotFoundError,
    FlavorNotFoundError,
    MalformedModelError,
    MissingDependencyError,
    ModelNotFoundError,
    SparkModelsError,
)
from tests.isolation import run_python


@pytest.fixture
def sk_model_dir(tmp_path):
    path = tmp_path / "sk"
    spark_models.sklearn.save_model(LinearRegression().fit([[0.0], [1.0]], [0.0, 1.0]), path)
    return path


def _edit_mlmodel(path, edit):
    d = yaml.safe_load((path / "MLmodel").read_text())
    edit(d)
    (path / "MLmodel").write_text(yaml.safe_dump(d))


def test_missing_mlmodel(sk_model_dir):
    (sk_model_dir / "MLmodel").unlink()
    with pytest.raises(ModelNotFoundError, match="no MLmodel file"):
        spark_models.pyfunc.load_model(sk_model_dir)


def test_missing_model_path(tmp_path):
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        spark_models.pyfunc.load_model(tmp_path / "nothing")


def test_malformed_yaml(sk_model_dir):
    (sk_model_dir / "MLmodel").write_text("flavors: [unclosed\n")
    with pytest.raises(MalformedModelError, match="malformed YAML at line"):
        spark_models.pyfunc.load_model(sk_model_dir)


def test_flavor_absent(sk_model_dir):
    _edit_mlmodel(sk_model_dir, lambda d: d["flavors"].pop("python_function"))
    with pytest.raises(FlavorNotFoundError, match="no 'python_function' flavor. Flavors present: sklearn"):
        spark_models.pyfunc.load_model(sk_model_dir)
    # The native loader still works without the pyfunc flavor.
    assert spark_models.sklearn.load_model(sk_model_dir).predict([[2.0]])[0] == pytest.approx(2.0)


def test_loader_module_not_importable_names_the_requirement(sk_model_dir):
    _edit_mlmodel(sk_model_dir, lambda d: d["flavors"]["python_function"].update(loader_module="fancy_ml_lib.flavor"))
    (sk_model_dir / "requirements.txt").write_text("spark-models==0.1.0\nfancy-ml-lib==2.3.1\n")
    with pytest.raises(MissingDependencyError) as e:
        spark_models.pyfunc.load_model(sk_model_dir)
    assert "'fancy_ml_lib'" in str(e.value) and "pip install 'fancy-ml-lib==2.3.1'" in str(e.value)


def test_sklearn_missing_names_scikit_learn_from_requirements(sk_model_dir):
    proc = run_python(f"import spark_models.pyfunc; spark_models.pyfunc.load_model({str(sk_model_dir)!r})", blocked=("sklearn",))
    assert proc.returncode != 0
    assert "MissingDependencyError" in proc.stderr
    assert "pip install 'scikit-learn==" in proc.stderr


def test_pickled_model_file_missing(sk_model_dir):
    (sk_model_dir / "model.pkl").unlink()
    with pytest.raises(ArtifactNotFoundError, match="model.pkl"):
        spark_models.pyfunc.load_model(sk_model_dir)


def test_custom_model_artifact_missing(tmp_path):
    class Echo(spark_models.pyfunc.PythonModel):
        def predict(self, context, model_input):
            return model_input

    (tmp_path / "w.bin").write_bytes(b"x")
    path = tmp_path / "m"
    spark_models.pyfunc.save_model(path, python_model=Echo(), artifacts={"weights": str(tmp_path / "w.bin")})
    shutil.rmtree(path / "artifacts")
    with pytest.raises(ArtifactNotFoundError, match="Artifact 'weights'"):
        spark_models.pyfunc.load_model(path)


def test_data_path_missing(sk_model_dir):
    _edit_mlmodel(sk_model_dir, lambda d: d["flavors"]["python_function"].update(data="gone.pkl"))
    with pytest.raises(ArtifactNotFoundError, match="gone.pkl"):
        spark_models.pyfunc.load_model(sk_model_dir)


def test_corrupt_pickle(sk_model_dir):
    (sk_model_dir / "model.pkl").write_bytes(b"not a pickle")
    with pytest.raises(MalformedModelError, match="not a readable pickle"):
        spark_models.pyfunc.load_model(sk_model_dir)


def test_every_exception_class_shares_one_base_and_its_builtin():
    """Every class spark_models.exceptions defines, found by inspection (a new one cannot be missed)."""
    import inspect

    import spark_models.exceptions as exc

    classes = {name: cls for name, cls in inspect.getmembers(exc, inspect.isclass) if cls.__module__ == exc.__name__}
    assert len(classes) == 21  # SparkModelsError and its 20 subclasses
    builtins = {
        "ModelNotFoundError": FileNotFoundError, "MalformedModelError": ValueError, "FlavorNotFoundError": LookupError,
        "UnknownFlavorError": LookupError, "MissingDependencyError": ImportError, "ArtifactNotFoundError": FileNotFoundError,
        "InvalidModelUriError": ValueError, "InvalidArgumentError": ValueError, "UnsafeModelError": SparkModelsError,
        "SchemaError": ValueError, "SchemaEnforcementError": ValueError, "NotSupportedError": NotImplementedError,
        "ModelOutputError": ValueError, "TrackingServerError": ConnectionError, "TrackingAuthError": PermissionError,
        "ModelEnvironmentError": RuntimeError, "ScorerProcessError": RuntimeError, "ScorerTimeoutError": TimeoutError,
        "DeploymentError": RuntimeError, "DeploymentNotFoundError": LookupError,
    }
    assert set(classes) == {"SparkModelsError", *builtins}
    for name, builtin in builtins.items():
        assert issubclass(classes[name], SparkModelsError) and issubclass(classes[name], builtin), name
    assert classes["SparkModelsError"].__bases__ == (Exception,)


def test_runs_uri_without_mlflow(tmp_path):
    proc = run_python("import spark_models.pyfunc; spark_models.pyfunc.load_model('runs:/abc/model')", blocked=("mlflow",))
    assert proc.returncode != 0
    assert "needs MLflow" in proc.stderr and "mlflow-skinny" in proc.stderr
