"""The tensorflow flavor: MLflow 3's layouts (Keras ``.keras``/``.h5``, TF2 SavedModel, TF1
signatures, Keras 2 SavedModels), pyfunc scoring (arrays, DataFrames, dicts, several inputs,
images), safe mode, threads, devices, and MLflow in both directions."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ info lines; warnings and errors still show

import logging  # noqa: E402
import shutil  # noqa: E402
from importlib import metadata  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import yaml  # noqa: E402

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

import spark_models.pyfunc  # noqa: E402
import spark_models.tensorflow  # noqa: E402
from spark_models.exceptions import (  # noqa: E402
    ArtifactNotFoundError,
    InvalidArgumentError,
    MalformedModelError,
    NotSupportedError,
    SchemaEnforcementError,
    UnsafeModelError,
)
from spark_models.flavors import keras_support  # noqa: E402
from spark_models.flavors.testing import check_flavor  # noqa: E402
from spark_models.mlmodel import Model  # noqa: E402
from spark_models.models import infer_signature  # noqa: E402
from tests.isolation import run_json  # noqa: E402

FLAVOR = spark_models.tensorflow.FLAVOR
# Keras' TensorFlow backend calls np.array(variable) when saving weights, which numpy 2 flags.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")
FEATURES = ["a", "b", "c"]


@pytest.fixture(scope="module")
def X():
    return np.random.default_rng(0).normal(size=(40, 3)).astype(np.float32)


@pytest.fixture(scope="module")
def frame(X):
    return pd.DataFrame(X.astype(np.float64), columns=FEATURES)


@pytest.fixture(scope="module")
def dense():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((3,), name="x")
    return keras.Model(inputs, keras.layers.Dense(1)(keras.layers.Dense(4, activation="relu")(inputs)))


class Affine(tf.Module):
    """A tf.Module with a serving signature: x @ w + b."""

    def __init__(self):
        super().__init__()
        self.w = tf.Variable([[1.0, -2.0], [0.5, 1.0], [2.0, 0.0]])
        self.b = tf.Variable([0.25, -1.0])

    @tf.function(input_signature=[tf.TensorSpec((None, 3), tf.float32, name="x")])
    def __call__(self, x):
        return tf.matmul(x, self.w) + self.b


@pytest.fixture(scope="module")
def module():
    return Affine()


def affine(X):
    return X.astype(np.float32) @ np.array([[1.0, -2.0], [0.5, 1.0], [2.0, 0.0]], np.float32) + np.float32([0.25, -1.0])


def keras_predict(model, data):
    return model.predict(data, verbose=0)


def edit_mlmodel(path, change):
    meta = yaml.safe_load((path / "MLmodel").read_text())
    change(meta["flavors"])
    (path / "MLmodel").write_text(yaml.safe_dump(meta))


def tf_pin():
    dist = keras_support.tensorflow_distribution()
    return f"{dist}=={metadata.version(dist).split('+')[0]}"


# ---- conformance and layout --------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.spark
def test_keras_model_passes_check_flavor_with_spark(spark, dense, frame, tmp_path):
    """Column signature from a DataFrame example; spark_udf scores the columns on local[2]."""
    check_flavor(FLAVOR, dense, frame, tmp_path, native_predict=keras_predict, spark=spark)


@pytest.mark.slow
@pytest.mark.spark
def test_tf_module_passes_check_flavor_with_spark(spark, module, frame, tmp_path):
    check_flavor(FLAVOR, module, frame, tmp_path, spark=spark,
                 native_predict=lambda m, data: m(np.asarray(data, np.float32)).numpy())


def test_keras_layout_matches_mlflow(dense, X, tmp_path):
    spark_models.tensorflow.save_model(dense, tmp_path / "m", input_example=X[:3])
    root = tmp_path / "m"
    assert sorted(p.name for p in (root / "data").iterdir()) == ["keras_module.txt", "model.keras", "save_format.txt"]
    assert (root / "data" / "keras_module.txt").read_text() == "tensorflow.keras"
    assert (root / "data" / "save_format.txt").read_text() == "tf"
    flavors = yaml.safe_load((root / "MLmodel").read_text())["flavors"]
    assert flavors["tensorflow"] == {"code": None, "data": "data", "model_type": "keras",
                                     "keras_version": tf.__version__, "save_format": "tf"}
    assert flavors["python_function"]["data"] == "data"
    assert flavors["python_function"]["loader_module"] == "spark_models.tensorflow"
    requirements = (root / "requirements.txt").read_text().splitlines()
    assert tf_pin() in requirements and f"keras=={keras.__version__}" in requirements
    assert not any(r.startswith("cloudpickle") for r in requirements)
    meta = Model.load(root)
    assert meta.signature.inputs.is_tensor_spec() and meta.signature.inputs.inputs[0].shape == (-1, 3)
    loaded = spark_models.tensorflow.load_model(root, allow_code=False)
    assert isinstance(loaded, keras.Model)
    np.testing.assert_array_equal(keras_predict(loaded, X), keras_predict(dense, X))
    out = spark_models.pyfunc.load_model(root, allow_code=False).predict(X)
    assert isinstance(out, np.ndarray)
    np.testing.assert_array_equal(out, keras_predict(dense, X))


def test_requirements_pin_the_distribution_that_provides_tensorflow():
    names = metadata.packages_distributions()["tensorflow"]
    expected = "tensorflow" if "tensorflow" in names else metadata.metadata(names[0])["Name"]
    assert keras_support.tensorflow_distribution() == expected
    assert tf_pin() in spark_models.tensorflow.default_pip_requirements()
    assert keras_support.providing_distribution("yaml", "pyyaml").lower() == "pyyaml"
    assert keras_support.providing_distribution("no_such_module_here", "wanted") == "wanted"


def test_h5_save_format(dense, X, tmp_path):
    spark_models.tensorflow.save_model(dense, tmp_path / "m", keras_model_kwargs={"save_format": "h5"})
    assert (tmp_path / "m" / "data" / "model.h5").is_file()
    assert (tmp_path / "m" / "data" / "save_format.txt").read_text() == "h5"
    assert Model.load(tmp_path / "m").get_flavor("tensorflow")["save_format"] == "h5"
    loaded = spark_models.tensorflow.load_model(tmp_path / "m", allow_code=False)
    np.testing.assert_allclose(keras_predict(loaded, X), keras_predict(dense, X), rtol=1e-6)
    pyfunc = spark_models.pyfunc.load_model(tmp_path / "m", allow_code=False)
    np.testing.assert_allclose(pyfunc.predict(X), keras_predict(dense, X), rtol=1e-6)


def test_module_layout_and_inputs(module, X, frame, tmp_path):
    spark_models.tensorflow.save_model(module, tmp_path / "m", signature=infer_signature(X, affine(X)))
    root = tmp_path / "m"
    assert (root / "tf2model" / "saved_model.pb").is_file()
    flavors = yaml.safe_load((root / "MLmodel").read_text())["flavors"]
    assert flavors["tensorflow"] == {"code": None, "model_type": "tf2-module", "saved_model_dir": "tf2model"}
    assert "data" not in flavors["python_function"]
    requirements = (root / "requirements.txt").read_text().splitlines()
    assert tf_pin() in requirements and not any(r.startswith("keras") for r in requirements)
    native = spark_models.tensorflow.load_model(root)
    np.testing.assert_allclose(native(X).numpy(), affine(X), rtol=1e-6)
    with_signature = spark_models.pyfunc.load_model(root)
    np.testing.assert_allclose(with_signature.predict(X), affine(X), rtol=1e-6)
    with pytest.raises(SchemaEnforcementError, match="expected dtype float32"):
        with_signature.predict(X.astype(np.float64))  # tensor signatures are strict, as in MLflow

    meta = yaml.safe_load((root / "MLmodel").read_text())
    meta.pop("signature")
    (root / "MLmodel").write_text(yaml.safe_dump(meta))
    model = spark_models.pyfunc.load_model(root)
    np.testing.assert_allclose(model.predict(X.astype(np.float64)), affine(X), rtol=1e-6)  # cast to the input signature
    indexed = frame.set_axis(range(100, 140))
    out = model.predict(indexed)
    assert isinstance(out, pd.DataFrame) and list(out.index) == list(range(100, 140))
    np.testing.assert_allclose(out.to_numpy(), affine(X), rtol=1e-6)
    np.testing.assert_allclose(model.predict({"x": X}), affine(X), rtol=1e-6)  # keyword arguments
    with pytest.raises(InvalidArgumentError, match="not str"):
        model.predict("not data")


def test_module_scored_through_a_signature(module, X, tmp_path):
    spark_models.tensorflow.save_model(module, tmp_path / "m")
    model = spark_models.pyfunc.load_model(tmp_path / "m", model_config={"signature_def_key": "serving_default"})
    out = model.predict({"x": X})
    assert list(out) == ["output_0"]
    np.testing.assert_allclose(out["output_0"], affine(X), rtol=1e-6)
    frame = pd.DataFrame({"x": list(X.astype(np.float64))})  # one column of arrays, named after the input
    scored = model.predict(frame)
    assert isinstance(scored, pd.DataFrame) and list(scored.columns) == ["output_0"]
    np.testing.assert_allclose(np.stack(scored["output_0"]), affine(X), rtol=1e-6)
    with pytest.raises(SchemaEnforcementError, match=r"inputs \['x'\] are missing"):
        model.predict(pd.DataFrame({"y": list(X)}))
    with pytest.raises(MalformedModelError, match="no signature 'predict'.*serving_default"):
        spark_models.pyfunc.load_model(tmp_path / "m", model_config={"signature_def_key": "predict"})


def test_tf1_estimator_entry_loads_its_signature(module, X, tmp_path):
    """MLflow 1.x's layout: saved_model_dir, meta_graph_tags, signature_def_key (no model_type)."""
    root = tmp_path / "m"
    spark_models.tensorflow.save_model(module, root)
    shutil.rmtree(root / "tf2model")
    tf.saved_model.save(module, str(root / "tfmodel"), signatures={"predict": module.__call__.get_concrete_function()})
    edit_mlmodel(root, lambda f: f.update(tensorflow={"saved_model_dir": "tfmodel", "meta_graph_tags": ["serve"],
                                                      "signature_def_key": "predict"}))
    infer = spark_models.tensorflow.load_model(root)
    np.testing.assert_allclose(infer(x=tf.constant(X))["output_0"].numpy(), affine(X), rtol=1e-6)
    out = spark_models.pyfunc.load_model(root).predict({"x": X.astype(np.float64)})
    np.testing.assert_allclose(out["output_0"], affine(X), rtol=1e-6)
    edit_mlmodel(root, lambda f: f["tensorflow"].update(signature_def_key="classify"))
    with pytest.raises(MalformedModelError, match="no signature 'classify'.*predict"):
        spark_models.tensorflow.load_model(root)


def test_keras_2_saved_model_directory_scores_through_its_serving_signature(dense, X, tmp_path):
    """TensorFlow < 2.16 MLflow saved Keras models as a SavedModel directory data/model, which
    Keras 3 cannot load as a model (MLflow 3 cannot load it at all); pyfunc uses its signature."""
    root = tmp_path / "m"
    spark_models.tensorflow.save_model(dense, root)
    (root / "data" / "model.keras").unlink()
    dense.export(str(root / "data" / "model"), verbose=False)
    edit_mlmodel(root, lambda f: f["tensorflow"].update(keras_version="2.15.0"))
    out = spark_models.pyfunc.load_model(root).predict(X)
    assert list(out) == ["output_0"]
    np.testing.assert_allclose(out["output_0"], keras_predict(dense, X).ravel(), rtol=1e-5)
    with pytest.raises(NotSupportedError, match="Keras 2 SavedModel"):
        spark_models.tensorflow.load_model(root)
    with pytest.raises(UnsafeModelError, match="SavedModel 'data/model'"):
        spark_models.pyfunc.load_model(root, allow_code=False)


def test_keras_model_with_several_inputs(X, tmp_path):
    a, b = keras.Input((2,), name="a"), keras.Input((1,), name="b")
    model = keras.Model([a, b], keras.layers.Dense(1)(keras.layers.Concatenate()([a, b])))
    spark_models.tensorflow.save_model(model, tmp_path / "m")
    inputs = {"a": X[:, :2], "b": X[:, 2:]}
    expected = keras_predict(model, inputs)
    pyfunc = spark_models.pyfunc.load_model(tmp_path / "m")
    np.testing.assert_allclose(pyfunc.predict(inputs), expected, rtol=1e-6)
    frame = pd.DataFrame({"b": X[:, 2].astype(np.float64), "a": list(X[:, :2])})  # arrays and scalars, any order
    out = pyfunc.predict(frame)
    assert isinstance(out, pd.DataFrame)
    np.testing.assert_allclose(out.to_numpy(), expected, rtol=1e-6)
    with pytest.raises(SchemaEnforcementError, match=r"inputs \['a', 'b'\].*missing \['b'\]"):
        pyfunc.predict(frame.drop(columns="b"))


def test_keras_model_with_several_outputs_gives_a_dict_by_output_name(X, tmp_path):
    inputs = keras.Input((3,), name="x")
    hidden = keras.layers.Dense(3)(inputs)
    model = keras.Model(inputs, [keras.layers.Dense(1, name="score")(hidden), keras.layers.Dense(2, name="probs")(hidden)])
    spark_models.tensorflow.save_model(model, tmp_path / "m")
    score, probs = keras_predict(model, X)
    out = spark_models.pyfunc.load_model(tmp_path / "m").predict(pd.DataFrame(X))
    assert sorted(out) == ["probs", "score"]
    np.testing.assert_allclose(out["score"], score, rtol=1e-6)
    np.testing.assert_allclose(out["probs"], probs, rtol=1e-6)


def test_conv2d_model_on_image_tensors(tmp_path):
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3, activation="relu"),
                              keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(2)])
    images = np.random.default_rng(1).uniform(size=(6, 8, 8, 3)).astype(np.float32)
    spark_models.tensorflow.save_model(model, tmp_path / "m", input_example=images[:2])
    assert Model.load(tmp_path / "m").signature.inputs.inputs[0].shape == (-1, 8, 8, 3)
    out = spark_models.pyfunc.load_model(tmp_path / "m", allow_code=False).predict(images)
    np.testing.assert_allclose(out, keras_predict(model, images), rtol=1e-6)


# ---- saving: refusals and extras ---------------------------------------------------------

def test_save_refusals_leave_nothing_behind(dense, X, tmp_path):
    from spark_models.schema.signature import ModelSignature
    from spark_models.schema.types import Schema, TensorSpec

    with pytest.raises(InvalidArgumentError, match="Keras model or a tf.Module"):
        spark_models.tensorflow.save_model({"not": "a model"}, tmp_path / "a")
    fixed = ModelSignature(Schema([TensorSpec(np.float32, (8, 3))]))
    with pytest.raises(InvalidArgumentError, match="-1 .any batch size"):
        spark_models.tensorflow.save_model(dense, tmp_path / "b", signature=fixed)
    with pytest.raises(InvalidArgumentError, match="save_format"):
        spark_models.tensorflow.save_model(dense, tmp_path / "c", keras_model_kwargs={"save_format": "pb"})
    with pytest.raises(ArtifactNotFoundError, match="nope.txt' does not exist"):
        spark_models.tensorflow.save_model(dense, tmp_path / "d", extra_files=[str(tmp_path / "nope.txt")])
    assert not any((tmp_path / n).exists() for n in "abcd")


def test_extra_files_and_code_paths(module, tmp_path):
    (tmp_path / "vocab.txt").write_text("a\nb\n")
    (tmp_path / "helper_mod_tf.py").write_text("X = 1\n")
    spark_models.tensorflow.save_model(module, tmp_path / "m", extra_files=[str(tmp_path / "vocab.txt")],
                                       code_paths=[str(tmp_path / "helper_mod_tf.py")])
    conf = Model.load(tmp_path / "m").get_flavor("tensorflow")
    assert conf["extra_files"] == [{"path": "extra_files/vocab.txt"}] and conf["code"] == "code"
    assert (tmp_path / "m" / "extra_files" / "vocab.txt").read_text() == "a\nb\n"
    assert (tmp_path / "m" / "code" / "helper_mod_tf.py").is_file()
    with pytest.raises(UnsafeModelError, match="ships code"):
        spark_models.tensorflow.load_model(tmp_path / "m", allow_code=False)


# ---- trust -------------------------------------------------------------------------------

@pytest.mark.parametrize("save_format, file", [("tf", "model.keras"), ("h5", "model.h5")])
def test_lambda_layer_is_refused_in_safe_mode(save_format, file, X, tmp_path):
    inputs = keras.Input((3,), name="x")
    model = keras.Model(inputs, keras.layers.Lambda(lambda t: t * 2.0)(keras.layers.Dense(2)(inputs)))
    spark_models.tensorflow.save_model(model, tmp_path / "m", keras_model_kwargs={"save_format": save_format})
    for load in (spark_models.pyfunc.load_model, spark_models.tensorflow.load_model):
        with pytest.raises(UnsafeModelError, match=rf"'data/{file}' holds Python code .*`Lambda` layer"):
            load(tmp_path / "m", allow_code=False)
    with pytest.raises(UnsafeModelError, match="safe_mode=False"):
        spark_models.tensorflow.load_model(tmp_path / "m", allow_code=False, keras_model_kwargs={"safe_mode": False})
    trusted = spark_models.pyfunc.load_model(tmp_path / "m", allow_code=True)
    np.testing.assert_allclose(trusted.predict(X), keras_predict(model, X), rtol=1e-6)


def scaled_relu(x):
    return 2.0 * keras.ops.relu(x)


def test_custom_objects_are_pickled_as_mlflow_does_and_need_allow_code(X, tmp_path):
    inputs = keras.Input((3,), name="x")
    model = keras.Model(inputs, keras.layers.Dense(2, activation=scaled_relu)(inputs))
    spark_models.tensorflow.save_model(model, tmp_path / "m", custom_objects={"scaled_relu": scaled_relu})
    assert (tmp_path / "m" / "data" / "custom_objects.cloudpickle").is_file()
    assert any(r.startswith("cloudpickle==") for r in (tmp_path / "m" / "requirements.txt").read_text().splitlines())
    with pytest.raises(UnsafeModelError, match="unpickles 'data/custom_objects.cloudpickle'"):
        spark_models.pyfunc.load_model(tmp_path / "m", allow_code=False)
    loaded = spark_models.tensorflow.load_model(tmp_path / "m")
    np.testing.assert_allclose(keras_predict(loaded, X), keras_predict(model, X), rtol=1e-6)


def test_saved_models_are_refused_in_safe_mode(module, tmp_path):
    spark_models.tensorflow.save_model(module, tmp_path / "m")
    for load in (spark_models.pyfunc.load_model, spark_models.tensorflow.load_model):
        with pytest.raises(UnsafeModelError, match="SavedModel 'tf2model', which is a program"):
            load(tmp_path / "m", allow_code=False)


def test_unknown_model_type_and_broken_files_are_malformed(dense, module, tmp_path):
    spark_models.tensorflow.save_model(module, tmp_path / "m")
    edit_mlmodel(tmp_path / "m", lambda f: f["tensorflow"].update(model_type="tf3-thing"))
    with pytest.raises(MalformedModelError, match="unknown tensorflow model_type 'tf3-thing'"):
        spark_models.tensorflow.load_model(tmp_path / "m")
    spark_models.tensorflow.save_model(dense, tmp_path / "k")
    (tmp_path / "k" / "data" / "model.keras").write_bytes(b"not a zip")
    with pytest.raises(MalformedModelError, match="model.keras"):
        spark_models.tensorflow.load_model(tmp_path / "k")


# ---- threads and devices -----------------------------------------------------------------

def test_device_mapping():
    assert keras_support.tf_device({"device": "cpu"}, gpus=("0",)) == "/CPU:0"
    assert keras_support.tf_device({"device": "cuda:1"}) == "/GPU:1"
    assert keras_support.tf_device(None, gpus=("3", "4")) == "/GPU:3"  # a Spark task's first GPU
    assert keras_support.tf_device({"device": "cuda"}, gpus=("2",)) == "/GPU:2"
    assert keras_support.tf_device(None, gpus=()) == "/CPU:0"
    assert keras_support.keras_device(None, gpus=("2",)) == "gpu:2"
    assert keras_support.keras_device({"device": "mps"}, backend="torch") == "mps"
    with pytest.raises(InvalidArgumentError, match="model_config\\['device'\\]"):
        keras_support.tf_device({"device": "tpu"})


def test_a_gpu_tensorflow_cannot_see_is_refused(dense, X, tmp_path):
    spark_models.tensorflow.save_model(dense, tmp_path / "m")
    if tf.config.list_physical_devices("GPU"):
        pytest.skip("this machine has a GPU")
    with pytest.raises(InvalidArgumentError, match=r"device gpu:0 .*sees 0 GPU"):
        spark_models.pyfunc.load_model(tmp_path / "m", model_config={"device": "cuda:0"})
    on_cpu = spark_models.pyfunc.load_model(tmp_path / "m", model_config={"device": "cpu"})
    assert on_cpu.get_raw_model().device == "cpu:0"
    np.testing.assert_array_equal(on_cpu.predict(X), keras_predict(dense, X))


def test_threads_after_tensorflow_started_are_logged_not_raised(dense, X, tmp_path, caplog, monkeypatch):
    monkeypatch.delenv("SPARK_MODELS_NUM_THREADS", raising=False)
    tf.constant(1.0)  # TensorFlow's runtime is running in this process
    spark_models.tensorflow.save_model(dense, tmp_path / "m")
    before = tf.config.threading.get_intra_op_parallelism_threads()
    with caplog.at_level(logging.WARNING, logger="spark_models.flavors.keras_support"):
        model = spark_models.pyfunc.load_model(tmp_path / "m", model_config={"num_threads": 7})
    assert "cannot be resized to 7" in caplog.text
    assert tf.config.threading.get_intra_op_parallelism_threads() == before
    np.testing.assert_array_equal(model.predict(X), keras_predict(dense, X))
    with pytest.raises(InvalidArgumentError, match="positive number of threads"):
        spark_models.pyfunc.load_model(tmp_path / "m", model_config={"num_threads": 0})


THREADS = r'''
import json, os
import spark_models.pyfunc
model = spark_models.pyfunc.load_model({path!r}, model_config={{"num_threads": 1}})
import numpy as np, tensorflow as tf
model.predict(np.ones((2, 3), np.float32))
print(json.dumps([tf.config.threading.get_intra_op_parallelism_threads(),
                  tf.config.threading.get_inter_op_parallelism_threads(), model.get_raw_model().threads]))
'''


@pytest.mark.slow
def test_threads_are_set_before_tensorflow_starts(dense, module, tmp_path):
    spark_models.tensorflow.save_model(dense, tmp_path / "k")
    spark_models.tensorflow.save_model(module, tmp_path / "t")
    for name in ("k", "t"):
        assert run_json(THREADS.format(path=str(tmp_path / name))) == [1, 1, 1]


# ---- processes: imports, MLflow ----------------------------------------------------------

HEAVY = ("mlflow", "torch", "sklearn", "xgboost", "lightgbm", "jax")
IMPORTS = r'''
import json, sys
import numpy as np
{body}
print(json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)))
'''


@pytest.mark.slow
def test_scoring_imports_tensorflow_and_nothing_else_heavy(dense, module, X, tmp_path):
    spark_models.tensorflow.save_model(dense, tmp_path / "k")
    spark_models.tensorflow.save_model(module, tmp_path / "t")
    np.save(tmp_path / "X.npy", X)
    score = "\n".join(f"import spark_models.pyfunc\nspark_models.pyfunc.load_model({str(tmp_path / n)!r})"
                      f".predict(np.load({str(tmp_path / 'X.npy')!r}))" for n in ("k", "t"))
    scored = run_json(IMPORTS.format(body=score, heavy=HEAVY))
    library_alone = run_json(IMPORTS.format(body="import tensorflow, keras", heavy=HEAVY))
    assert "mlflow" not in scored and "torch" not in scored
    assert scored == library_alone  # TensorFlow imports scikit-learn itself when it is installed


MLFLOW_WRITES = r'''
import json, os, numpy as np, pandas as pd, tensorflow as tf, keras, mlflow.pyfunc, mlflow.tensorflow
root = {root!r}
X = np.random.default_rng(0).normal(size=(20, 3)).astype(np.float32)
np.save(root + "/X.npy", X)
keras.utils.set_random_seed(0)
inputs = keras.Input((3,), name="x")
model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Dense(4, activation="relu")(inputs)))
class Affine(tf.Module):
    def __init__(self):
        self.w = tf.Variable([[1.0, -2.0], [0.5, 1.0], [2.0, 0.0]])
    @tf.function(input_signature=[tf.TensorSpec((None, 3), tf.float32)])
    def __call__(self, x):
        return tf.matmul(x, self.w)
mlflow.tensorflow.save_model(model, root + "/keras", input_example=X[:2])
mlflow.tensorflow.save_model(model, root + "/keras_h5", keras_model_kwargs={{"save_format": "h5"}})
mlflow.tensorflow.save_model(Affine(), root + "/module", input_example=X[:2])
out = {{name: np.asarray(mlflow.pyfunc.load_model(root + "/" + name).predict(X)).tolist()
       for name in ("keras", "keras_h5", "module")}}
print(json.dumps(out))
'''

READS_WITHOUT_MLFLOW = r'''
import json, sys, numpy as np, spark_models.pyfunc, spark_models.tensorflow
root = {root!r}
X = np.load(root + "/X.npy")
out = {{}}
for name, allow_code in (("keras", False), ("keras_h5", False), ("module", True)):
    out[name] = np.asarray(spark_models.pyfunc.load_model(root + "/" + name, allow_code=allow_code).predict(X)).tolist()
    out[name + ":native"] = type(spark_models.tensorflow.load_model(root + "/" + name)).__name__
out["mlflow_loaded"] = any(m.split(".")[0] == "mlflow" for m in sys.modules)
print(json.dumps(out))
'''


@pytest.mark.slow
def test_mlflow_written_models_load_where_mlflow_cannot_be_imported(tmp_path):
    pytest.importorskip("mlflow")
    expected = run_json(MLFLOW_WRITES.format(root=str(tmp_path)))
    got = run_json(READS_WITHOUT_MLFLOW.format(root=str(tmp_path)), blocked=("mlflow",))
    assert got.pop("mlflow_loaded") is False
    natives = {name: got.pop(name + ":native") for name in expected}
    assert natives["keras"] == natives["keras_h5"] == "Functional" and natives["module"] == "_UserObject"
    for name in expected:
        np.testing.assert_allclose(got[name], expected[name], rtol=1e-6, err_msg=name)


@pytest.mark.slow
def test_our_models_load_in_mlflow(dense, module, X, tmp_path):
    mlflow_pyfunc = pytest.importorskip("mlflow.pyfunc")
    import mlflow.tensorflow

    spark_models.tensorflow.save_model(dense, tmp_path / "k", input_example=X[:3])
    spark_models.tensorflow.save_model(dense, tmp_path / "h", keras_model_kwargs={"save_format": "h5"})
    spark_models.tensorflow.save_model(module, tmp_path / "t", input_example=X[:3])
    for name in ("k", "h", "t"):
        ours = spark_models.pyfunc.load_model(tmp_path / name).predict(X)
        np.testing.assert_allclose(mlflow_pyfunc.load_model(str(tmp_path / name)).predict(X), ours, rtol=1e-6)
    theirs = mlflow.tensorflow.load_model(str(tmp_path / "k"))
    assert isinstance(theirs, keras.Model)
    np.testing.assert_allclose(keras_predict(theirs, X), keras_predict(dense, X), rtol=1e-6)
    np.testing.assert_allclose(mlflow.tensorflow.load_model(str(tmp_path / "h")).predict(X, verbose=0),
                               keras_predict(dense, X), rtol=1e-6)
    np.testing.assert_allclose(mlflow.tensorflow.load_model(str(tmp_path / "t"))(X).numpy(), affine(X), rtol=1e-6)


def layout(root):
    """(flavor entries without environment details, files under data/) of a saved model."""
    flavors = yaml.safe_load((root / "MLmodel").read_text())["flavors"]
    pyfunc = {k: v for k, v in flavors.pop("python_function").items() if k not in ("loader_module", "env", "python_version")}
    environment = {"MLmodel", "conda.yaml", "python_env.yaml", "requirements.txt"}
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and p.name not in environment)
    return flavors, {k: v for k, v in pyfunc.items() if v is not None}, files


@pytest.mark.slow
def test_layouts_are_the_ones_mlflow_writes(dense, module, tmp_path):
    pytest.importorskip("mlflow")
    import mlflow.tensorflow

    cases = {"keras": (dense, {}), "h5": (dense, {"keras_model_kwargs": {"save_format": "h5"}}), "module": (module, {})}
    for name, (model, kwargs) in cases.items():
        mlflow.tensorflow.save_model(model, str(tmp_path / f"theirs_{name}"), **kwargs)
        spark_models.tensorflow.save_model(model, tmp_path / f"ours_{name}", **kwargs)
        assert layout(tmp_path / f"ours_{name}") == layout(tmp_path / f"theirs_{name}"), name
