"""The keras flavor (Keras 3, MLflow 3's ``mlflow.keras``): layout, ``.keras`` and exported
SavedModel forms, older MLflow's ``keras`` entries, safe mode, another backend (torch) writing
and reading, and MLflow in both directions."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ info lines; warnings and errors still show


import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import yaml  # noqa: E402

keras = pytest.importorskip("keras")
if keras.backend.backend() != "tensorflow":
    pytest.skip("these tests run Keras on its TensorFlow backend (KERAS_BACKEND unset)", allow_module_level=True)

import spark_models.keras  # noqa: E402
import spark_models.pyfunc  # noqa: E402
import spark_models.tensorflow  # noqa: E402
from spark_models.exceptions import ArtifactNotFoundError, InvalidArgumentError, UnsafeModelError  # noqa: E402
from spark_models.flavors import keras_support  # noqa: E402
from spark_models.flavors.testing import check_flavor  # noqa: E402
from spark_models.mlmodel import Model  # noqa: E402
from spark_models.models import infer_signature  # noqa: E402
from tests.isolation import run_json  # noqa: E402

FLAVOR = spark_models.keras.FLAVOR
# Keras' TensorFlow backend calls np.array(variable) when saving weights, which numpy 2 flags.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")


@pytest.fixture(scope="module")
def X():
    return np.random.default_rng(0).normal(size=(30, 4)).astype(np.float32)


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(5, activation="tanh"), keras.layers.Dense(1)])


def predict(m, data):
    return m.predict(data, verbose=0)


def edit_mlmodel(path, change):
    meta = yaml.safe_load((path / "MLmodel").read_text())
    change(meta["flavors"])
    (path / "MLmodel").write_text(yaml.safe_dump(meta))


def tf_pin():
    from importlib import metadata

    dist = keras_support.tensorflow_distribution()
    return f"{dist}=={metadata.version(dist).split('+')[0]}"


# ---- conformance and layout --------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.spark
def test_passes_check_flavor_with_spark(spark, model, X, tmp_path):
    frame = pd.DataFrame(X.astype(np.float64), columns=["a", "b", "c", "d"])
    check_flavor(FLAVOR, model, frame, tmp_path, native_predict=predict, spark=spark)


def test_layout_matches_mlflow(model, X, tmp_path):
    root = tmp_path / "m"
    spark_models.keras.save_model(model, root, input_example=X[:2])
    assert sorted(p.name for p in (root / "data").iterdir()) == ["keras_module.txt", "model.keras"]
    assert (root / "data" / "keras_module.txt").read_text() == "keras"
    flavors = yaml.safe_load((root / "MLmodel").read_text())["flavors"]
    assert flavors["keras"] == {"data": "data", "keras_version": keras.__version__, "keras_backend": "tensorflow",
                                "save_exported_model": False}
    assert flavors["python_function"]["loader_module"] == "spark_models.keras"
    assert "data" not in flavors["python_function"]  # MLflow's loader gets the model directory
    requirements = (root / "requirements.txt").read_text().splitlines()
    assert f"keras=={keras.__version__}" in requirements and tf_pin() in requirements
    assert f"keras=={keras.__version__}" in spark_models.keras.default_pip_requirements()
    loaded = spark_models.keras.load_model(root, allow_code=False)
    assert isinstance(loaded, keras.Sequential)
    np.testing.assert_array_equal(predict(loaded, X), predict(model, X))
    np.testing.assert_array_equal(spark_models.pyfunc.load_model(root, allow_code=False).predict(X), predict(model, X))


def test_exported_model(model, X, tmp_path):
    root = tmp_path / "m"
    spark_models.keras.save_model(model, root, save_exported_model=True, input_example=X[:2])
    assert (root / "data" / "model" / "saved_model.pb").is_file()
    assert Model.load(root).get_flavor("keras")["save_exported_model"] is True
    pyfunc = spark_models.pyfunc.load_model(root)
    np.testing.assert_allclose(pyfunc.predict(X), predict(model, X), rtol=1e-6)
    raw = pyfunc.get_raw_model()
    frame = pd.DataFrame(X.astype(np.float64)).set_axis(range(5, 35))
    out = raw.predict(frame)  # no signature in between: a DataFrame in, a DataFrame (same index) out
    assert isinstance(out, pd.DataFrame) and list(out.index) == list(range(5, 35))
    np.testing.assert_allclose(out.to_numpy(), predict(model, X), rtol=1e-6)
    native = spark_models.keras.load_model(root)
    np.testing.assert_allclose(native.serve(X).numpy(), predict(model, X), rtol=1e-6)
    with pytest.raises(UnsafeModelError, match="SavedModel 'data/model'"):
        spark_models.pyfunc.load_model(root, allow_code=False)


def test_exported_model_needs_a_tensor_signature(model, X, tmp_path):
    with pytest.raises(InvalidArgumentError, match="tensor inputs"):
        spark_models.keras.save_model(model, tmp_path / "a", save_exported_model=True)
    frame = pd.DataFrame(X, columns=list("abcd"))
    with pytest.raises(InvalidArgumentError, match="tensor inputs"):
        spark_models.keras.save_model(model, tmp_path / "b", save_exported_model=True,
                                      signature=infer_signature(frame, predict(model, X)))
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    with pytest.raises(InvalidArgumentError, match="keras.Model"):
        spark_models.keras.save_model(object(), tmp_path / "c")


def test_lambda_layer_is_refused_in_safe_mode(X, tmp_path):
    lam = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2), keras.layers.Lambda(lambda t: t + 1.0)])
    spark_models.keras.save_model(lam, tmp_path / "m")
    for load in (spark_models.pyfunc.load_model, spark_models.keras.load_model):
        with pytest.raises(UnsafeModelError, match=r"'data/model.keras' holds Python code .*`Lambda` layer"):
            load(tmp_path / "m", allow_code=False)
    np.testing.assert_allclose(spark_models.keras.load_model(tmp_path / "m").predict(X, verbose=0), predict(lam, X))


def test_safe_mode_holds_when_the_process_turned_keras_safe_mode_off(tmp_path):
    """keras.config.enable_unsafe_deserialization() makes Keras ignore safe_mode=True for .keras
    files; allow_code=False still refuses the Lambda layer."""
    from keras.src.backend.common import global_state

    lam = keras.Sequential([keras.Input((4,)), keras.layers.Lambda(lambda t: t - 1.0)])
    spark_models.keras.save_model(lam, tmp_path / "m")
    keras.config.enable_unsafe_deserialization()
    try:
        keras.saving.load_model(str(tmp_path / "m" / "data" / "model.keras"), safe_mode=True)  # Keras alone: loads
        with pytest.raises(UnsafeModelError, match="`Lambda` layer"):
            spark_models.keras.load_model(tmp_path / "m", allow_code=False)
        assert global_state.get_global_attribute("safe_mode_saving") is False  # the process's setting is left as it was
    finally:
        global_state.set_global_attribute("safe_mode_saving", None)


def test_older_mlflow_keras_entry_with_h5(model, X, tmp_path):
    """MLflow < 2.12's mlflow.keras: keras_module, save_format h5, python_function data."""
    root = tmp_path / "m"
    spark_models.tensorflow.save_model(model, root, keras_model_kwargs={"save_format": "h5"})
    keras_entry = {"keras_module": "tensorflow.keras", "keras_version": "2.12.0", "save_format": "h5", "data": "data"}

    def to_old(flavors):
        flavors.pop("tensorflow")
        flavors["keras"] = keras_entry
        flavors["python_function"].update(loader_module="mlflow.keras", data="data")

    edit_mlmodel(root, to_old)
    np.testing.assert_allclose(predict(spark_models.keras.load_model(root, allow_code=False), X), predict(model, X), rtol=1e-6)
    np.testing.assert_allclose(spark_models.pyfunc.load_model(root, allow_code=False).predict(X), predict(model, X), rtol=1e-6)
    np.testing.assert_allclose(predict(spark_models.tensorflow.load_model(root), X), predict(model, X), rtol=1e-6)
    (root / "data" / "model.h5").unlink()
    with pytest.raises(ArtifactNotFoundError, match="model.h5' named in .*MLmodel does not exist"):
        spark_models.keras.load_model(root)


def test_multi_output_model_gives_a_dict(X, tmp_path):
    inputs = keras.Input((4,), name="features")
    outputs = {"left": keras.layers.Dense(1, name="left")(inputs), "right": keras.layers.Dense(2, name="right")(inputs)}
    m = keras.Model(inputs, outputs)
    spark_models.keras.save_model(m, tmp_path / "m")
    out = spark_models.pyfunc.load_model(tmp_path / "m").predict(X)
    expected = predict(m, X)
    assert sorted(out) == ["left", "right"]
    for name in out:
        np.testing.assert_allclose(out[name], expected[name], rtol=1e-6)


# ---- another backend ---------------------------------------------------------------------

TORCH_BACKEND = r'''
import json, os
os.environ["KERAS_BACKEND"] = "torch"
import numpy as np, keras, torch
import spark_models.keras, spark_models.pyfunc
root = {root!r}
keras.utils.set_random_seed(0)
m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="relu"), keras.layers.Dense(1)])
X = np.random.default_rng(0).normal(size=(10, 4)).astype(np.float32)
spark_models.keras.save_model(m, root + "/torch_model", input_example=X[:2])
np.save(root + "/X.npy", X)
model = spark_models.pyfunc.load_model(root + "/torch_model", model_config={{"num_threads": 1}})
out = model.predict(X)
print(json.dumps({{"expected": m.predict(X, verbose=0).tolist(), "ours": out.tolist(), "threads": torch.get_num_threads(),
                  "backend": keras.backend.backend()}}))
'''


@pytest.mark.slow
def test_a_model_saved_on_torch_loads_on_tensorflow(tmp_path):
    pytest.importorskip("torch")
    got = run_json(TORCH_BACKEND.format(root=str(tmp_path)))
    assert got["backend"] == "torch" and got["threads"] == 1
    np.testing.assert_allclose(got["ours"], got["expected"], rtol=1e-6)
    root = tmp_path / "torch_model"
    assert Model.load(root).get_flavor("keras")["keras_backend"] == "torch"
    requirements = (root / "requirements.txt").read_text().splitlines()
    assert any(r.startswith("torch==") for r in requirements) and not any(r.startswith("tensorflow") for r in requirements)
    X = np.load(tmp_path / "X.npy")
    here = spark_models.pyfunc.load_model(root, allow_code=False).predict(X)  # this process: the tensorflow backend
    np.testing.assert_allclose(here, got["expected"], rtol=1e-5)


# ---- processes: imports, MLflow ----------------------------------------------------------

IMPORTS = r'''
import json, sys
import numpy as np
{body}
print(json.dumps(sorted(m for m in ("mlflow", "torch", "sklearn", "xgboost", "jax") if m in sys.modules)))
'''


@pytest.mark.slow
def test_scoring_imports_keras_and_nothing_else_heavy(model, X, tmp_path):
    spark_models.keras.save_model(model, tmp_path / "m")
    np.save(tmp_path / "X.npy", X)
    score = (f"import spark_models.pyfunc\nspark_models.pyfunc.load_model({str(tmp_path / 'm')!r})"
             f".predict(np.load({str(tmp_path / 'X.npy')!r}))")
    scored = run_json(IMPORTS.format(body=score))
    assert "mlflow" not in scored and "torch" not in scored
    assert scored == run_json(IMPORTS.format(body="import keras"))  # Keras on TensorFlow imports scikit-learn itself


MLFLOW_WRITES = r'''
import json, numpy as np, keras, mlflow.keras, mlflow.pyfunc
from mlflow.models import infer_signature
root = {root!r}
keras.utils.set_random_seed(0)
m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="relu"), keras.layers.Dense(2)])
X = np.random.default_rng(0).normal(size=(10, 4)).astype(np.float32)
np.save(root + "/X.npy", X)
signature = infer_signature(X, m.predict(X, verbose=0))
mlflow.keras.save_model(m, root + "/plain", signature=signature)
mlflow.keras.save_model(m, root + "/exported", save_exported_model=True, signature=signature)
print(json.dumps({{n: np.asarray(mlflow.pyfunc.load_model(root + "/" + n).predict(X)).tolist() for n in ("plain", "exported")}}))
'''

READS_WITHOUT_MLFLOW = r'''
import json, sys, numpy as np, spark_models.keras, spark_models.pyfunc
root = {root!r}
X = np.load(root + "/X.npy")
out = {{n: np.asarray(spark_models.pyfunc.load_model(root + "/" + n, allow_code=n == "exported").predict(X)).tolist()
       for n in ("plain", "exported")}}
out["native"] = type(spark_models.keras.load_model(root + "/plain", allow_code=False)).__name__
out["mlflow_loaded"] = any(m.split(".")[0] == "mlflow" for m in sys.modules)
print(json.dumps(out))
'''


@pytest.mark.slow
def test_mlflow_written_models_load_where_mlflow_cannot_be_imported(tmp_path):
    pytest.importorskip("mlflow")
    expected = run_json(MLFLOW_WRITES.format(root=str(tmp_path)))
    got = run_json(READS_WITHOUT_MLFLOW.format(root=str(tmp_path)), blocked=("mlflow",))
    assert got.pop("mlflow_loaded") is False and got.pop("native") == "Sequential"
    for name in expected:
        np.testing.assert_allclose(got[name], expected[name], rtol=1e-6, err_msg=name)


@pytest.mark.slow
def test_our_models_load_in_mlflow(model, X, tmp_path):
    mlflow_pyfunc = pytest.importorskip("mlflow.pyfunc")
    import mlflow.keras

    spark_models.keras.save_model(model, tmp_path / "plain", input_example=X[:2])
    spark_models.keras.save_model(model, tmp_path / "exported", save_exported_model=True, input_example=X[:2])
    for name in ("plain", "exported"):
        ours = spark_models.pyfunc.load_model(tmp_path / name).predict(X)
        np.testing.assert_allclose(mlflow_pyfunc.load_model(str(tmp_path / name)).predict(X), ours, rtol=1e-6)
    theirs = mlflow.keras.load_model(str(tmp_path / "plain"))
    assert isinstance(theirs, keras.Sequential)
    np.testing.assert_allclose(predict(theirs, X), predict(model, X), rtol=1e-6)
    exported = mlflow.keras.load_model(str(tmp_path / "exported"))  # serve() needs the loaded object alive
    np.testing.assert_allclose(exported.serve(X).numpy(), predict(model, X), rtol=1e-6)


@pytest.mark.slow
def test_layouts_are_the_ones_mlflow_writes(model, X, tmp_path):
    pytest.importorskip("mlflow")
    import mlflow.keras
    import mlflow.models

    from tests.test_tensorflow_flavor import layout

    theirs, ours = mlflow.models.infer_signature(X, predict(model, X)), infer_signature(X, predict(model, X))
    for exported in (False, True):
        mlflow.keras.save_model(model, str(tmp_path / f"theirs_{exported}"), save_exported_model=exported, signature=theirs)
        spark_models.keras.save_model(model, tmp_path / f"ours_{exported}", save_exported_model=exported, signature=ours)
        assert layout(tmp_path / f"ours_{exported}") == layout(tmp_path / f"theirs_{exported}"), exported
