"""The runnable examples in public docstrings run, against a real local Spark session."""

import doctest

import pytest

import udf


def _run_examples(obj, globs):
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for test in doctest.DocTestFinder().find(obj, obj.__name__, globs=globs):
        runner.run(test)
    assert runner.tries > 0, f"{obj.__name__} has no examples"
    assert runner.failures == 0


@pytest.mark.spark
def test_spark_udf_examples(spark, tmp_path):
    _run_examples(udf.spark_udf, {"spark": spark, "model_dir": str(tmp_path / "model"), "spark_udf": udf.spark_udf})


@pytest.mark.spark
def test_spark_native_examples(spark, tmp_path):
    from spark_models.native.scoring import spark_native

    _run_examples(spark_native, {"spark": spark, "model_dir": str(tmp_path / "model"), "spark_native": spark_native})
