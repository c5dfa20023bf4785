"""spark_udf(env_manager=...) in local[2]: a model pinned to another scikit-learn scores in its own environment."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from spark_models.envs.build import builds_of, find_env
from spark_models.envs.spec import env_spec
from spark_models.exceptions import InvalidArgumentError
from tests.helpers.env_models import OLD_SKLEARN
from udf import spark_udf

pytestmark = [pytest.mark.spark, pytest.mark.slow]


def _scored(spark, u, inputs: pd.DataFrame) -> pd.DataFrame:
    df = spark.createDataFrame(inputs.assign(id=np.arange(len(inputs)))).repartition(3)
    out = df.withColumn("p", u()).toPandas().sort_values("id")
    assert out.id.tolist() == list(range(len(inputs)))  # no row lost or duplicated
    return out


def test_uv_scores_with_the_version_the_model_was_saved_with(spark, old_model, env_cache):
    model_dir, inputs, expected = old_model
    u = spark_udf(spark, str(model_dir), env_manager="uv")
    out = _scored(spark, u, inputs)
    np.testing.assert_array_equal(out.p.to_numpy(), expected)  # bit-identical to that version's own predict
    built = find_env(env_spec(model_dir).key)
    assert built is not None and len(builds_of(built.key)) == 1
    versions = u.environment  # the plan names the environment every worker scores in
    assert versions.key == built.key and versions.manager == "uv"


def test_local_warns_naming_both_versions(spark, old_model, caplog):
    import sklearn

    caplog.set_level(logging.WARNING, logger="spark_models.envs.spec")
    spark_udf(spark, str(old_model[0]))
    assert any(f"scikit-learn {OLD_SKLEARN} (installed: {sklearn.__version__})" in r.getMessage() for r in caplog.records)


def test_a_prebuilt_archive_is_shipped_and_unpacked_instead_of_built(spark, old_model, env_cache, tmp_path, monkeypatch):
    import spark_models

    import shutil

    model_dir, inputs, expected = old_model
    archive = spark_models.build_env(str(model_dir), tmp_path / "env.tar.gz")
    model_dir = Path(shutil.copytree(model_dir, tmp_path / "copy"))
    (model_dir / "NOTES.txt").write_text("a copy: workers load it (and its environment) afresh")
    fresh = tmp_path / "fresh-cache"
    monkeypatch.setenv("SPARK_MODELS_ENV_CACHE", str(fresh))
    u = spark_udf(spark, str(model_dir), env_manager="uv", prebuilt_env_uri=archive)
    np.testing.assert_array_equal(_scored(spark, u, inputs).p.to_numpy(), expected)
    key = env_spec(model_dir).key
    assert find_env(key, fresh) is not None and builds_of(key, fresh) == []  # unpacked, never built here


def test_ship_env_packs_the_drivers_environment_for_the_executors(spark, old_model, env_cache):
    model_dir, inputs, expected = old_model
    u = spark_udf(spark, str(model_dir), env_manager="uv", ship_env=True)
    assert u.environment.archive.endswith(".tar.gz") and len(u.environment.archive_sha256) == 64
    np.testing.assert_array_equal(_scored(spark, u, inputs).p.to_numpy(), expected)


def test_arguments_are_checked_on_the_driver(spark, old_model, env_cache):
    model = str(old_model[0])
    with pytest.raises(InvalidArgumentError, match="env_manager='pip' is not one of"):
        spark_udf(spark, model, env_manager="pip")
    with pytest.raises(InvalidArgumentError, match="needs runtime='python'"):
        spark_udf(spark, model, env_manager="uv", runtime="auto")
    with pytest.raises(InvalidArgumentError, match="'batch' must be a positive number"):
        spark_udf(spark, model, env_manager="uv", env_timeouts={"batch": 0})
    with pytest.raises(InvalidArgumentError, match="unknown env timeout"):
        spark_udf(spark, model, env_manager="uv", env_timeouts={"predict": 5})
    with pytest.raises(InvalidArgumentError, match="need env_manager"):
        spark_udf(spark, model, prebuilt_env_uri="/nowhere.tar.gz")


def test_a_batch_over_its_timeout_fails_the_task_naming_model_environment_and_log(spark, tmp_path, env_cache):
    from pyspark.errors import PythonException

    import spark_models.pyfunc

    class Sleepy(spark_models.pyfunc.PythonModel):
        def predict(self, context, model_input, params=None):
            time.sleep(30)
            return model_input["x"]

    path = str(tmp_path / "sleepy")
    spark_models.pyfunc.save_model(path, python_model=Sleepy())
    u = spark_udf(spark, path, env_manager="uv", env_timeouts={"batch": 1.5})
    df = spark.range(4).selectExpr("cast(id as double) as x")
    with pytest.raises(PythonException) as info:
        df.withColumn("p", u("x")).collect()
    message = str(info.value)
    assert "ScorerTimeoutError" in message and path in message and u.environment.key in message and ".log" in message
