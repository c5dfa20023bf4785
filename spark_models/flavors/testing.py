"""``check_flavor``: the conformance suite every flavor passes (built-in or third-party).

Like scikit-learn's ``check_estimator``: call it from a test with the flavor, a fitted model
and some input. It checks the declared contract (fields, hooks, registry lookups, the public
module MLflow imports), then saves, reloads and scores the model every supported way, and
raises ``AssertionError`` naming the first broken rule.

    def test_my_flavor(tmp_path):
        check_flavor(my_flavor.FLAVOR, fitted_model, sample_df, tmp_path)
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

import numpy as np
import pandas as pd
import yaml

from spark_models.environment import CONDA_ENV_FILE, PYTHON_ENV_FILE, REQUIREMENTS_FILE, requirement_name
from spark_models.exceptions import InvalidArgumentError
from spark_models.flavors.contract import PYFUNC, Flavor
from spark_models.flavors.registry import available_flavors, flavor_for_loader_module, get_flavor
from spark_models.mlmodel import Model


def _assert_same(actual: Any, expected: Any, what: str) -> None:
    if isinstance(expected, (pd.DataFrame, pd.Series)):
        actual = actual if isinstance(actual, type(expected)) else type(expected)(actual)
        if isinstance(expected, pd.DataFrame):
            pd.testing.assert_frame_equal(actual, expected)
        else:
            np.testing.assert_allclose(actual.to_numpy(), expected.to_numpy())
        return
    single = any(getattr(np.asarray(a), "dtype", None) == np.float32 for a in (actual, expected))
    try:  # float32 models differ in the last digit between batch sizes
        np.testing.assert_allclose(np.asarray(actual), np.asarray(expected), rtol=1e-6 if single else 1e-9)
    except TypeError:
        assert np.array_equal(np.asarray(actual), np.asarray(expected)), f"{what}: {actual!r} != {expected!r}"


def _as_flavor(flavor: Flavor | ModuleType) -> Flavor:
    found = flavor if isinstance(flavor, Flavor) else getattr(flavor, "FLAVOR", None)
    assert isinstance(found, Flavor), f"{flavor!r} is not a Flavor and has no FLAVOR attribute holding one"
    return found


def _check_contract(flavor: Flavor) -> None:
    assert isinstance(flavor.name, str) and flavor.name, "Flavor.name must be a non-empty string"
    for field in ("save_model", "load_model", "default_pip_requirements"):
        assert callable(getattr(flavor, field)), f"Flavor {flavor.name!r}: {field} is not callable"
    for hook in ("load_pyfunc", "prepare_for_udf", "runs_code", "compile_native"):
        value = getattr(flavor, hook)
        assert value is None or callable(value), f"Flavor {flavor.name!r}: {hook} must be callable or None"
    pins = flavor.default_pip_requirements()
    assert isinstance(pins, list) and all(isinstance(r, str) for r in pins), "default_pip_requirements() must be a list of str"
    assert "spark-models" in {requirement_name(r) for r in pins}, "default_pip_requirements() must include spark-models"
    for loader in flavor.loader_modules:
        assert flavor_for_loader_module(loader) is flavor, f"loader_module {loader!r} does not resolve to this flavor"
    if flavor.name in available_flavors():
        assert get_flavor(flavor.name) is flavor, f"the registry's {flavor.name!r} flavor is another object"
    _check_public_module(flavor)


def _check_public_module(flavor: Flavor) -> None:
    """The module written as ``loader_module`` is what MLflow imports: it must expose the flavor."""
    module = importlib.import_module(flavor.module)
    assert getattr(module, "FLAVOR", None) is flavor, f"{flavor.module}.FLAVOR is not this flavor"
    for name in ("save_model", "load_model"):
        assert getattr(module, name, None) is getattr(flavor, name), f"{flavor.module}.{name} is not the flavor's {name}"
    if flavor.load_pyfunc is not None:
        assert callable(getattr(module, "_load_pyfunc", None)), (
            f"{flavor.module} has no _load_pyfunc(path): MLflow could not load these models")


def _check_layout(path: Path, flavor: Flavor) -> Model:
    assert (path / "MLmodel").is_file(), "save_model wrote no MLmodel"
    meta = Model.load(path)
    assert flavor.name in meta.flavors, f"MLmodel lacks the {flavor.name!r} flavor: {sorted(meta.flavors)}"
    for name in (CONDA_ENV_FILE, REQUIREMENTS_FILE, PYTHON_ENV_FILE):
        assert (path / name).is_file(), f"save_model wrote no {name}"
    conda = yaml.safe_load((path / CONDA_ENV_FILE).read_text())
    assert isinstance(conda, dict) and "dependencies" in conda, "conda.yaml has no dependencies"
    assert meta.model_uuid and meta.utc_time_created, "MLmodel lacks model_uuid or utc_time_created"
    again = Model.from_dict(yaml.safe_load(meta.to_yaml()))
    assert again.to_dict() == meta.to_dict(), "MLmodel does not survive a load/save round trip"
    if flavor.load_pyfunc is not None:
        conf = meta.flavors.get(PYFUNC, {})
        assert conf.get("loader_module") == flavor.module, (
            f"python_function.loader_module is {conf.get('loader_module')!r}, expected {flavor.module!r}")
        assert conf.get("env"), "python_function flavor lacks env"
    return meta


def _check_pyfunc(path: Path, meta: Model, model_input: Any, expected: Any) -> None:
    from spark_models.pyfunc.loading import load_model as load_pyfunc

    if PYFUNC not in meta.flavors:
        return
    for uri in (str(path), path.resolve().as_uri()):
        _assert_same(load_pyfunc(uri).predict(model_input), expected, f"pyfunc predict via {uri}")


def _check_spark_udf(spark: Any, path: Path, model_input: pd.DataFrame, expected: Any) -> None:
    """Score through spark_udf (columns bound from the signature) and compare, row for row."""
    from udf import spark_udf

    frame = model_input.reset_index(drop=True).assign(_row_=range(len(model_input)))
    scored = spark.createDataFrame(frame).withColumn("_prediction_", spark_udf(spark, str(path))())
    out = scored.orderBy("_row_").toPandas()
    assert len(out) == len(frame), f"spark_udf returned {len(out)} rows for {len(frame)}"
    expected = expected.to_numpy() if isinstance(expected, (pd.Series, pd.DataFrame)) else np.asarray(expected)
    expected = np.squeeze(expected)
    if expected.dtype == object and expected.ndim == 1 and all(isinstance(v, np.ndarray) for v in expected):
        expected = np.stack(list(expected))  # one output column of arrays (array<...>): a row per array
    if expected.dtype == object and expected.ndim == 1 and all(isinstance(v, dict) for v in expected):
        got = [r.asDict(recursive=True) if hasattr(r, "asDict") else r for r in out["_prediction_"]]
        assert got == list(expected), f"spark_udf: {got!r} != {list(expected)!r}"  # struct rows
        return
    _assert_same(np.asarray(out["_prediction_"].tolist()), expected, "spark_udf")


def check_flavor(
    flavor: Flavor | ModuleType,
    model: Any,
    model_input: Any,
    tmp_dir: str | os.PathLike,
    *,
    native_predict: Callable[[Any, Any], Any] | None = None,
    save: Callable[..., Any] | None = None,
    spark: Any = None,
) -> None:
    """Run the conformance rules on ``flavor`` (a Flavor, or a module defining ``FLAVOR``).

    ``native_predict(native_model, model_input)`` gives the expected predictions (default:
    ``native_model.predict(model_input)``); ``save(model, path, **kwargs)`` overrides how the
    model is saved (default: ``flavor.save_model(model, path, **kwargs)``). With ``spark``
    (a SparkSession) the saved model is also scored through ``spark_udf``.
    """
    flavor = _as_flavor(flavor)
    _check_contract(flavor)
    tmp = Path(tmp_dir)
    native_predict = native_predict or (lambda m, x: m.predict(x))
    save = save or (lambda m, p, **kw: flavor.save_model(m, p, **kw))
    expected = native_predict(model, model_input)

    path = tmp / "conformance-plain"
    save(model, path)
    meta = _check_layout(path, flavor)
    _assert_same(native_predict(flavor.load_model(str(path)), model_input), expected, "native load_model")
    _check_pyfunc(path, meta, model_input, expected)

    try:
        save(model, path)
    except InvalidArgumentError:
        pass
    else:
        raise AssertionError("save_model into an existing model directory did not raise InvalidArgumentError")

    example = model_input.head(2) if isinstance(model_input, pd.DataFrame) else model_input[:2]
    path = tmp / "conformance-example"
    save(model, path, input_example=example)
    meta = Model.load(path)
    assert meta.saved_input_example_info, "input_example was not recorded in MLmodel"
    assert meta.signature is not None and meta.signature.inputs is not None, "no signature inferred from input_example"
    _assert_same(meta.load_input_example(path), example, "input example round trip")
    _check_pyfunc(path, meta, model_input, expected)
    if spark is not None and PYFUNC in meta.flavors and isinstance(model_input, pd.DataFrame):
        _check_spark_udf(spark, path, model_input, expected)
