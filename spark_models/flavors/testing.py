"""``check_flavor``: the conformance suite every flavor passes (built-in or third-party).

Like scikit-learn's ``check_estimator``: call it from a test with a fitted model and some
input; it saves, reloads and scores the model every supported way and raises
``AssertionError`` naming the first broken rule.

    def test_my_flavor(tmp_path):
        check_flavor(my_flavor, fitted_model, sample_df, tmp_path)
"""

from __future__ import annotations

import os
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

import numpy as np
import pandas as pd
import yaml

from spark_models.environment import CONDA_ENV_FILE, PYTHON_ENV_FILE, REQUIREMENTS_FILE
from spark_models.exceptions import InvalidArgumentError
from spark_models.mlmodel import Model


def _assert_same(actual: Any, expected: Any, what: str) -> None:
    if isinstance(expected, (pd.DataFrame, pd.Series)):
        actual = actual if isinstance(actual, type(expected)) else type(expected)(actual)
        pd.testing.assert_frame_equal(actual, expected) if isinstance(expected, pd.DataFrame) else np.testing.assert_allclose(actual.to_numpy(), expected.to_numpy())
        return
    try:
        np.testing.assert_allclose(np.asarray(actual), np.asarray(expected), rtol=1e-9)
    except TypeError:
        assert np.array_equal(np.asarray(actual), np.asarray(expected)), f"{what}: {actual!r} != {expected!r}"


def _check_contract(flavor: ModuleType) -> None:
    for attr in ("FLAVOR_NAME", "save_model", "load_model"):
        assert hasattr(flavor, attr), f"flavor module {flavor.__name__} lacks {attr}"


def _check_layout(path: Path, flavor_name: str) -> Model:
    assert (path / "MLmodel").is_file(), "save_model wrote no MLmodel"
    meta = Model.load(path)
    assert flavor_name in meta.flavors, f"MLmodel lacks the {flavor_name!r} flavor: {sorted(meta.flavors)}"
    for name in (CONDA_ENV_FILE, REQUIREMENTS_FILE, PYTHON_ENV_FILE):
        assert (path / name).is_file(), f"save_model wrote no {name}"
    conda = yaml.safe_load((path / CONDA_ENV_FILE).read_text())
    assert isinstance(conda, dict) and "dependencies" in conda, "conda.yaml has no dependencies"
    assert meta.model_uuid and meta.utc_time_created, "MLmodel lacks model_uuid or utc_time_created"
    again = Model.from_dict(yaml.safe_load(meta.to_yaml()))
    assert again.to_dict() == meta.to_dict(), "MLmodel does not survive a load/save round trip"
    return meta


def _check_pyfunc(path: Path, meta: Model, model_input: Any, expected: Any) -> None:
    from spark_models.pyfunc import load_model as load_pyfunc

    if "python_function" not in meta.flavors:
        return
    conf = meta.flavors["python_function"]
    assert "loader_module" in conf, "python_function flavor lacks loader_module"
    assert conf.get("env"), "python_function flavor lacks env"
    for uri in (str(path), path.resolve().as_uri()):
        _assert_same(load_pyfunc(uri).predict(model_input), expected, f"pyfunc predict via {uri}")


def check_flavor(
    flavor: ModuleType,
    model: Any,
    model_input: Any,
    tmp_dir: str | os.PathLike,
    native_predict: Callable[[Any, Any], Any] | None = None,
    save: Callable[[Any, Path], Any] | None = None,
) -> None:
    """Run the conformance rules on ``flavor`` with a fitted ``model``.

    ``native_predict(native_model, model_input)`` gives the expected predictions (default:
    ``native_model.predict(model_input)``); ``save(model, path)`` overrides how the model
    is saved (default: ``flavor.save_model(model, path)``).
    """
    _check_contract(flavor)
    tmp = Path(tmp_dir)
    native_predict = native_predict or (lambda m, x: m.predict(x))
    save = save or (lambda m, p, **kw: flavor.save_model(m, p, **kw))
    expected = native_predict(model, model_input)

    path = tmp / "conformance-plain"
    save(model, path)
    meta = _check_layout(path, flavor.FLAVOR_NAME)
    reloaded = flavor.load_model(str(path))
    _assert_same(native_predict(reloaded, model_input), expected, "native load_model")
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
    loaded_example = meta.load_input_example(path)
    _assert_same(loaded_example, example, "input example round trip")
    _check_pyfunc(path, meta, model_input, expected)
