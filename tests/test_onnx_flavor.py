"""The onnx flavor: MLflow 3's layout, external data (and data that escapes the model directory),
providers and devices, session options and threads, pyfunc input/output forms, models converted
from scikit-learn (skl2onnx) and Spark ML (onnxmltools), MLflow interop both ways, spark_udf."""

import json
import os
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import yaml

import spark_models.onnx
import spark_models.pyfunc
from spark_models.exceptions import (
    ArtifactNotFoundError,
    InvalidArgumentError,
    MalformedModelError,
    SchemaEnforcementError,
    UnsafeModelError,
)
from spark_models.flavors import onnx as flavor
from spark_models.flavors.devices import task_gpus
from spark_models.flavors.testing import check_flavor
from spark_models.models import infer_signature
from tests.isolation import run_json

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
LOGGER = "spark_models.flavors.onnx"
CPU_ONLY = {"device": "cpu"}


def make_model(nodes, inputs, outputs, initializers=()):
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def linear_proto(width: int = 1):
    """y = x @ W + b, x: float (N, 3), y: float (N, width)."""
    weights = np.linspace(-1, 1, 3 * width, dtype=np.float32).reshape(3, width)
    return make_model(
        [helper.make_node("MatMul", ["x", "W"], ["xw"]), helper.make_node("Add", ["xw", "B"], ["y"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", width])],
        [numpy_helper.from_array(weights, "W"), numpy_helper.from_array(np.full(width, 0.5, np.float32), "B")])


def multi_proto():
    """Inputs a: float (N, 2), b: float (N, 1); outputs total = sum(a) + b (N, 1), scaled = a * b (N, 2)."""
    return make_model(
        [helper.make_node("ReduceSum", ["a", "axes"], ["s"], keepdims=1), helper.make_node("Add", ["s", "b"], ["total"]),
         helper.make_node("Mul", ["a", "b"], ["scaled"])],
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, ["N", 2]),
         helper.make_tensor_value_info("b", TensorProto.FLOAT, ["N", 1])],
        [helper.make_tensor_value_info("total", TensorProto.FLOAT, ["N", 1]),
         helper.make_tensor_value_info("scaled", TensorProto.FLOAT, ["N", 2])],
        [numpy_helper.from_array(np.array([1], dtype=np.int64), "axes")])


def run_ort(model, feeds):
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))


def canonical(model) -> bytes:
    """A model's bytes without the explicit "data is inline" marks onnx.load leaves on tensors it
    read from external data (proto2 tells a field set to its default from an absent one)."""
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    for tensor in copy.graph.initializer:
        tensor.ClearField("data_location")
    return copy.SerializeToString()


def edit_mlmodel(path: Path, change) -> None:
    meta = yaml.safe_load((path / "MLmodel").read_text())
    change(meta["flavors"])
    (path / "MLmodel").write_text(yaml.safe_dump(meta))


def onnx_conf(path: Path) -> dict:
    return yaml.safe_load((path / "MLmodel").read_text())["flavors"]["onnx"]


def session(model):
    """The InferenceSession inside a loaded pyfunc model."""
    return model.get_raw_model().get_raw_model()


@pytest.fixture(scope="module")
def X():
    return pd.DataFrame(np.random.default_rng(0).normal(size=(40, 3)), columns=["a", "b", "c"])


@pytest.fixture(scope="module")
def linear():
    return linear_proto()


@pytest.fixture(scope="module")
def multi():
    return multi_proto()


@pytest.fixture(scope="module")
def multi_feeds():
    rng = np.random.default_rng(1)
    return {"a": rng.normal(size=(7, 2)).astype(np.float32), "b": rng.normal(size=(7, 1)).astype(np.float32)}


# ---- conformance and layout --------------------------------------------------------------

@pytest.fixture(scope="module")
def sklearn_models(X):
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.linear_model import LinearRegression, LogisticRegression

    y = X.a + 2 * X.b - X.c
    reg, clf = LinearRegression().fit(X, y), LogisticRegression().fit(X, y > 0)
    types = [("input", FloatTensorType([None, 3]))]
    return (reg, convert_sklearn(reg, initial_types=types),
            clf, convert_sklearn(clf, initial_types=types, options={id(clf): {"zipmap": False}}))


def native_frame(model, X):
    """What the pyfunc form gives for a frame: ORT's outputs, one column each."""
    return pd.DataFrame({k: v.reshape(-1) for k, v in run_ort(model, {"input": X.to_numpy(np.float32)}).items()})


@pytest.mark.spark
def test_skl2onnx_regressor_passes_check_flavor_with_spark(spark, sklearn_models, X, tmp_path):
    check_flavor(spark_models.onnx.FLAVOR, sklearn_models[1], X, tmp_path, native_predict=native_frame, spark=spark)


def test_layout_has_mlflow_s_keys_and_round_trips(linear, X, tmp_path):
    x = X.to_numpy(np.float32)
    signature = infer_signature(x, run_ort(linear, {"x": x}))
    spark_models.onnx.save_model(linear, tmp_path / "m", signature=signature)
    meta = yaml.safe_load((tmp_path / "m" / "MLmodel").read_text())
    assert meta["flavors"]["onnx"] == {"onnx_version": onnx.__version__, "data": "model.onnx", "code": None,
                                       "providers": ["CUDAExecutionProvider", "CPUExecutionProvider"],
                                       "onnx_session_options": None}
    assert meta["flavors"]["python_function"]["loader_module"] == "spark_models.onnx"
    assert meta["flavors"]["python_function"]["data"] == "model.onnx"
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == [
        "MLmodel", "conda.yaml", "model.onnx", "python_env.yaml", "requirements.txt"]  # small tensors stay inline
    requirements = (tmp_path / "m" / "requirements.txt").read_text().splitlines()
    for dist in ("onnx", "onnxruntime"):
        assert f"{dist}=={ort.__version__ if dist == 'onnxruntime' else onnx.__version__}" in requirements
    assert requirements == [r for r in spark_models.onnx.default_pip_requirements()]
    loaded = spark_models.onnx.load_model(tmp_path / "m", allow_code=False)
    assert isinstance(loaded, onnx.ModelProto) and loaded == linear
    model = spark_models.pyfunc.load_model(tmp_path / "m", allow_code=False, model_config=CPU_ONLY)
    out = model.predict(x)
    assert list(out) == ["y"]
    np.testing.assert_array_equal(out["y"], run_ort(linear, {"x": x})["y"])
    with pytest.raises(SchemaEnforcementError, match="expected shape"):
        model.predict(x[:, :2])


def test_bytes_are_accepted_and_non_models_refused(linear, tmp_path):
    spark_models.onnx.save_model(linear.SerializeToString(), tmp_path / "b")
    assert spark_models.onnx.load_model(tmp_path / "b") == linear
    with pytest.raises(InvalidArgumentError, match="onnx.ModelProto"):
        spark_models.onnx.save_model({"not": "a model"}, tmp_path / "c")
    broken = onnx.ModelProto()
    broken.CopyFrom(linear)
    broken.graph.node[1].input[1] = "nowhere"
    with pytest.raises(InvalidArgumentError, match="not a valid ONNX model"):
        spark_models.onnx.save_model(broken, tmp_path / "d")
    assert not (tmp_path / "c").exists() and not (tmp_path / "d").exists()


def test_unreadable_model_file_is_malformed(linear, tmp_path):
    spark_models.onnx.save_model(linear, tmp_path / "m")
    (tmp_path / "m" / "model.onnx").write_bytes(b"\x08\x01garbage that is not a model")
    for load in (spark_models.onnx.load_model, spark_models.pyfunc.load_model):
        with pytest.raises(MalformedModelError, match="model.onnx"):
            load(tmp_path / "m")


def test_code_paths_are_refused_in_safe_mode(linear, tmp_path):
    helper_file = tmp_path / "onnx_helper_module.py"
    helper_file.write_text("X = 1\n")
    spark_models.onnx.save_model(linear, tmp_path / "m", code_paths=[helper_file])
    for load in (spark_models.onnx.load_model, spark_models.pyfunc.load_model):
        with pytest.raises(UnsafeModelError, match="ships code"):
            load(tmp_path / "m", allow_code=False)
    assert isinstance(spark_models.onnx.load_model(tmp_path / "m"), onnx.ModelProto)


def test_extra_files_are_copied_as_mlflow_does(linear, tmp_path):
    (tmp_path / "vocab.txt").write_text("a\nb\n")
    spark_models.onnx.save_model(linear, tmp_path / "m", extra_files=[str(tmp_path / "vocab.txt")])
    assert onnx_conf(tmp_path / "m")["extra_files"] == [{"path": "extra_files/vocab.txt"}]
    assert (tmp_path / "m" / "extra_files" / "vocab.txt").read_text() == "a\nb\n"
    with pytest.raises(ArtifactNotFoundError, match="nope.txt"):
        spark_models.onnx.save_model(linear, tmp_path / "n", extra_files=[str(tmp_path / "nope.txt")])


# ---- pyfunc input and output forms -------------------------------------------------------

def test_single_input_frame_stacks_all_columns_and_casts_to_float32(linear, X, tmp_path):
    spark_models.onnx.save_model(linear, tmp_path / "m")  # no signature: the wrapper sees the raw frame
    model = spark_models.pyfunc.load_model(tmp_path / "m", model_config=CPU_ONLY)
    expected = run_ort(linear, {"x": X.to_numpy(np.float32)})["y"].reshape(-1)
    framed = X.set_axis(range(100, 140))
    out = model.predict(framed)
    assert isinstance(out, pd.DataFrame) and list(out.columns) == ["y"] and list(out.index) == list(framed.index)
    np.testing.assert_array_equal(out["y"].to_numpy(), expected)
    ints = pd.DataFrame({"a": [1, 2], "b": [3, 4], "c": [5, 6]})  # int64 → float32
    np.testing.assert_array_equal(model.predict(ints)["y"].to_numpy(),
                                  run_ort(linear, {"x": ints.to_numpy(np.float32)})["y"].reshape(-1))
    with pytest.raises(SchemaEnforcementError, match=r"Input 'x' .* shape \(-1, 3\)"):
        model.predict(X[["a", "b"]])
    with pytest.raises(SchemaEnforcementError, match=r"Input 'x' .* tensor\(float\); got an array of <U"):
        model.predict(np.array([["1", "2", "3"]]))
    with pytest.raises(InvalidArgumentError, match="take a DataFrame, a numpy array or a dict"):
        model.get_raw_model().predict([[1.0, 2.0, 3.0]])


def test_a_column_of_arrays_feeds_a_single_tensor(linear, X, tmp_path):
    spark_models.onnx.save_model(linear, tmp_path / "m")
    model = spark_models.pyfunc.load_model(tmp_path / "m", model_config=CPU_ONLY)
    frame = pd.DataFrame({"features": list(X.to_numpy())})
    np.testing.assert_array_equal(model.predict(frame)["y"].to_numpy(),
                                  run_ort(linear, {"x": X.to_numpy(np.float32)})["y"].reshape(-1))


def test_multi_input_multi_output_model_takes_dicts_and_frames(multi, multi_feeds, tmp_path):
    expected = run_ort(multi, multi_feeds)
    spark_models.onnx.save_model(multi, tmp_path / "m")
    model = spark_models.pyfunc.load_model(tmp_path / "m", model_config=CPU_ONLY)
    out = model.predict(multi_feeds)
    assert isinstance(out, dict) and list(out) == ["total", "scaled"]
    for name in out:
        np.testing.assert_array_equal(out[name], expected[name])
    # float64 values, a column of arrays for 'a' and plain numbers for the (N, 1) input 'b'
    frame = pd.DataFrame({"b": multi_feeds["b"][:, 0].astype(np.float64), "a": list(multi_feeds["a"].astype(np.float64)),
                          "ignored": "x"})
    table = model.predict(frame)
    assert list(table.columns) == ["total", "scaled"] and len(table) == 7
    np.testing.assert_array_equal(table["total"].to_numpy(), expected["total"].reshape(-1))  # MLflow's flat column
    np.testing.assert_array_equal(np.stack(table["scaled"].to_numpy()), expected["scaled"])  # one array per row
    with pytest.raises(InvalidArgumentError, match=r"one input; this one takes 2: \['a', 'b'\]"):
        model.predict(multi_feeds["a"])
    with pytest.raises(SchemaEnforcementError, match="no column 'b'"):
        model.predict(frame.drop(columns="b"))
    with pytest.raises(SchemaEnforcementError, match=r"lacks \['b'\] and has unknown \['c'\]"):
        model.predict({"a": multi_feeds["a"], "c": multi_feeds["b"]})
    with pytest.raises(SchemaEnforcementError, match=r"Input 'a' .* shape \(-1, 2\) .* got \(7, 3\)"):
        model.predict({"a": np.ones((7, 3), np.float32), "b": multi_feeds["b"]})
    with pytest.raises(SchemaEnforcementError, match="Input 'a' of the ONNX model: its rows are arrays of different shapes"):
        model.predict(frame.assign(a=[np.ones(2)] * 6 + [np.ones(3)]))
    with pytest.raises(SchemaEnforcementError, match=r"Input 'b' .* tensor\(float\)"):
        model.predict({"a": multi_feeds["a"], "b": np.array([["x"]] * 7)})


def test_tensor_signature_inferred_from_a_dict_example(multi, multi_feeds, tmp_path):
    spark_models.onnx.save_model(multi, tmp_path / "m", input_example=multi_feeds)
    signature = spark_models.pyfunc.load_model(tmp_path / "m").signature
    assert signature.inputs.is_tensor_spec() and signature.inputs.input_names() == ["a", "b"]
    assert [(s.name, str(s.dtype), tuple(s.shape)) for s in signature.outputs.inputs] == [
        ("total", "float32", (-1, 1)), ("scaled", "float32", (-1, 2))]


# ---- external data -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def wide():
    return linear_proto(width=400)  # 4.8 KB of weights: over onnx's 1 KiB external-data threshold


def test_external_data_is_written_beside_model_onnx_and_loads(wide, X, tmp_path):
    before = wide.SerializeToString()
    spark_models.onnx.save_model(wide, tmp_path / "m", location="weights.bin")
    assert wide.SerializeToString() == before, "saving moved the caller's weights out of its proto"
    assert (tmp_path / "m" / "weights.bin").stat().st_size >= 4800
    assert (tmp_path / "m" / "model.onnx").stat().st_size < 1000
    assert canonical(spark_models.onnx.load_model(tmp_path / "m", allow_code=False)) == canonical(wide)
    x = X.to_numpy(np.float32)
    model = spark_models.pyfunc.load_model(tmp_path / "m", allow_code=False, model_config=CPU_ONLY)
    np.testing.assert_array_equal(model.predict(x)["y"], run_ort(wide, {"x": x})["y"])
    spark_models.onnx.save_model(wide, tmp_path / "inline", save_as_external_data=False)
    assert sorted(p.name for p in (tmp_path / "inline").iterdir() if "model" in p.name) == ["MLmodel", "model.onnx"]
    assert (tmp_path / "inline" / "model.onnx").stat().st_size > 4800


def _point_weights_at(model_dir: Path, location: str) -> None:
    proto = onnx.load(str(model_dir / "model.onnx"), load_external_data=False)
    for tensor in proto.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = location
    onnx.save(proto, str(model_dir / "model.onnx"))


def test_external_data_outside_the_model_directory_is_refused(wide, tmp_path):
    spark_models.onnx.save_model(wide, tmp_path / "m", location="weights.bin")
    (tmp_path / "secret.bin").write_bytes((tmp_path / "m" / "weights.bin").read_bytes())
    os.symlink(tmp_path / "secret.bin", tmp_path / "m" / "link.bin")
    for location in ("../secret.bin", str(tmp_path / "secret.bin"), "link.bin"):
        _point_weights_at(tmp_path / "m", location)
        for load in (spark_models.onnx.load_model, spark_models.pyfunc.load_model):
            with pytest.raises(MalformedModelError, match=r"model\.onnx: tensor 'W' keeps its data in .* outside the model"):
                load(tmp_path / "m", allow_code=False)
    _point_weights_at(tmp_path / "m", "gone.bin")
    with pytest.raises(ArtifactNotFoundError, match="'gone.bin' of tensor 'W' does not exist"):
        spark_models.pyfunc.load_model(tmp_path / "m")
    _point_weights_at(tmp_path / "m", "weights.bin")
    assert canonical(spark_models.onnx.load_model(tmp_path / "m", allow_code=False)) == canonical(wide)


# ---- providers and devices ---------------------------------------------------------------

def test_missing_providers_are_named_in_a_warning_and_cpu_is_the_fallback(linear, X, tmp_path, caplog):
    providers = ["TensorrtExecutionProvider", ("CUDAExecutionProvider", {"device_id": 0}), "CPUExecutionProvider"]
    spark_models.onnx.save_model(linear, tmp_path / "m", onnx_execution_providers=providers)
    assert onnx_conf(tmp_path / "m")["providers"] == [
        "TensorrtExecutionProvider", ["CUDAExecutionProvider", {"device_id": 0}], "CPUExecutionProvider"]
    with caplog.at_level("WARNING", logger=LOGGER):
        model = spark_models.pyfunc.load_model(tmp_path / "m")
    assert "['TensorrtExecutionProvider', 'CUDAExecutionProvider']" in caplog.text and "does not have" in caplog.text
    assert session(model).get_providers() == ["CPUExecutionProvider"]
    spark_models.onnx.save_model(linear, tmp_path / "gpu", onnx_execution_providers=["CUDAExecutionProvider"])
    caplog.clear()
    with caplog.at_level("WARNING", logger=LOGGER):
        gpu_only = spark_models.pyfunc.load_model(tmp_path / "gpu")
    assert "['CUDAExecutionProvider']" in caplog.text and "running with ['CPUExecutionProvider']" in caplog.text
    assert session(gpu_only).get_providers() == ["CPUExecutionProvider"]
    x = X.to_numpy(np.float32)
    np.testing.assert_array_equal(gpu_only.predict(x)["y"], run_ort(linear, {"x": x})["y"])


def test_bad_provider_entries(linear, tmp_path):
    with pytest.raises(InvalidArgumentError, match="entry 5 is neither"):
        spark_models.onnx.save_model(linear, tmp_path / "a", onnx_execution_providers=["CPUExecutionProvider", 5])
    spark_models.onnx.save_model(linear, tmp_path / "m")
    edit_mlmodel(tmp_path / "m", lambda f: f["onnx"].update(providers=[["CPUExecutionProvider", "x", "y"]]))
    with pytest.raises(MalformedModelError, match="is neither a provider name nor a"):
        spark_models.pyfunc.load_model(tmp_path / "m")
    edit_mlmodel(tmp_path / "m", lambda f: f["onnx"].update(providers="CPUExecutionProvider"))  # one name, as MLflow reads it
    assert session(spark_models.pyfunc.load_model(tmp_path / "m")).get_providers() == ["CPUExecutionProvider"]


def test_task_gpus_put_cuda_with_the_device_id_first(linear, tmp_path, caplog):
    declared = [("CUDAExecutionProvider", {"arena_extend_strategy": "kSameAsRequested"}), "CPUExecutionProvider"]
    resources = {"gpu": SimpleNamespace(addresses=["3", "1"])}  # what TaskContext.resources() hands a task
    assert flavor.execution_providers(declared, None, gpus=task_gpus(resources)) == [
        ("CUDAExecutionProvider", {"arena_extend_strategy": "kSameAsRequested", "device_id": 3}), "CPUExecutionProvider"]
    assert flavor.execution_providers(["CPUExecutionProvider"], {"device": "cuda:2"}, gpus=()) == [
        ("CUDAExecutionProvider", {"device_id": 2}), "CPUExecutionProvider"]
    assert flavor.execution_providers(None, {"device": "cuda"}, gpus=()) == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert flavor.execution_providers(declared, {"device": "cpu"}, gpus=("0",)) == ["CPUExecutionProvider"]
    assert flavor.execution_providers(declared, None, gpus=()) == declared  # no device, no GPU task: as declared
    with pytest.raises(InvalidArgumentError, match="'mps'"):
        flavor.execution_providers(declared, {"device": "mps"}, gpus=())
    spark_models.onnx.save_model(linear, tmp_path / "m", onnx_execution_providers=["CPUExecutionProvider"])
    conf = onnx_conf(tmp_path / "m")
    with caplog.at_level("WARNING", logger=LOGGER):
        wrapper = flavor._OnnxModelWrapper(tmp_path / "m" / "model.onnx", conf, gpus=("1",))
    assert wrapper.requested_providers[0] == ("CUDAExecutionProvider", {"device_id": 1})
    assert "['CUDAExecutionProvider']" in caplog.text  # this machine has no CUDA provider: CPU it is
    assert wrapper.rt.get_providers() == ["CPUExecutionProvider"]
    configured = spark_models.pyfunc.load_model(tmp_path / "m", model_config={"device": "cuda:4"}).get_raw_model()
    assert configured.requested_providers == [("CUDAExecutionProvider", {"device_id": 4}), "CPUExecutionProvider"]


# ---- session options and threads ---------------------------------------------------------

def test_session_options_are_applied(linear, tmp_path):
    options = {"graph_optimization_level": 1, "intra_op_num_threads": 2, "inter_op_num_threads": 3,
               "execution_mode": "parallel", "enable_mem_pattern": False,
               "extra_session_config": {"session.intra_op.allow_spinning": 0}}
    spark_models.onnx.save_model(linear, tmp_path / "m", onnx_session_options=options)
    assert onnx_conf(tmp_path / "m")["onnx_session_options"] == {**options, "extra_session_config": {
        "session.intra_op.allow_spinning": "0"}}
    so = session(spark_models.pyfunc.load_model(tmp_path / "m")).get_session_options()
    assert so.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    assert (so.intra_op_num_threads, so.inter_op_num_threads) == (2, 3)
    assert so.execution_mode == ort.ExecutionMode.ORT_PARALLEL and so.enable_mem_pattern is False
    assert so.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    # onnxruntime's enums and names, and level 0 (which MLflow's loader skips as falsy)
    forms = {"graph_optimization_level": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
             "execution_mode": ort.ExecutionMode.ORT_SEQUENTIAL}
    spark_models.onnx.save_model(linear, tmp_path / "e", onnx_session_options=forms)
    assert onnx_conf(tmp_path / "e")["onnx_session_options"] == {"graph_optimization_level": 0, "execution_mode": "sequential"}
    so = session(spark_models.pyfunc.load_model(tmp_path / "e")).get_session_options()
    assert so.graph_optimization_level == ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    assert so.execution_mode == ort.ExecutionMode.ORT_SEQUENTIAL
    edit_mlmodel(tmp_path / "e", lambda f: f["onnx"].update(onnx_session_options={
        "graph_optimization_level": "ORT_ENABLE_EXTENDED", "execution_mode": "ORT_PARALLEL"}))
    so = session(spark_models.pyfunc.load_model(tmp_path / "e")).get_session_options()
    assert so.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    assert so.execution_mode == ort.ExecutionMode.ORT_PARALLEL


@pytest.mark.parametrize("options, match", [
    ({"intra_op_threads": 1}, "key 'intra_op_threads' is not a session option"),
    ({"enable_profiling": True}, "key 'enable_profiling' is not a session option this flavor applies"),
    ({"execution_mode": "fast"}, r"\['execution_mode'\] cannot be 'fast'"),
    ({"graph_optimization_level": 5}, r"\['graph_optimization_level'\] cannot be 5"),
    ({"intra_op_num_threads": -1}, r"\['intra_op_num_threads'\] cannot be -1"),
    ({"inter_op_num_threads": "2"}, r"\['inter_op_num_threads'\] cannot be '2'"),
    ({"extra_session_config": ["a"]}, r"\['extra_session_config'\] cannot be"),
    ({"enable_mem_pattern": "no"}, r"\['enable_mem_pattern'\] cannot be 'no'.*bool"),
    (["graph_optimization_level"], "must be a dict"),
])
def test_bad_session_options_are_refused_at_save(linear, tmp_path, options, match):
    with pytest.raises(InvalidArgumentError, match=match):
        spark_models.onnx.save_model(linear, tmp_path / "m", onnx_session_options=options)
    assert not (tmp_path / "m").exists()


def test_session_options_in_an_mlmodel_are_checked_on_load(linear, tmp_path, caplog):
    spark_models.onnx.save_model(linear, tmp_path / "m")
    edit_mlmodel(tmp_path / "m", lambda f: f["onnx"].update(onnx_session_options={"shoe_size": 44}))
    with pytest.raises(InvalidArgumentError, match="key 'shoe_size' is not an onnxruntime session option"):
        spark_models.pyfunc.load_model(tmp_path / "m")
    edit_mlmodel(tmp_path / "m", lambda f: f["onnx"].update(onnx_session_options={"execution_mode": "fast"}))
    with pytest.raises(InvalidArgumentError, match="'execution_mode'"):
        spark_models.pyfunc.load_model(tmp_path / "m")
    # MLflow's save_model accepts any SessionOptions attribute; its loader applies none of these
    edit_mlmodel(tmp_path / "m", lambda f: f["onnx"].update(onnx_session_options={"enable_profiling": True}))
    with caplog.at_level("WARNING", logger=LOGGER):
        so = session(spark_models.pyfunc.load_model(tmp_path / "m")).get_session_options()
    assert "Ignoring onnx_session_options['enable_profiling']" in caplog.text and so.enable_profiling is False


def test_threads_follow_the_thread_rule_unless_configured(linear, tmp_path, monkeypatch):
    monkeypatch.delenv("SPARK_MODELS_NUM_THREADS", raising=False)
    spark_models.onnx.save_model(linear, tmp_path / "m")
    spark_models.onnx.save_model(linear, tmp_path / "c", onnx_session_options={"intra_op_num_threads": 1})

    def threads(name, model_config=None):
        model = spark_models.pyfunc.load_model(tmp_path / name, model_config=model_config)
        return session(model).get_session_options().intra_op_num_threads

    assert threads("m") == 0  # onnxruntime's default
    assert threads("m", {"num_threads": 2}) == 2
    assert threads("c", {"num_threads": 2}) == 1  # the model's own setting wins
    monkeypatch.setenv("SPARK_MODELS_NUM_THREADS", "3")
    assert threads("m") == 3
    with pytest.raises(InvalidArgumentError, match="positive number of threads"):
        threads("m", {"num_threads": 0})


@pytest.mark.spark
def test_inside_a_spark_task_the_session_gets_the_task_s_cpus(spark, linear, tmp_path, monkeypatch):
    monkeypatch.delenv("SPARK_MODELS_NUM_THREADS", raising=False)
    spark_models.onnx.save_model(linear, tmp_path / "m")
    path = str(tmp_path / "m")

    def intra_op_threads(config):
        import spark_models.pyfunc

        model = spark_models.pyfunc.load_model(path, model_config=config)
        return model.get_raw_model().get_raw_model().get_session_options().intra_op_num_threads

    configs = [{"device": "cpu"}, {"device": "cpu", "num_threads": 2}]
    assert spark.sparkContext.parallelize(configs, 2).map(intra_op_threads).collect() == [1, 2]  # spark.task.cpus is 1
    assert intra_op_threads({"device": "cpu"}) == 0  # outside a task: onnxruntime's default


# ---- converted models ----------------------------------------------------------------------

def test_skl2onnx_models_score_as_sklearn_does(sklearn_models, X, tmp_path):
    reg, reg_onnx, clf, clf_onnx = sklearn_models
    spark_models.onnx.save_model(reg_onnx, tmp_path / "reg", input_example=X.head(3))
    spark_models.onnx.save_model(clf_onnx, tmp_path / "clf", input_example=X.head(3))
    regression = spark_models.pyfunc.load_model(tmp_path / "reg", allow_code=False).predict(X)
    np.testing.assert_allclose(regression["variable"].to_numpy(), reg.predict(X), rtol=1e-5, atol=1e-5)
    classified = spark_models.pyfunc.load_model(tmp_path / "clf", allow_code=False).predict(X)
    np.testing.assert_array_equal(classified["label"].to_numpy(), clf.predict(X).astype(np.int64))
    np.testing.assert_allclose(np.stack(classified["probabilities"].to_numpy()), clf.predict_proba(X), atol=1e-5)


@pytest.fixture(scope="module")
def sparkml(spark):
    from onnxmltools import convert_sparkml
    from onnxmltools.convert.common.data_types import FloatTensorType
    from pyspark.ml import Pipeline
    from pyspark.ml.classification import LogisticRegression
    from pyspark.ml.feature import VectorAssembler

    rng = np.random.default_rng(3)
    frame = pd.DataFrame(rng.normal(size=(200, 3)), columns=["a", "b", "c"])
    frame["label"] = (frame.a + frame.b - frame.c + rng.normal(size=200) > 0).astype(float)
    df = spark.createDataFrame(frame)
    pipeline = Pipeline(stages=[VectorAssembler(inputCols=["a", "b", "c"], outputCol="features"),
                                LogisticRegression(maxIter=20)]).fit(df)
    proto = convert_sparkml(pipeline, "pipeline", [(c, FloatTensorType([None, 1])) for c in "abc"], spark_session=spark)
    return pipeline, proto, df, frame


@pytest.mark.spark
def test_onnxmltools_spark_pipeline_scores_as_spark_does(spark, sparkml, tmp_path):
    pipeline, proto, df, frame = sparkml
    path = tmp_path / "m"
    spark_models.onnx.save_model(proto, path, input_example=frame[["a", "b", "c"]].head(3))
    spark_out = pipeline.transform(df).select("prediction", "probability").toPandas()
    spark_proba = np.stack([v.toArray() for v in spark_out.probability])
    ours = spark_models.pyfunc.load_model(path, allow_code=False).predict(frame[["a", "b", "c"]])
    clear = np.abs(spark_proba[:, 1] - 0.5) > 1e-4  # float32 may flip a coin-toss row
    np.testing.assert_array_equal(ours["prediction"].to_numpy()[clear], spark_out.prediction.to_numpy()[clear])
    np.testing.assert_allclose(np.stack(ours["probability"].to_numpy()), spark_proba, atol=1e-5)
    # through spark_udf: a multi-input (three (N, 1) tensors from columns), multi-output model → a struct
    u = spark_models.pyfunc.spark_udf(spark, str(path))
    scored = spark.createDataFrame(frame.assign(id=range(len(frame)))).repartition(3).withColumn("p", u("a", "b", "c"))
    out = scored.orderBy("id").select("p.prediction", "p.probability").toPandas()
    np.testing.assert_array_equal(out["prediction"].to_numpy(), ours["prediction"].to_numpy())
    np.testing.assert_allclose(np.stack(out["probability"].map(np.asarray)), np.stack(ours["probability"].to_numpy()), rtol=1e-6)


# ---- spark_udf -----------------------------------------------------------------------------

@pytest.mark.spark
def test_spark_udf_with_a_column_signature_and_with_a_2d_tensor_signature(spark, linear, X, tmp_path):
    from pyspark.sql import functions as F

    x = X.to_numpy(np.float32)
    expected = run_ort(linear, {"x": x})["y"]
    spark_models.onnx.save_model(linear, tmp_path / "cols", input_example=X.head(3))
    assert not spark_models.pyfunc.load_model(tmp_path / "cols").signature.inputs.is_tensor_spec()
    spark_models.onnx.save_model(linear, tmp_path / "tensor", signature=infer_signature(x, {"y": expected}))
    df = spark.createDataFrame(X.assign(id=range(len(X)), features=list(x.tolist()))).repartition(3)
    by_columns = spark_models.pyfunc.spark_udf(spark, str(tmp_path / "cols"))
    by_tensor = spark_models.pyfunc.spark_udf(spark, str(tmp_path / "tensor"))
    out = (df.select("id", by_columns("a", "b", "c").alias("c"), by_tensor("features").alias("t"))
           .orderBy("id").toPandas())
    assert len(out) == len(X) and out.id.tolist() == list(range(len(X)))
    np.testing.assert_allclose(out["c"].to_numpy(np.float32), expected.reshape(-1), rtol=1e-6)
    np.testing.assert_allclose(np.stack(out["t"].map(np.asarray)), expected, rtol=1e-6)
    doubles = df.withColumn("features", F.col("features").cast("array<double>"))
    again = doubles.select("id", by_tensor("features").alias("t")).orderBy("id").toPandas()
    np.testing.assert_allclose(np.stack(again["t"].map(np.asarray)), expected, rtol=1e-6)


@pytest.mark.spark
def test_spark_udf_scores_a_two_tensor_two_output_model_into_a_struct(spark, multi, multi_feeds, tmp_path):
    expected = run_ort(multi, multi_feeds)
    spark_models.onnx.save_model(multi, tmp_path / "m", input_example=multi_feeds)
    frame = pd.DataFrame({"id": range(7), "a": multi_feeds["a"].tolist(), "b": multi_feeds["b"].tolist()})
    u = spark_models.pyfunc.spark_udf(spark, str(tmp_path / "m"))
    out = spark.createDataFrame(frame).repartition(2).withColumn("p", u("a", "b")).orderBy("id").select("p.*").toPandas()
    assert list(out.columns) == ["total", "scaled"]
    for name in out:
        np.testing.assert_array_equal(np.stack(out[name].map(np.asarray)), expected[name])


# ---- processes: imports, MLflow ------------------------------------------------------------

HEAVY = ("onnx", "onnxruntime", "mlflow", "torch", "sklearn", "tensorflow", "skl2onnx", "onnxmltools", "pyspark")
IMPORTS = r'''
import json, sys
import numpy as np, spark_models.pyfunc
m = spark_models.pyfunc.load_model({path!r}, allow_code=False, model_config={{"device": "cpu"}})
m.predict(np.ones((4, 3), dtype=np.float32))
print(json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)))
'''


@pytest.mark.slow
def test_scoring_imports_onnxruntime_and_nothing_else_heavy(linear, wide, tmp_path):
    spark_models.onnx.save_model(linear, tmp_path / "m")
    spark_models.onnx.save_model(wide, tmp_path / "w")
    assert run_json(IMPORTS.format(path=str(tmp_path / "m"), heavy=HEAVY)) == ["onnxruntime"]
    # external data is checked with onnx's parser
    assert run_json(IMPORTS.format(path=str(tmp_path / "w"), heavy=HEAVY)) == ["onnx", "onnxruntime"]


READS_WITHOUT_MLFLOW = r'''
import json, sys, numpy as np, pandas as pd, spark_models.onnx, spark_models.pyfunc
root = {root!r}
X = pd.read_parquet(root + "/X.parquet")
x = X.to_numpy(np.float32)
feeds = dict(np.load(root + "/feeds.npz"))
out = {{}}
out["linear"] = spark_models.pyfunc.load_model(root + "/linear", allow_code=False).predict(X).to_dict("list")
out["wide"] = spark_models.pyfunc.load_model(root + "/wide", allow_code=False).predict(x)["y"].tolist()
out["multi"] = {{k: v.tolist() for k, v in spark_models.pyfunc.load_model(root + "/multi", allow_code=False).predict(feeds).items()}}
def canonical(model):
    for tensor in model.graph.initializer:
        tensor.ClearField("data_location")
    return model.SerializeToString()
out["protos"] = [canonical(spark_models.onnx.load_model(root + "/" + n)) == open(root + "/" + n + ".bin", "rb").read()
                 for n in ("linear", "wide", "multi")]
so = spark_models.pyfunc.load_model(root + "/linear").get_raw_model().get_raw_model().get_session_options()
out["options"] = [so.intra_op_num_threads, str(so.execution_mode), str(so.graph_optimization_level)]
rt = spark_models.pyfunc.load_model(root + "/multi").get_raw_model().get_raw_model()
out["multi_session"] = [rt.get_providers(), rt.get_session_options().get_session_config_entry("session.intra_op.allow_spinning")]
out["mlflow_loaded"] = any(m.split(".")[0] == "mlflow" for m in sys.modules)
print(json.dumps(out))
'''


def _floats(values):
    return json.loads(json.dumps(values, default=float))


@pytest.mark.slow
def test_mlflow_written_models_load_where_mlflow_cannot_be_imported(linear, wide, multi, multi_feeds, X, tmp_path):
    mlflow_onnx = pytest.importorskip("mlflow.onnx")
    import mlflow.pyfunc

    reqs = ["onnx", "onnxruntime"]  # skips MLflow's requirement inference (a subprocess per model)
    for name, proto in (("linear", linear), ("wide", wide), ("multi", multi)):
        (tmp_path / f"{name}.bin").write_bytes(proto.SerializeToString())
    # MLflow's save_model moves external tensors out of the proto it is given: it gets copies
    linear, wide, multi = (onnx.load_from_string(m.SerializeToString()) for m in (linear, wide, multi))
    mlflow_onnx.save_model(linear, str(tmp_path / "linear"), pip_requirements=reqs, onnx_session_options={
        "intra_op_num_threads": 1, "execution_mode": "parallel", "graph_optimization_level": 2})
    mlflow_onnx.save_model(wide, str(tmp_path / "wide"), pip_requirements=reqs)  # external data (MLflow's default)
    mlflow_onnx.save_model(multi, str(tmp_path / "multi"), pip_requirements=reqs,  # a (name, options) pair, as lists
                           onnx_execution_providers=[("CPUExecutionProvider", {"arena_extend_strategy": "kSameAsRequested"})],
                           onnx_session_options={"extra_session_config": {"session.intra_op.allow_spinning": "0"},
                                                 "enable_profiling": False})  # MLflow's loader ignores the latter
    assert len(list((tmp_path / "wide").glob("*.data"))) == 1
    X.to_parquet(tmp_path / "X.parquet")
    np.savez(tmp_path / "feeds.npz", **multi_feeds)
    x = X.to_numpy(np.float32)
    expected = {
        "linear": mlflow.pyfunc.load_model(str(tmp_path / "linear")).predict(X).to_dict("list"),
        "wide": mlflow.pyfunc.load_model(str(tmp_path / "wide")).predict(x)["y"].tolist(),
        "multi": {k: v.tolist() for k, v in mlflow.pyfunc.load_model(str(tmp_path / "multi")).predict(multi_feeds).items()},
    }
    got = run_json(READS_WITHOUT_MLFLOW.format(root=str(tmp_path)), blocked=("mlflow",))
    assert got.pop("mlflow_loaded") is False
    assert got.pop("protos") == [True, True, True]
    assert got.pop("options") == [1, "ExecutionMode.ORT_PARALLEL", "GraphOptimizationLevel.ORT_ENABLE_EXTENDED"]
    assert got.pop("multi_session") == [["CPUExecutionProvider"], "0"]
    assert yaml.safe_load((tmp_path / "multi" / "MLmodel").read_text())["flavors"]["onnx"]["providers"] == [
        ["CPUExecutionProvider", {"arena_extend_strategy": "kSameAsRequested"}]]
    assert got == _floats(expected)


@pytest.mark.slow
def test_our_models_load_in_mlflow(linear, wide, multi, multi_feeds, X, tmp_path):
    mlflow_pyfunc = pytest.importorskip("mlflow.pyfunc")
    import mlflow.onnx

    x = X.to_numpy(np.float32)
    options = {"intra_op_num_threads": 1, "execution_mode": "parallel", "extra_session_config": {"session.intra_op.allow_spinning": "0"}}
    providers = [("CUDAExecutionProvider", {"device_id": 0}), "CPUExecutionProvider"]
    cases = {"linear": (linear, X, dict(input_example=X.head(3), onnx_session_options=options,
                                        onnx_execution_providers=providers)),
             "wide": (wide, x, {}), "multi": (multi, multi_feeds, dict(input_example=multi_feeds))}
    for name, (proto, data, kwargs) in cases.items():
        proto = onnx.load_from_string(proto.SerializeToString())
        path = tmp_path / name
        spark_models.onnx.save_model(proto, path, **kwargs)
        ours = spark_models.pyfunc.load_model(path).predict(data)
        theirs = mlflow_pyfunc.load_model(str(path)).predict(data)  # through our loader_module
        assert canonical(mlflow.onnx.load_model(str(path))) == canonical(proto)
        # MLflow's own wrapper reading our layout (providers with options, session options)
        copy = tmp_path / f"{name}-as-mlflow"
        shutil.copytree(path, copy)
        edit_mlmodel(copy, lambda f: f["python_function"].update(loader_module="mlflow.onnx"))
        native = mlflow_pyfunc.load_model(str(copy))
        mlflow_own = native.predict(data)
        for result in (theirs, mlflow_own):
            if isinstance(ours, pd.DataFrame):
                pd.testing.assert_frame_equal(result, ours)
            else:
                assert list(result) == list(ours) and all(np.array_equal(result[k], ours[k]) for k in ours)
    rt = mlflow_pyfunc.load_model(str(tmp_path / "linear-as-mlflow")).get_raw_model()
    so = rt.get_session_options()
    assert so.execution_mode == ort.ExecutionMode.ORT_PARALLEL and so.intra_op_num_threads == 1
    assert so.get_session_config_entry("session.intra_op.allow_spinning") == "0"
