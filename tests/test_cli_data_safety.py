"""``spark-models predict`` never destroys data: save modes, atomic writes, input/output overlap,
one-line task errors, and ``--local`` reading files as the Spark path does."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from sklearn.linear_model import LinearRegression

import spark_models.pyfunc
import spark_models.sklearn
from spark_models.cli import cli
from spark_models.models import ModelSignature, infer_signature
from spark_models.types import ColSpec, Schema

X = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0], "b": [1.0, 0.0, 1.0, 0.0]})


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("models") / "lr"
    reg = LinearRegression().fit(X, X.a + 2 * X.b)
    spark_models.sklearn.save_model(reg, path, signature=infer_signature(X, reg.predict(X)))
    return path


class Failing(spark_models.pyfunc.PythonModel):
    def predict(self, context, model_input):
        raise ValueError("the model refused row 3")


class Slow(spark_models.pyfunc.PythonModel):
    def predict(self, context, model_input):
        time.sleep(60)
        return model_input["a"]


def _save(tmp_path, name, python_model):
    path = tmp_path / name
    sig = ModelSignature(Schema([ColSpec("double", "a"), ColSpec("double", "b")]), Schema([ColSpec("double")]))
    spark_models.pyfunc.save_model(path, python_model=python_model, signature=sig)
    return path


def _run(*args):
    return CliRunner().invoke(cli, ["predict", *map(str, args)])


@pytest.fixture
def data(tmp_path):
    path = tmp_path / "in.csv"
    X.to_csv(path, index=False)
    return path


def _tree(path):
    return {str(p.relative_to(path)): p.read_bytes() for p in path.rglob("*") if p.is_file()}


@pytest.mark.parametrize("where", ["same", "parent", "inside"])
def test_output_overlapping_the_input_is_refused_and_the_input_survives(model_dir, tmp_path, where):
    folder = tmp_path / "data"
    folder.mkdir()
    X.to_csv(folder / "part.csv", index=False)
    out = {"same": folder, "parent": tmp_path, "inside": folder / "scored"}[where]
    before = _tree(tmp_path)
    for extra in ([], ["--mode", "overwrite"]):
        result = _run("-m", model_dir, "-i", folder, "-o", out, "--local", *extra)
        assert result.exit_code == 1 and "destroy the input" in result.output
    assert _tree(tmp_path) == before


@pytest.mark.parametrize("local", [True, False])
def test_an_existing_output_is_an_error_by_default(spark, model_dir, data, tmp_path, local):
    out = tmp_path / ("out.csv" if local else "out")
    out.mkdir() if not local else out.write_text("precious\n")
    (tmp_path / "neighbour.txt").write_text("keep me")
    result = _run("-m", model_dir, "-i", data, "-o", out, *(["--local"] if local else []))
    assert result.exit_code == 1 and "already exists" in result.output and str(out) in result.output
    assert (tmp_path / "neighbour.txt").read_text() == "keep me"
    assert local is False or out.read_text() == "precious\n"


def test_overwrite_replaces_only_the_output(spark, model_dir, data, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "stale.csv").write_text("x\n1\n")
    (tmp_path / "neighbour.txt").write_text("keep me")
    result = _run("-m", model_dir, "-i", data, "-o", out, "--mode", "overwrite")
    assert result.exit_code == 0, result.output
    assert not (out / "stale.csv").exists() and (tmp_path / "neighbour.txt").read_text() == "keep me"
    scored = pd.concat(pd.read_csv(p) for p in sorted(out.glob("*.csv")))
    assert len(scored) == 4 and not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


@pytest.mark.parametrize("local", [True, False])
def test_append_adds_rows_and_ignore_skips(spark, model_dir, data, tmp_path, local):
    out = tmp_path / ("out.csv" if local else "out")
    flags = ["--local"] if local else []
    assert _run("-m", model_dir, "-i", data, "-o", out, *flags).exit_code == 0
    result = _run("-m", model_dir, "-i", data, "-o", out, "--mode", "append", *flags)
    assert result.exit_code == 0, result.output
    read = (lambda: pd.read_csv(out)) if local else (lambda: pd.concat(pd.read_csv(p) for p in out.glob("*.csv")))
    assert len(read()) == 8
    before = _tree(tmp_path)
    result = _run("-m", model_dir, "-i", data, "-o", out, "--mode", "ignore", *flags)
    assert result.exit_code == 0 and "nothing scored" in result.output and _tree(tmp_path) == before


@pytest.mark.parametrize("local", [True, False])
def test_a_failed_job_leaves_the_previous_output_untouched(spark, data, tmp_path, local):
    failing = _save(tmp_path, "failing", Failing())
    out = tmp_path / ("out.csv" if local else "out")
    if local:
        out.write_text("a,b,prediction\n1,2,3\n")
    else:
        out.mkdir()
        (out / "part-old.csv").write_text("a,b,prediction\n1,2,3\n")
    before = _tree(tmp_path)
    result = _run("-m", failing, "-i", data, "-o", out, "--mode", "overwrite", *(["--local"] if local else []))
    assert result.exit_code == 1
    assert _tree(tmp_path) == before  # the old output, and no temporary sibling left behind


def test_a_killed_job_leaves_the_previous_output_untouched(data, tmp_path):
    slow = _save(tmp_path, "slow", Slow())
    out = tmp_path / "out.csv"
    out.write_text("a,b,prediction\n1,2,3\n")
    proc = subprocess.Popen([sys.executable, "-m", "spark_models.cli", "predict", "-m", str(slow), "-i", str(data),
                             "-o", str(out), "--local", "--mode", "overwrite"], stderr=subprocess.PIPE)
    time.sleep(6)  # loading and scoring have started; the model sleeps
    assert proc.poll() is None
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)
    assert out.read_text() == "a,b,prediction\n1,2,3\n"


@pytest.mark.spark
def test_a_model_error_in_a_spark_task_is_one_line_with_the_models_exception(spark, data, tmp_path):
    failing = _save(tmp_path, "failing", Failing())
    result = _run("-m", failing, "-i", data, "-o", tmp_path / "out")
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and len(lines[0]) < 400, result.output
    assert lines[0].startswith("Error: ValueError: the model refused row 3 (raised by the model")
    assert "Py4J" not in result.output and "PythonException" not in result.output
    verbose = _run("-m", failing, "-i", data, "-o", tmp_path / "out2", "--verbose")
    assert verbose.exit_code != 0 and "Traceback" in "".join(__import__("traceback").format_exception(verbose.exception))


@pytest.mark.spark
def test_local_and_spark_read_a_whole_number_column_declared_double_alike(spark, tmp_path):
    reg = LinearRegression().fit(X, X.a + 2 * X.b)
    sig = ModelSignature(Schema([ColSpec("double", "a"), ColSpec("double", "b")]), Schema([ColSpec("double")]))
    spark_models.sklearn.save_model(reg, tmp_path / "m", signature=sig)
    frame = pd.DataFrame({"a": [0, 1, 2], "b": [1, 0, 1]})  # whole numbers: CSV readers infer integers
    frame.to_csv(tmp_path / "in.csv", index=False)
    local = _run("-m", tmp_path / "m", "-i", tmp_path / "in.csv", "-o", tmp_path / "local.csv", "--local")
    remote = _run("-m", tmp_path / "m", "-i", tmp_path / "in.csv", "-o", tmp_path / "spark")
    assert local.exit_code == 0 and remote.exit_code == 0, local.output + remote.output
    expected = reg.predict(frame.astype(float))
    np.testing.assert_allclose(pd.read_csv(tmp_path / "local.csv")["prediction"], expected)
    spark_out = pd.concat(pd.read_csv(p) for p in (tmp_path / "spark").glob("*.csv")).sort_values("a")
    np.testing.assert_allclose(spark_out["prediction"], expected)
