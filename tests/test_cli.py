"""The command line: ``spark-models info`` and ``predict`` (through Spark and with --local)."""

import io
import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from sklearn.linear_model import LogisticRegression

import spark_models.sklearn
from spark_models.cli import cli
from spark_models.models import infer_signature


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.random(100), "b": rng.random(100)})
    clf = LogisticRegression().fit(X, (X.a > X.b).astype(int))
    path = tmp_path_factory.mktemp("cli") / "m"
    spark_models.sklearn.save_model(clf, path, signature=infer_signature(X, clf.predict(X)), input_example=X.head(2))
    return clf, X, str(path)


def _run(*args, input=None):
    return CliRunner().invoke(cli, list(args), input=input)


def test_info(model):
    _, _, path = model
    out = _run("info", "-m", path)
    assert out.exit_code == 0, out.output
    assert "sklearn:" in out.output and "python_function:" in out.output and "inputs:" in out.output
    data = json.loads(_run("info", "-m", path, "--json").output)
    assert set(data["flavors"]) == {"python_function", "sklearn"}
    assert [c["name"] for c in json.loads(data["signature"]["inputs"])] == ["a", "b"]
    assert len(data["input_example"]) == 2 and any(r.startswith("scikit-learn==") for r in data["requirements"])


@pytest.mark.spark
def test_predict_csv_folder_to_parquet_through_spark(spark, model, tmp_path):
    clf, X, path = model
    (tmp_path / "in").mkdir()
    X.iloc[:60].to_csv(tmp_path / "in" / "part1.csv", index=False)
    X.iloc[60:].to_csv(tmp_path / "in" / "part2.csv", index=False)
    out = _run("predict", "-m", path, "-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--format", "parquet")
    assert out.exit_code == 0, out.output
    assert "Scored 100 rows" in out.output
    got = pd.read_parquet(tmp_path / "out").sort_values(["a", "b"]).reset_index(drop=True)
    expected = X.assign(prediction=clf.predict(X)).sort_values(["a", "b"]).reset_index(drop=True)
    assert list(got.columns) == ["a", "b", "prediction"]
    np.testing.assert_array_equal(got["prediction"], expected["prediction"])


@pytest.mark.spark
@pytest.mark.parametrize("local", [False, True])
def test_predict_json_split_stdin_to_stdout(spark, model, local):
    clf, X, path = model
    doc = X.head(5).to_json(orient="split", index=False)
    args = ["predict", "-m", path, "-i", "-", "-o", "-", "--input-format", "json", "--format", "csv"]
    out = _run(*args, *(["--local"] if local else []), input=doc)
    assert out.exit_code == 0, out.output
    lines = [ln for ln in out.output.splitlines() if not ln.startswith("Scored")]
    got = pd.read_csv(io.StringIO("\n".join(lines)))
    assert got["prediction"].tolist() == clf.predict(X.head(5)).tolist()


@pytest.mark.spark
def test_predict_errors_are_one_line(spark, model, tmp_path):
    _, X, path = model
    missing = _run("predict", "-m", path, "-i", str(tmp_path / "nope.csv"), "-o", str(tmp_path / "o"))
    assert missing.exit_code == 1 and "does not exist" in missing.output and "Traceback" not in missing.output
    X[["a"]].to_csv(tmp_path / "only_a.csv", index=False)
    mismatch = _run("predict", "-m", path, "-i", str(tmp_path / "only_a.csv"), "-o", str(tmp_path / "o2"), "--local")
    assert mismatch.exit_code == 1 and "'b'" in mismatch.output and len(mismatch.output.strip().splitlines()) == 1
    bad_format = _run("predict", "-m", path, "-i", str(tmp_path / "only_a.csv"), "-o", "-", "--format", "xml")
    assert bad_format.exit_code == 2 and "xml" in bad_format.output
