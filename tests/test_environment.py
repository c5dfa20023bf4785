"""conda.yaml / requirements.txt / python_env.yaml in MLflow's formats."""

import sys

import pytest
import sklearn
import yaml
from sklearn.linear_model import LinearRegression

import spark_models.sklearn
from spark_models.environment import installed_version
from spark_models.exceptions import InvalidArgumentError

PY = "{}.{}.{}".format(*sys.version_info[:3])


@pytest.fixture(scope="module")
def lr():
    return LinearRegression().fit([[0.0], [1.0], [2.0]], [0.0, 1.0, 2.0])


def _files(path):
    return (
        yaml.safe_load((path / "conda.yaml").read_text()),
        (path / "requirements.txt").read_text().splitlines(),
        yaml.safe_load((path / "python_env.yaml").read_text()),
    )


def test_sklearn_defaults_pin_installed_versions(lr, tmp_model_dir):
    spark_models.sklearn.save_model(lr, tmp_model_dir)
    conda, reqs, pyenv = _files(tmp_model_dir)
    import cloudpickle

    assert reqs == [f"spark-models=={installed_version('spark-models')}", f"scikit-learn=={sklearn.__version__}", f"cloudpickle=={cloudpickle.__version__}"]
    assert conda["name"] == "mlflow-env" and conda["channels"] == ["conda-forge"]
    assert conda["dependencies"][0] == f"python={PY}"
    assert conda["dependencies"][1].startswith("pip")
    assert conda["dependencies"][2] == {"pip": reqs}
    assert pyenv["python"] == PY and pyenv["dependencies"] == ["-r requirements.txt"]
    assert any(b.startswith("pip") for b in pyenv["build_dependencies"])


def test_skops_format_requires_skops(lr, tmp_model_dir):
    spark_models.sklearn.save_model(lr, tmp_model_dir, serialization_format="skops")
    reqs = (tmp_model_dir / "requirements.txt").read_text().splitlines()
    assert any(r.startswith("skops==") for r in reqs) and not any(r.startswith("cloudpickle") for r in reqs)


def test_reference_doc_conda_env(lr, tmp_model_dir):
    # The reference doc's example: requirements.txt is the pip part of conda_env.
    conda_env = {
        "channels": ["conda-forge"],
        "dependencies": ["python=3.8.8", "pip", {"pip": ["mlflow", "scikit-learn==0.23.2", "cloudpickle==1.6.0"]}],
        "name": "mlflow-env",
    }
    spark_models.sklearn.save_model(lr, tmp_model_dir, conda_env=conda_env)
    conda, reqs, pyenv = _files(tmp_model_dir)
    assert conda == conda_env
    assert reqs == ["mlflow", "scikit-learn==0.23.2", "cloudpickle==1.6.0"]
    assert pyenv["python"] == "3.8.8"


def test_conda_env_file_with_top_level_pip(lr, tmp_model_dir, tmp_path):
    # The reference doc's first example lists 'pip' beside 'dependencies'.
    f = tmp_path / "env.yaml"
    f.write_text(yaml.safe_dump({"channels": ["conda-forge"], "dependencies": ["python=3.8.8", "pip"], "pip": ["mlflow", "scikit-learn==0.23.2"], "name": "mlflow-env"}))
    spark_models.sklearn.save_model(lr, tmp_model_dir, conda_env=str(f))
    assert _files(tmp_model_dir)[1] == ["mlflow", "scikit-learn==0.23.2"]


def test_pip_requirements_replace_and_extra_extend(lr, tmp_path):
    spark_models.sklearn.save_model(lr, tmp_path / "a", pip_requirements=["scikit-learn", "numpy<3"])
    conda, reqs, _ = _files(tmp_path / "a")
    assert reqs == ["scikit-learn", "numpy<3"] and conda["dependencies"][2] == {"pip": reqs}

    spark_models.sklearn.save_model(lr, tmp_path / "b", extra_pip_requirements=["pandas<3", "scikit-learn>=1.0"])
    reqs = _files(tmp_path / "b")[1]
    assert reqs[-2:] == ["pandas<3", "scikit-learn>=1.0"]
    assert not any(r.startswith("scikit-learn==") for r in reqs)  # the extra one replaced the pin

    req_file = tmp_path / "reqs.txt"
    req_file.write_text("# comment\nscikit-learn\n\nxgboost==2.0\n")
    spark_models.sklearn.save_model(lr, tmp_path / "c", pip_requirements=str(req_file))
    assert _files(tmp_path / "c")[1] == ["scikit-learn", "xgboost==2.0"]


def test_only_one_environment_override(lr, tmp_model_dir):
    with pytest.raises(InvalidArgumentError, match="only one of"):
        spark_models.sklearn.save_model(lr, tmp_model_dir, pip_requirements=["a"], extra_pip_requirements=["b"])
    assert not tmp_model_dir.exists()  # a failed save leaves nothing behind


def test_missing_requirements_file(lr, tmp_model_dir, tmp_path):
    with pytest.raises(InvalidArgumentError, match="nope.txt"):
        spark_models.sklearn.save_model(lr, tmp_model_dir, pip_requirements=str(tmp_path / "nope.txt"))
