"""``spark-models build-docker``: the build context it writes (this machine has no Docker engine)."""

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from sklearn.linear_model import LinearRegression

import spark_models.sklearn
from spark_models.cli import cli
from spark_models.serving.docker import build_context, docker_engine_available

from .test_serve_process import start_server, stop_server


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    X = pd.DataFrame({"x": np.arange(10.0)})
    path = tmp_path_factory.mktemp("docker") / "lin"
    spark_models.sklearn.save_model(LinearRegression().fit(X, 2 * X.x + 1), path, input_example=X.head(2))
    return path


def test_context_has_model_requirements_source_and_dockerfile(model_path, tmp_path):
    runner = CliRunner()
    out = runner.invoke(cli, ["build-docker", "-m", str(model_path), "-n", "lin-model:1.0", "-d", str(tmp_path / "ctx"), "--no-build"])
    assert out.exit_code == 0, out.output
    assert "docker build -t lin-model:1.0 " + str(tmp_path / "ctx") in out.output
    ctx = tmp_path / "ctx"
    assert (ctx / "model" / "MLmodel").is_file() and (ctx / "model" / "model.pkl").exists()
    requirements = (ctx / "model-requirements.txt").read_text().splitlines()
    assert any(r.startswith("scikit-learn==") for r in requirements)
    assert not any(r.startswith("spark-models") for r in requirements if not r.startswith("#"))
    assert (ctx / "spark-models-src" / "pyproject.toml").is_file()
    assert (ctx / "spark-models-src" / "spark_models" / "serving" / "app.py").is_file()
    assert not list(ctx.rglob("__pycache__"))
    dockerfile = (ctx / "Dockerfile").read_text()
    major_minor = "{}.{}".format(*sys.version_info[:2])
    assert dockerfile.startswith(f"FROM python:{major_minor}-slim\n")
    assert "openjdk" not in dockerfile  # a scikit-learn model needs no Java
    assert "pip install '/opt/spark-models-src[serve]'" in dockerfile
    assert "RUN pip install -r /opt/ml/model-requirements.txt" in dockerfile
    assert "EXPOSE 8080" in dockerfile
    assert (ctx / "entrypoint.py").is_file()  # SageMaker's contract: tests/test_sagemaker_contract.py
    assert dockerfile.rstrip().endswith('ENTRYPOINT ["python", "/opt/ml/entrypoint.py"]\nCMD ["serve"]')


@pytest.mark.slow
def test_the_context_is_complete_enough_to_build_and_serve(model_path, tmp_path):
    """What the image would do, done here: build spark-models from the copied source, serve the copied model."""
    ctx = build_context(str(model_path), tmp_path / "ctx")
    wheel = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(tmp_path / "wheels"),
         str(ctx / "spark-models-src")],
        capture_output=True, text=True, timeout=300,
    )
    assert wheel.returncode == 0, wheel.stderr[-2000:]
    assert list((tmp_path / "wheels").glob("spark_models-*.whl"))
    proc, client = start_server(ctx / "model")
    try:
        client.wait_until_ready(timeout=120)
        assert client.predict(pd.DataFrame({"x": [0.0, 4.0]})) == pytest.approx([1.0, 9.0])
    finally:
        stop_server(proc)


def test_java_is_installed_for_spark_models_only(tmp_path):
    ctx = build_context(_fake_spark_model(tmp_path), tmp_path / "ctx")
    assert "openjdk-17-jre-headless" in (ctx / "Dockerfile").read_text()
    requirements = (ctx / "model-requirements.txt").read_text()
    assert "pyspark==4.0.0" in requirements and "\nmlflow" not in requirements and "\nspark-models" not in requirements
    forced_off = build_context(_fake_spark_model(tmp_path / "b"), tmp_path / "ctx2", install_java=False)
    assert "openjdk" not in (forced_off / "Dockerfile").read_text()


def _fake_spark_model(root):
    """An MLmodel declaring a spark flavor; the context writer reads only the metadata."""
    from spark_models.mlmodel import Model

    path = root / "spark_model"
    path.mkdir(parents=True)
    Model().add_flavor("spark", pyspark_version="4.0.0", model_data="sparkml").add_flavor(
        "python_function", loader_module="spark_models.spark", python_version="3.11.7"
    ).save(path)
    (path / "requirements.txt").write_text("spark-models==0.1.0\npyspark==4.0.0\nmlflow==3.0.0\n")
    return str(path)


def test_errors(model_path, tmp_path):
    runner = CliRunner()
    bad_name = runner.invoke(cli, ["build-docker", "-m", str(model_path), "-n", "Bad Name", "-d", str(tmp_path / "c")])
    assert bad_name.exit_code == 1 and "Docker image name" in bad_name.output and not (tmp_path / "c").exists()
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    not_empty = runner.invoke(cli, ["build-docker", "-m", str(model_path), "-n", "ok", "-d", str(tmp_path / "full")])
    assert not_empty.exit_code == 1 and "not empty" in not_empty.output
    missing = runner.invoke(cli, ["build-docker", "-m", str(tmp_path / "nope"), "-n", "ok", "-d", str(tmp_path / "c2")])
    assert missing.exit_code == 1 and "nope" in missing.output


def test_without_an_engine_the_command_is_printed(model_path, tmp_path):
    if docker_engine_available():
        pytest.skip("a Docker engine answers here; the build itself would run")
    out = CliRunner().invoke(cli, ["build-docker", "-m", str(model_path), "-n", "m", "-d", str(tmp_path / "c")])
    assert out.exit_code == 0 and "no Docker engine" in out.output and "docker build -t m " in out.output
