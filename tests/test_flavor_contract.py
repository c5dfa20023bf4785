"""The flavor contract in use: one MLmodel parse per load, hooks found through the registry,
the save helper's clean-up, and the driver → worker plan."""

import dataclasses
import pickle

import cloudpickle
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression

import spark_models.pyfunc
import spark_models.sklearn
from spark_models.exceptions import InvalidArgumentError, MalformedModelError, NotSupportedError
from spark_models.flavors import Flavor, LoadContext, open_model, register_flavor, registry, saved_model
from spark_models.flavors.contract import context_from_path
from spark_models.mlmodel import Model
from spark_models.models import infer_signature

X = pd.DataFrame({"a": [0.0, 1.0, 2.0], "b": [1.0, 0.0, 1.0]})


@pytest.fixture
def sk_dir(tmp_path):
    model = LinearRegression().fit(X, X.a + X.b)
    spark_models.sklearn.save_model(model, tmp_path / "sk", signature=infer_signature(X, model.predict(X)))
    return tmp_path / "sk"


@pytest.fixture
def parses(monkeypatch):
    """Counts MLmodel parses (``Model.load``) made by the code under test."""
    calls = []
    original = Model.load.__func__

    def counting(cls, path_or_uri):
        calls.append(str(path_or_uri))
        return original(cls, path_or_uri)

    monkeypatch.setattr(Model, "load", classmethod(counting))
    return calls


def test_pyfunc_load_parses_mlmodel_once(sk_dir, parses):
    spark_models.pyfunc.load_model(sk_dir).predict(X)
    assert len(parses) == 1


def test_native_load_parses_mlmodel_once(sk_dir, parses):
    spark_models.sklearn.load_model(sk_dir)
    assert len(parses) == 1


@pytest.mark.spark
def test_spark_udf_parses_mlmodel_once_on_the_driver(spark, sk_dir, parses):
    spark_models.pyfunc.spark_udf(spark, str(sk_dir))
    assert len(parses) == 1


@pytest.mark.spark
def test_spark_bundle_pyfunc_parses_mlmodel_once(spark, lr_pipeline, tmp_path, parses):
    import spark_models.spark

    spark_models.spark.save_model(lr_pipeline, tmp_path / "m")
    parses.clear()
    spark_models.pyfunc.load_model(tmp_path / "m")
    assert len(parses) == 1


def test_context_paths_stay_inside_the_model(sk_dir):
    context = open_model(sk_dir)
    assert context.path("model.pkl") == (sk_dir / "model.pkl").resolve()
    with pytest.raises(MalformedModelError, match="'../outside' lies outside the model directory"):
        context.path("../outside")


def test_mlflow_entry_point_finds_the_model_from_its_data_path(sk_dir):
    """MLflow hands ``_load_pyfunc`` the data path; the context is found above it."""
    assert context_from_path(sk_dir / "model.pkl").model_dir == sk_dir.resolve()
    wrapper = spark_models.sklearn._load_pyfunc(str(sk_dir))
    assert wrapper.predict(X).tolist() == pytest.approx((X.a + X.b).tolist())


def test_saved_model_removes_the_directory_on_failure(tmp_path):
    with pytest.raises(RuntimeError, match="boom"):
        with saved_model(tmp_path / "m", default_pip=[]) as draft:
            (draft.dir / "partial.bin").write_bytes(b"x")
            raise RuntimeError("boom")
    assert not (tmp_path / "m").exists()


def test_saved_model_refuses_a_non_empty_directory(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "keep.txt").write_text("mine")
    with pytest.raises(InvalidArgumentError, match="already exists"):
        with saved_model(tmp_path / "m", default_pip=[]):
            pass
    assert (tmp_path / "m" / "keep.txt").read_text() == "mine"


def test_saved_model_arguments_are_keyword_only(tmp_path):
    with pytest.raises(TypeError):
        saved_model(tmp_path / "m", [])  # the default requirements must be named


def _refusing_flavor() -> Flavor:
    sklearn = registry.get_flavor("sklearn")

    def prepare_for_udf(spark, context, model_uri):
        assert isinstance(context, LoadContext) and context.model_dir.is_dir()
        raise NotSupportedError(f"the refusing flavor never ships {context.model.flavors['python_function']['predict_fn']}")

    return dataclasses.replace(sklearn, name="refusing", module="tests.refusing_flavor", mlflow_module=None,
                               prepare_for_udf=prepare_for_udf)


@pytest.mark.spark
def test_spark_udf_takes_hooks_from_the_registry(spark, sk_dir, monkeypatch):
    """A hook is part of the declared contract: spark_udf finds it through the registry,
    not by looking for module attributes."""
    import sys
    import types

    flavor = _refusing_flavor()
    module = types.ModuleType("tests.refusing_flavor")
    module.FLAVOR = flavor
    monkeypatch.setitem(sys.modules, "tests.refusing_flavor", module)
    monkeypatch.setattr(registry, "_registered", {})
    monkeypatch.setattr(registry, "_loaded", {})
    register_flavor("refusing", "tests.refusing_flavor:FLAVOR")
    meta = Model.load(sk_dir)
    meta.flavors["python_function"]["loader_module"] = "tests.refusing_flavor"
    meta.save(sk_dir)
    with pytest.raises(NotSupportedError, match="spark_udf cannot score .*the refusing flavor never ships predict"):
        spark_models.pyfunc.spark_udf(spark, str(sk_dir))


@pytest.mark.spark
def test_the_worker_plan_is_one_frozen_picklable_object(spark, sk_dir):
    from udf.plan import ScoringPlan

    u = spark_models.pyfunc.spark_udf(spark, str(sk_dir), batch_size=7)
    plan = u._plan
    assert isinstance(plan, ScoringPlan) and plan.batch_size == 7 and plan.model_uri == str(sk_dir)
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.batch_size = 8
    bound = plan.bound(["a", "b"])
    assert bound.column_names == ("a", "b") and not bound.flatten and plan.column_names is None
    assert pickle.loads(cloudpickle.dumps(bound)) == bound
