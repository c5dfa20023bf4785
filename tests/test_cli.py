"""The command line: ``spark-models info`` and ``predict`` (through Spark and with --local)."""

import io
import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from sklearn.linear_model import LogisticRegression

import spark_models.pyfunc
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


class TwoOutputs(spark_models.pyfunc.PythonModel):
    def predict(self, context, model_input):
        x = model_input["x"].to_numpy()
        return pd.DataFrame({"label": (x > 1).astype(np.int32), "score": np.where(x == 2, np.nan, x * 0.5)})


@pytest.mark.spark
def test_predict_struct_result_from_json_lines_to_json(spark, tmp_path):
    from spark_models.schema.signature import ModelSignature
    from spark_models.types import ColSpec, Schema

    path = tmp_path / "two"
    spark_models.pyfunc.save_model(path, python_model=TwoOutputs(), signature=ModelSignature(Schema([ColSpec("long", "x")])))
    pd.DataFrame({"x": [0, 1, 2, 3]}).to_json(tmp_path / "in.json", orient="records", lines=True)
    out = _run("predict", "-m", str(path), "-i", str(tmp_path / "in.json"), "-o", str(tmp_path / "out"),
               "--result-type", "struct<label:int,score:double>")
    assert out.exit_code == 0, out.output
    got = pd.concat(pd.read_json(f, lines=True) for f in sorted((tmp_path / "out").glob("part-*.json")))
    assert list(got.columns) == ["x", "label", "score"]
    assert got["label"].tolist() == [0, 0, 1, 1]
    assert got["score"].iloc[2] is None or np.isnan(got["score"].iloc[2])
    assert got["score"].tolist()[:2] == [0.0, 0.5]


@pytest.mark.slow
def test_predict_on_a_cluster_master_keeps_row_order(model, tmp_path):
    """A real master URL: executors in their own JVMs (local-cluster), run as a separate process."""
    import subprocess
    import sys

    clf, X, path = model
    X.to_parquet(tmp_path / "in.parquet")
    proc = subprocess.run(
        [sys.executable, "-m", "spark_models.cli", "predict", "-m", path, "-i", str(tmp_path / "in.parquet"),
         "-o", str(tmp_path / "out"), "--master", "local-cluster[2,1,1024]"],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Scored 100 rows" in proc.stderr
    got = pd.read_parquet(tmp_path / "out")
    np.testing.assert_array_equal(got[["a", "b"]].to_numpy(), X.to_numpy())
    np.testing.assert_array_equal(got["prediction"], clf.predict(X))
