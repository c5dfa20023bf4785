"""One rule for model output on every path (pyfunc, spark_udf, the CLI, the server): one row per
input row, realigned by label when the model reordered its input, 0 rows without a model call."""

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

import spark_models.pyfunc
from spark_models.cli import cli
from spark_models.exceptions import ModelOutputError, SchemaEnforcementError
from spark_models.models import ModelSignature
from spark_models.pyfunc.outputs import align_output
from spark_models.types import ColSpec, Schema

SIG = ModelSignature(Schema([ColSpec("double", "x")]), Schema([ColSpec("double", "y")]))
X = pd.DataFrame({"x": [5.0, 1.0, 4.0, 2.0, 3.0] * 8})


class SortsItsInput(spark_models.pyfunc.PythonModel):
    """Returns the predictions in another order, under the input's index labels."""

    def predict(self, context, model_input):
        return (model_input["x"].sort_values() * 2).rename("y")


class DropsARow(spark_models.pyfunc.PythonModel):
    def predict(self, context, model_input):
        return model_input["x"].iloc[:-1].to_numpy()


class SeesDtype(spark_models.pyfunc.PythonModel):
    def predict(self, context, model_input):
        return pd.Series([str(model_input["x"].dtype)] * len(model_input))


class CountsCalls(spark_models.pyfunc.PythonModel):
    def predict(self, context, model_input):
        raise AssertionError("the model must not be called for 0 rows")


def _save(tmp_path, model, signature=SIG):
    path = tmp_path / type(model).__name__
    spark_models.pyfunc.save_model(path, python_model=model, signature=signature)
    return path


def test_pyfunc_realigns_a_reordered_output(tmp_path):
    out = spark_models.pyfunc.load_model(_save(tmp_path, SortsItsInput())).predict(X)
    np.testing.assert_array_equal(out.to_numpy(), X["x"].to_numpy() * 2)
    assert out.index.equals(X.index)


@pytest.mark.spark
def test_spark_udf_realigns_a_reordered_output(spark, tmp_path):
    u = spark_models.pyfunc.spark_udf(spark, str(_save(tmp_path, SortsItsInput())))
    df = spark.createDataFrame(X.assign(id=range(len(X))))
    out = df.withColumn("p", u()).orderBy("id").toPandas()
    np.testing.assert_array_equal(out["p"].to_numpy(), X["x"].to_numpy() * 2)


@pytest.mark.parametrize("local", [True, False])
def test_cli_realigns_a_reordered_output(spark, tmp_path, local):
    X.to_csv(tmp_path / "in.csv", index=False)
    out = tmp_path / ("out.csv" if local else "out")
    result = CliRunner().invoke(cli, ["predict", "-m", str(_save(tmp_path, SortsItsInput())), "-i",
                                      str(tmp_path / "in.csv"), "-o", str(out), *(["--local"] if local else [])])
    assert result.exit_code == 0, result.output
    scored = pd.read_csv(out) if local else pd.concat(pd.read_csv(p) for p in sorted(out.glob("*.csv")))
    np.testing.assert_array_equal(scored["prediction"].to_numpy(), scored["x"].to_numpy() * 2)


def test_server_realigns_a_reordered_output(tmp_path):
    from starlette.testclient import TestClient

    from spark_models.serving import create_app

    client = TestClient(create_app(spark_models.pyfunc.load_model(_save(tmp_path, SortsItsInput()))))
    response = client.post("/invocations", json={"dataframe_split": X.head(5).to_dict(orient="split")})
    assert response.status_code == 200
    assert [p["y"] if isinstance(p, dict) else p for p in response.json()["predictions"]] == [10.0, 2.0, 8.0, 4.0, 6.0]


def test_a_fresh_range_index_is_positional_when_the_input_has_other_labels():
    shuffled = X.head(5).sample(frac=1.0, random_state=3)  # index 0..4 permuted
    fresh = pd.Series(shuffled["x"].to_numpy() * 2)  # a model that built a new Series: positions
    np.testing.assert_array_equal(align_output(fresh, shuffled).to_numpy(), shuffled["x"].to_numpy() * 2)
    relabelled = (shuffled["x"] * 2).sort_values()  # labels from the input: realigned
    np.testing.assert_array_equal(align_output(relabelled, shuffled).to_numpy(), shuffled["x"].to_numpy() * 2)


def test_pyfunc_refuses_a_row_count_mismatch_naming_both_counts(tmp_path):
    model = spark_models.pyfunc.load_model(_save(tmp_path, DropsARow()))
    with pytest.raises(ModelOutputError, match="returned 39 rows for 40 input rows"):
        model.predict(X)


@pytest.mark.spark
def test_spark_udf_refuses_a_row_count_mismatch(spark, tmp_path):
    u = spark_models.pyfunc.spark_udf(spark, str(_save(tmp_path, DropsARow())))
    from pyspark.errors import PythonException

    with pytest.raises(PythonException, match="ModelOutputError.*returned 39 rows for 40 input rows"):
        spark.createDataFrame(X).coalesce(1).withColumn("p", u()).collect()


def test_cli_local_refuses_a_row_count_mismatch(tmp_path):
    X.to_csv(tmp_path / "in.csv", index=False)
    result = CliRunner().invoke(cli, ["predict", "-m", str(_save(tmp_path, DropsARow())), "-i", str(tmp_path / "in.csv"),
                                      "-o", str(tmp_path / "out.csv"), "--local"])
    assert result.exit_code == 1 and "ModelOutputError" in result.output and "39 rows for 40" in result.output
    assert not (tmp_path / "out.csv").exists()


def test_zero_rows_give_the_output_columns_without_calling_the_model(tmp_path):
    two = ModelSignature(Schema([ColSpec("double", "x")]), Schema([ColSpec("double", "y"), ColSpec("long", "n")]))
    out = spark_models.pyfunc.load_model(_save(tmp_path, CountsCalls(), two)).predict(X.head(0))
    assert isinstance(out, pd.DataFrame) and list(out.columns) == ["y", "n"] and len(out) == 0
    assert list(out.dtypes) == [np.float64, np.int64]
    path = tmp_path / "one"
    spark_models.pyfunc.save_model(path, python_model=CountsCalls(), signature=SIG)
    single = spark_models.pyfunc.load_model(path).predict(X.head(0))
    assert isinstance(single, pd.Series) and single.name == "y" and len(single) == 0


def test_duplicate_column_names_are_a_clear_error(tmp_path):
    model = spark_models.pyfunc.load_model(_save(tmp_path, SortsItsInput()))
    with pytest.raises(SchemaEnforcementError, match=r"duplicate column names \['x'\]"):
        model.predict(pd.DataFrame([[1.0, 2.0]], columns=["x", "x"]))


def test_a_column_of_only_missing_values(tmp_path):
    model = spark_models.pyfunc.load_model(_save(tmp_path, SortsItsInput()))
    out = model.predict(pd.DataFrame({"x": [None, None]}))  # double: NaN reaches the model
    assert out.isna().all() and len(out) == 2
    longs = ModelSignature(Schema([ColSpec("long", "x")]))
    path = tmp_path / "longs"
    spark_models.pyfunc.save_model(path, python_model=SeesDtype(), signature=longs)
    seen = spark_models.pyfunc.load_model(path).predict(pd.DataFrame({"x": [None, None]}))
    assert list(seen) == ["Int64", "Int64"]  # integers with missing values: pandas' nullable Int64
