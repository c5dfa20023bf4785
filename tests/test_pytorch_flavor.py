"""The pytorch flavor: MLflow 3's three layouts (pickled module, TorchScript, torch.export pt2),
pyfunc scoring (frames, arrays, dicts for multi-input models, params), inference and eval mode,
device choice, threads, safe mode, requirements, and MLflow interop both ways."""

import io
import logging
import types
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

torch = pytest.importorskip("torch")

import spark_models.pyfunc  # noqa: E402
import spark_models.pytorch  # noqa: E402
from spark_models.exceptions import (  # noqa: E402
    ArtifactNotFoundError,
    InvalidArgumentError,
    MalformedModelError,
    MissingDependencyError,
    ModelOutputError,
    NotSupportedError,
    SchemaEnforcementError,
    UnsafeModelError,
)
from spark_models.flavors.torch_formats import is_torchscript  # noqa: E402
from spark_models.flavors.torch_inputs import select_device  # noqa: E402
from spark_models.flavors.devices import resolve_device, task_gpus  # noqa: E402
from spark_models.flavors.testing import check_flavor  # noqa: E402
from spark_models.models import infer_signature  # noqa: E402
from spark_models.schema.signature import ModelSignature  # noqa: E402
from spark_models.schema.types import Schema, TensorSpec  # noqa: E402
from tests.helpers import torch_models as tm  # noqa: E402
from tests.isolation import run_json  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.*` is deprecated:DeprecationWarning")

ROOT = Path(__file__).resolve().parents[1]
FEATURES = ["a", "b", "c"]


@pytest.fixture
def frame():
    return pd.DataFrame(np.random.default_rng(0).normal(size=(40, 3)), columns=FEATURES)


@pytest.fixture
def images():
    return np.random.default_rng(1).normal(size=(6, 3, 8, 8)).astype(np.float32)


@pytest.fixture
def pair():
    rng = np.random.default_rng(2)
    return {"numbers": rng.normal(size=(5, 3)).astype(np.float32), "extra": rng.normal(size=(5, 4)).astype(np.float32)}


@pytest.fixture(autouse=True)
def _keep_torch_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def eval_outputs(model, *inputs):
    """What the model gives in eval mode without autograd, leaving its mode as it was."""
    training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return model(*(torch.from_numpy(np.asarray(x, dtype=np.float32)) for x in inputs)).numpy()
    finally:
        model.train(training)


def frame_outputs(model, df):
    return pd.DataFrame(eval_outputs(model, df.to_numpy()), index=df.index)


def cnn_signature():
    return ModelSignature(Schema([TensorSpec(np.float32, (-1, 3, 8, 8))]), Schema([TensorSpec(np.float32, (-1, 2))]))


def mlmodel(path: Path) -> dict:
    return yaml.safe_load((path / "MLmodel").read_text())


# ---- conformance and layouts ---------------------------------------------------------------

@pytest.mark.spark
def test_mlp_passes_check_flavor_with_spark(spark, frame, tmp_path):
    check_flavor(spark_models.pytorch.FLAVOR, tm.make_mlp(), frame, tmp_path, native_predict=frame_outputs, spark=spark)


def test_pickled_layout_has_mlflow_s_keys_and_files(frame, tmp_path):
    model = tm.make_mlp()
    spark_models.pytorch.save_model(model, tmp_path / "m", extra_files=[__file__])
    flavors = mlmodel(tmp_path / "m")["flavors"]
    assert flavors["pytorch"] == {"model_data": "data", "pytorch_version": torch.__version__, "code": None,
                                  "extra_files": [{"path": "extra_files/test_pytorch_flavor.py"}]}
    pyfunc = flavors["python_function"]
    assert {k: pyfunc[k] for k in ("loader_module", "data", "pickle_module_name", "config")} == {
        "loader_module": "spark_models.pytorch", "data": "data", "pickle_module_name": "mlflow.pytorch.pickle_module",
        "config": {"device": None}}
    assert sorted(p.name for p in (tmp_path / "m" / "data").iterdir()) == ["model.pth", "pickle_module_info.txt"]
    assert (tmp_path / "m" / "data" / "pickle_module_info.txt").read_text() == "mlflow.pytorch.pickle_module"
    assert not is_torchscript(tmp_path / "m" / "data" / "model.pth")
    loaded = spark_models.pytorch.load_model(tmp_path / "m")
    assert type(loaded) is tm.MLP and not loaded.training
    np.testing.assert_array_equal(loaded(torch.tensor(frame.to_numpy(np.float32))).detach().numpy(),
                                  eval_outputs(model, frame.to_numpy()))
    assert model.training, "saving left the caller's module in train mode"


def test_frame_input_gives_a_frame_with_the_input_s_index(frame, tmp_path):
    model = tm.make_mlp(n_out=2)
    spark_models.pytorch.save_model(model, tmp_path / "m")
    shuffled = frame.sample(frac=1, random_state=0)
    out = spark_models.pyfunc.load_model(tmp_path / "m").predict(shuffled)
    assert isinstance(out, pd.DataFrame) and list(out.columns) == [0, 1]
    pd.testing.assert_frame_equal(out, frame_outputs(model, shuffled))
    integers = frame.round().astype("Int64")
    integers.iloc[0, 1] = pd.NA
    nulls = spark_models.pyfunc.load_model(tmp_path / "m").predict(integers)
    assert nulls.iloc[0].isna().all() and not nulls.iloc[1:].isna().any().any()  # a null feature is NaN, as in torch


@pytest.mark.parametrize("fmt", ["pickle", "pt2"])
def test_cnn_takes_an_image_tensor(fmt, images, tmp_path):
    model = tm.make_cnn()  # in train mode: the pt2 program is traced in eval mode (batch norm statistics)
    spark_models.pytorch.save_model(model, tmp_path / "m", serialization_format=fmt, signature=cnn_signature(),
                                    input_example=images[:4])
    expected = eval_outputs(model, images)
    files = sorted(p.name for p in (tmp_path / "m" / "data").iterdir())
    assert files == (["model.pt2"] if fmt == "pt2" else ["model.pth", "pickle_module_info.txt"])
    out = spark_models.pyfunc.load_model(tmp_path / "m").predict(images)
    assert isinstance(out, np.ndarray) and out.shape == (6, 2) and out.dtype == np.float32
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(spark_models.pyfunc.load_model(tmp_path / "m").predict(images[:1]), expected[:1],
                               rtol=1e-5, atol=1e-6)  # another batch size than the example's
    with pytest.raises(SchemaEnforcementError):
        spark_models.pyfunc.load_model(tmp_path / "m").predict(images[:, :2])
    assert model.training


def test_pt2_infers_its_tensor_signature_from_the_example(images, tmp_path):
    spark_models.pytorch.save_model(tm.make_cnn(), tmp_path / "m", serialization_format="pt2", input_example=images[:3])
    meta = mlmodel(tmp_path / "m")
    assert meta["flavors"]["pytorch"] == {"model_data": "data", "pytorch_version": torch.__version__, "code": None}
    signature = spark_models.pyfunc.load_model(tmp_path / "m").signature
    assert signature.inputs.inputs == [TensorSpec(np.float32, (-1, 3, 8, 8))]
    loaded = spark_models.pytorch.load_model(tmp_path / "m")
    assert isinstance(loaded, torch.fx.GraphModule)
    np.testing.assert_allclose(loaded(torch.from_numpy(images)).detach().numpy(), eval_outputs(tm.make_cnn(), images),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("fmt", ["pickle", "pt2"])
def test_multi_input_model_takes_a_dict_by_parameter_name(fmt, pair, tmp_path):
    model = tm.make_two_inputs()
    reversed_example = {"extra": pair["extra"][:3], "numbers": pair["numbers"][:3]}  # not forward's order
    spark_models.pytorch.save_model(model, tmp_path / "m", serialization_format=fmt, input_example=reversed_example)
    expected = eval_outputs(model, pair["numbers"], pair["extra"])
    pyfunc = spark_models.pyfunc.load_model(tmp_path / "m")
    assert [s.name for s in pyfunc.signature.inputs.inputs] == ["extra", "numbers"]
    np.testing.assert_allclose(pyfunc.predict(pair), expected, rtol=1e-6)
    raw = pyfunc.get_raw_model()
    np.testing.assert_allclose(raw.predict({"extra": pair["extra"], "numbers": pair["numbers"]}), expected, rtol=1e-6)
    with pytest.raises(SchemaEnforcementError, match="'other' is not a parameter of the model's forward"):
        raw.predict({"numbers": pair["numbers"], "other": pair["extra"]})
    # keys naming no parameter: positional, in the given order
    np.testing.assert_allclose(raw.predict({"p": pair["numbers"], "q": pair["extra"]}), expected, rtol=1e-6)


def test_multi_input_pt2_from_a_tuple_is_named_after_forward(pair, tmp_path):
    model = tm.make_two_inputs()
    spark_models.pytorch.save_model(model, tmp_path / "m", serialization_format="pt2",
                                    input_example=(torch.from_numpy(pair["numbers"]), pair["extra"]))
    pyfunc = spark_models.pyfunc.load_model(tmp_path / "m")
    assert [s.name for s in pyfunc.signature.inputs.inputs] == ["numbers", "extra"]
    np.testing.assert_allclose(pyfunc.predict(pair), eval_outputs(model, pair["numbers"], pair["extra"]), rtol=1e-6)


def test_torchscript_module(frame, tmp_path):
    model = tm.make_mlp()
    scripted = torch.jit.script(model)
    spark_models.pytorch.save_model(scripted, tmp_path / "m", input_example=frame.head(3))
    assert is_torchscript(tmp_path / "m" / "data" / "model.pth")
    loaded = spark_models.pytorch.load_model(tmp_path / "m")
    assert isinstance(loaded, torch.jit.ScriptModule) and not loaded.training
    pd.testing.assert_frame_equal(spark_models.pyfunc.load_model(tmp_path / "m").predict(frame), frame_outputs(model, frame))
    with pytest.raises(InvalidArgumentError, match="ScriptModule cannot be exported"):
        spark_models.pytorch.save_model(scripted, tmp_path / "pt2", serialization_format="pt2", input_example=np.ones((2, 3)))


def test_torchscript_multi_input_takes_a_dict(pair, tmp_path):
    model = tm.make_two_inputs()
    spark_models.pytorch.save_model(torch.jit.script(model), tmp_path / "m", input_example=pair)
    out = spark_models.pyfunc.load_model(tmp_path / "m").predict({"extra": pair["extra"], "numbers": pair["numbers"]})
    np.testing.assert_allclose(out, eval_outputs(model, pair["numbers"], pair["extra"]), rtol=1e-6)


def test_save_refusals_leave_nothing_behind(frame, tmp_path):
    mlp = tm.make_mlp()
    cases = [
        ({"serialization_format": "pt2"}, InvalidArgumentError, "traces the model on input_example"),
        ({"serialization_format": "pt2", "input_example": frame.head(2)}, InvalidArgumentError, "must hold numpy arrays or torch tensors, got DataFrame"),
        ({"serialization_format": "pt2", "input_example": np.ones((2, 3), np.float32),
          "signature": infer_signature(frame, np.ones(40))}, InvalidArgumentError, "needs a tensor signature"),
        ({"serialization_format": "onnx"}, InvalidArgumentError, "serialization_format must be one of"),
        ({"export_model": True, "serialization_format": "pickle"}, InvalidArgumentError, "not both"),
        ({"extra_files": [str(tmp_path / "nope.txt")]}, ArtifactNotFoundError, "nope.txt"),
    ]
    for i, (kwargs, error, message) in enumerate(cases):
        with pytest.raises(error, match=message):
            spark_models.pytorch.save_model(mlp, tmp_path / f"m{i}", **kwargs)
        assert not (tmp_path / f"m{i}").exists()
    with pytest.raises(InvalidArgumentError, match="must be a torch.nn.Module"):
        spark_models.pytorch.save_model({"state": 1}, tmp_path / "x")


def test_export_model_is_mlflow_s_deprecated_name_for_pt2(tmp_path):
    with pytest.warns(FutureWarning, match="export_model is deprecated"):
        spark_models.pytorch.save_model(tm.make_mlp(), tmp_path / "m", export_model=True,
                                        input_example=np.ones((3, 3), np.float32))
    assert (tmp_path / "m" / "data" / "model.pt2").is_file()


# ---- pyfunc behaviour ----------------------------------------------------------------------

def test_runs_in_inference_mode_and_eval_mode(tmp_path):
    model = tm.ModeRecorder()  # train mode, as constructed
    x = np.ones((4, 2), np.float32)
    spark_models.pytorch.save_model(model, tmp_path / "m")
    assert model.training
    pyfunc = spark_models.pyfunc.load_model(tmp_path / "m")
    np.testing.assert_array_equal(pyfunc.predict(x), x * 2)
    seen = pyfunc.get_raw_model().get_raw_model().seen[-1]
    assert seen["inference_mode"] is True and seen["grad"] is False and seen["training"] is False
    assert seen["input_dtype"] == "torch.float32" and seen["device"] == "cpu"
    no_grad = spark_models.pyfunc.load_model(tmp_path / "m", model_config={"inference_mode": False})
    no_grad.predict(x)
    seen = no_grad.get_raw_model().get_raw_model().seen[-1]
    assert seen["inference_mode"] is False and seen["grad"] is False and seen["training"] is False


def test_arrays_keep_their_dtype_and_frames_become_float32(tmp_path):
    spark_models.pytorch.save_model(tm.ModeRecorder(), tmp_path / "m")
    impl = spark_models.pyfunc.load_model(tmp_path / "m").get_raw_model()
    assert impl.predict(np.ones((2, 2), np.float64)).dtype == np.float64
    assert impl.get_raw_model().seen[-1]["input_dtype"] == "torch.float64"
    impl.predict(pd.DataFrame({"a": [1, 2], "b": [True, False]}))
    assert impl.get_raw_model().seen[-1]["input_dtype"] == "torch.float32"
    with pytest.raises(SchemaEnforcementError, match="column 'b' \\(object\\)"):
        impl.predict(pd.DataFrame({"a": [1.0, 2.0], "b": ["x", "y"]}))
    with pytest.raises(SchemaEnforcementError, match="takes a pandas DataFrame, a numpy array or a dict"):
        impl.predict([[1.0, 2.0]])


def test_params_are_forward_keywords(tmp_path):
    x = np.ones((3, 2), np.float32)
    signature = infer_signature(x, x * 2, params={"factor": 1.0})
    spark_models.pytorch.save_model(tm.ModeRecorder(), tmp_path / "m", signature=signature)
    pyfunc = spark_models.pyfunc.load_model(tmp_path / "m")
    np.testing.assert_array_equal(pyfunc.predict(x, params={"factor": 3.0}), x * 6)
    np.testing.assert_array_equal(pyfunc.predict(x), x * 2)
    with pytest.raises(InvalidArgumentError, match="chosen at load time"):
        pyfunc.get_raw_model().predict(x, params={"device": "cpu"})


def test_output_must_be_one_tensor(tmp_path):
    spark_models.pytorch.save_model(tm.TupleOutput(), tmp_path / "m")
    with pytest.raises(ModelOutputError, match="returned a tuple"):
        spark_models.pyfunc.load_model(tmp_path / "m").predict(np.ones((2, 2), np.float32))


def test_broken_model_files_are_named(tmp_path):
    spark_models.pytorch.save_model(tm.make_mlp(), tmp_path / "m")
    pth = tmp_path / "m" / "data" / "model.pth"
    torch.save(tm.make_mlp().state_dict(), pth)
    with pytest.raises(MalformedModelError, match="holds a OrderedDict, not a torch.nn.Module"):
        spark_models.pytorch.load_model(tmp_path / "m")
    pth.write_bytes(b"not a model")
    with pytest.raises(MalformedModelError, match="model.pth: torch .* cannot load this pickled model"):
        spark_models.pyfunc.load_model(tmp_path / "m")
    pth.unlink()
    with pytest.raises(ArtifactNotFoundError, match="holds neither model.pth nor model.pt2"):
        spark_models.pytorch.load_model(tmp_path / "m")


PICKLED_BY_REFERENCE = r'''
import json, sys
sys.path.insert(0, {module_dir!r})
import torch, spark_models.pytorch, pickle
from temp_net import Net
spark_models.pytorch.save_model(Net(), {path!r}, pickle_module=pickle)
sys.path.remove({module_dir!r}); del sys.modules["temp_net"]
try:
    spark_models.pytorch.load_model({path!r})
except Exception as e:
    print(json.dumps([type(e).__name__, str(e), open({path!r} + "/data/pickle_module_info.txt").read()]))
'''


@pytest.mark.slow
def test_a_class_that_cannot_be_imported_is_a_missing_dependency(tmp_path):
    (tmp_path / "temp_net.py").write_text("import torch\nclass Net(torch.nn.Linear):\n"
                                          "    def __init__(self):\n        super().__init__(2, 1)\n")
    name, message, info = run_json(PICKLED_BY_REFERENCE.format(module_dir=str(tmp_path), path=str(tmp_path / "m")),
                                   cwd=str(ROOT))
    assert name == "MissingDependencyError" and "'temp_net'" in message and info == "pickle"


# ---- device and threads --------------------------------------------------------------------

def test_device_choice_follows_the_task_s_gpus_and_refuses_cuda_here(tmp_path):
    fake_task = {"gpu": types.SimpleNamespace(addresses=["3", "1"])}
    assert task_gpus(fake_task) == ("3", "1")
    assert resolve_device({}, gpus=task_gpus(fake_task)) == "cuda:3"
    assert resolve_device({"device": "cuda"}, gpus=["1"]) == "cuda:1"
    assert select_device({"device": "cpu"}, gpus=["3"]) == "cpu"
    assert select_device({}, gpus=[]) == "cpu"
    assert not torch.cuda.is_available()
    with pytest.raises(MissingDependencyError, match="Device 'cuda:3' needs a CUDA build of torch"):
        select_device({}, gpus=["3"])  # a Spark task given GPU 3, on this CPU-only torch

    spark_models.pytorch.save_model(tm.ModeRecorder(), tmp_path / "m")
    on_cpu = spark_models.pyfunc.load_model(tmp_path / "m", model_config={"device": "cpu"})
    np.testing.assert_array_equal(on_cpu.predict(np.ones((2, 2), np.float32)), np.full((2, 2), 2.0, np.float32))
    assert on_cpu.get_raw_model().device == "cpu" and on_cpu.get_raw_model().get_raw_model().seen[-1]["device"] == "cpu"
    for device in ("cuda", "cuda:1"):
        with pytest.raises(MissingDependencyError, match=f"Device '{device}'"):
            spark_models.pyfunc.load_model(tmp_path / "m", model_config={"device": device})
        with pytest.raises(MissingDependencyError, match=f"Device '{device}'"):
            spark_models.pytorch.load_model(tmp_path / "m", device=device)
    with pytest.raises(NotSupportedError, match="Device 'mps'"):
        spark_models.pyfunc.load_model(tmp_path / "m", model_config={"device": "mps"})
    with pytest.raises(InvalidArgumentError, match="must be 'cpu', 'cuda'"):
        spark_models.pyfunc.load_model(tmp_path / "m", model_config={"device": "tpu"})


def test_threads_follow_the_knob(tmp_path, monkeypatch):
    x = np.ones((2, 2), np.float32)
    spark_models.pytorch.save_model(tm.ModeRecorder(), tmp_path / "m")
    monkeypatch.delenv("SPARK_MODELS_NUM_THREADS", raising=False)
    torch.set_num_threads(2)
    default = spark_models.pyfunc.load_model(tmp_path / "m").get_raw_model()
    default.predict(x)
    assert default.get_raw_model().seen[-1]["threads"] == 2  # left alone outside Spark
    one = spark_models.pyfunc.load_model(tmp_path / "m", model_config={"num_threads": 1}).get_raw_model()
    one.predict(x)
    assert one.get_raw_model().seen[-1]["threads"] == 1
    monkeypatch.setenv("SPARK_MODELS_NUM_THREADS", "3")
    env = spark_models.pyfunc.load_model(tmp_path / "m").get_raw_model()
    env.predict(x)
    assert env.get_raw_model().seen[-1]["threads"] == 3
    with pytest.raises(InvalidArgumentError, match="positive number of threads"):
        spark_models.pyfunc.load_model(tmp_path / "m", model_config={"num_threads": 0})


@pytest.mark.spark
def test_spark_tasks_run_with_the_task_s_cpus(spark, frame, tmp_path):
    spark_models.pytorch.save_model(tm.ThreadProbe(), tmp_path / "m", signature=infer_signature(frame, pd.Series([1.0])))
    df = spark.createDataFrame(frame).repartition(2)
    for model_config, threads in ((None, 1.0), ({"num_threads": 2}, 2.0)):  # spark.task.cpus is 1 here
        u = spark_models.pyfunc.spark_udf(spark, str(tmp_path / "m"), model_config=model_config)
        values = {r[0] for r in df.select(u().alias("t")).collect()}
        assert values == {threads}, (model_config, values)


# ---- safe mode -----------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["pickle", "torchscript", "pt2"])
def test_safe_mode_refuses_every_layout(fmt, tmp_path):
    model = tm.make_mlp()
    if fmt == "torchscript":
        spark_models.pytorch.save_model(torch.jit.script(model), tmp_path / "m")
    else:
        spark_models.pytorch.save_model(model, tmp_path / "m", serialization_format=fmt,
                                        input_example=np.ones((3, 3), np.float32))
    expected = {"pickle": "unpickles 'data/model.pth'", "torchscript": "runs the TorchScript program in 'data/model.pth'",
                "pt2": "deserializes 'data/model.pt2' with torch.export.load"}[fmt]
    for load in (spark_models.pyfunc.load_model, spark_models.pytorch.load_model):
        with pytest.raises(UnsafeModelError, match=expected):
            load(tmp_path / "m", allow_code=False)
    assert spark_models.pyfunc.load_model(tmp_path / "m", allow_code=True).predict(np.ones((2, 3), np.float32)).shape == (2, 1)


def test_torchscript_runs_archive_code_on_load(tmp_path):
    """Why TorchScript is refused in safe mode: torch.jit.load runs the archive's __setstate__,
    and TorchScript can write files (here a marker, with aten::save)."""
    marker = tmp_path / "marker.bin"
    spark_models.pytorch.save_model(torch.jit.script(tm.WritesOnLoad(str(marker))), tmp_path / "m")
    assert not marker.exists()
    with pytest.raises(UnsafeModelError):
        spark_models.pyfunc.load_model(tmp_path / "m", allow_code=False)
    assert not marker.exists()
    spark_models.pytorch.load_model(tmp_path / "m")
    assert marker.exists(), "torch.jit.load ran no code from the archive: TorchScript could be allowed in safe mode"


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pt2_loading_unpickles_crafted_payloads(tmp_path, caplog):
    """Why pt2 is refused in safe mode: torch.export.load retries sample inputs the safe unpickler
    refuses with weights_only=False, running whatever the archive holds."""
    caplog.set_level(logging.ERROR, logger="torch._export.serde.serialize")  # its fallback warning has a bad format
    spark_models.pytorch.save_model(tm.make_mlp(), tmp_path / "m", serialization_format="pt2",
                                    input_example=np.ones((3, 3), np.float32))
    path, marker = tmp_path / "m" / "data" / "model.pt2", tmp_path / "marker"
    payload = io.BytesIO()
    torch.save(_Payload(str(marker)), payload)
    original = path.read_bytes()
    with zipfile.ZipFile(io.BytesIO(original)) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as dst:
        for info in src.infolist():
            swap = info.filename.endswith("data/sample_inputs/model.pt")
            dst.writestr(info.filename, payload.getvalue() if swap else src.read(info))
    with pytest.raises(UnsafeModelError):
        spark_models.pytorch.load_model(tmp_path / "m", allow_code=False)
    assert not marker.exists()
    with pytest.raises(MalformedModelError):  # torch then finds no tuple of inputs; the payload already ran
        spark_models.pytorch.load_model(tmp_path / "m")
    assert marker.exists(), "torch.export.load unpickled nothing: pt2 could be allowed in safe mode"


def test_shipped_code_is_refused_in_safe_mode(tmp_path):
    (tmp_path / "helper_mod.py").write_text("X = 1\n")
    spark_models.pytorch.save_model(tm.make_mlp(), tmp_path / "m", code_paths=[tmp_path / "helper_mod.py"])
    assert mlmodel(tmp_path / "m")["flavors"]["pytorch"]["code"] == "code"
    with pytest.raises(UnsafeModelError, match="ships code"):
        spark_models.pytorch.load_model(tmp_path / "m", allow_code=False)


# ---- requirements --------------------------------------------------------------------------

def test_torch_pin_drops_the_local_label_and_matches_this_build(tmp_path):
    from importlib import metadata

    from packaging.specifiers import SpecifierSet
    from packaging.version import Version

    installed = metadata.version("torch")
    public = Version(installed).public
    pins = spark_models.pytorch.default_pip_requirements()
    assert f"torch=={public}" in pins and not any("+" in p for p in pins)
    assert f"cloudpickle=={metadata.version('cloudpickle')}" in pins
    assert Version(installed) in SpecifierSet(f"=={public}"), "the pin must accept the installed build"
    spark_models.pytorch.save_model(tm.make_mlp(), tmp_path / "m")
    assert f"torch=={public}" in (tmp_path / "m" / "requirements.txt").read_text().splitlines()


# ---- processes: imports, MLflow ------------------------------------------------------------

HEAVY = ("mlflow", "sklearn", "tensorflow", "keras", "xgboost", "lightgbm", "onnxruntime", "pyspark")
IMPORTS = r'''
import json, sys
import numpy as np
{body}
print(json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)))
'''


@pytest.mark.slow
def test_scoring_imports_torch_and_nothing_else_heavy(images, tmp_path):
    spark_models.pytorch.save_model(tm.make_cnn(), tmp_path / "m", signature=cnn_signature())
    np.save(tmp_path / "x.npy", images)
    score = (f"import spark_models.pyfunc\nm = spark_models.pyfunc.load_model({str(tmp_path / 'm')!r})\n"
             f"m.predict(np.load({str(tmp_path / 'x.npy')!r}))\nassert 'torch' in sys.modules")
    scored = run_json(IMPORTS.format(body=score, heavy=HEAVY), cwd=str(ROOT))
    library_alone = run_json(IMPORTS.format(body="import torch", heavy=HEAVY), cwd=str(ROOT))
    assert "mlflow" not in scored and "sklearn" not in scored and "tensorflow" not in scored
    assert scored == library_alone


MLFLOW_WRITES = r'''
import json, numpy as np, pandas as pd, torch, mlflow.pyfunc, mlflow.pytorch
from mlflow.models import ModelSignature
from mlflow.types import Schema, TensorSpec
from tests.helpers import torch_models as tm
root = {root!r}
fast = {{"pip_requirements": ["torch"]}}  # skips MLflow's requirement inference (a process per model)

class Local(torch.nn.Module):  # defined in __main__: cloudpickle stores it by value
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(3, 2)
    def forward(self, x):
        return torch.tanh(self.lin(x)) * 3

torch.manual_seed(0)
X = pd.DataFrame(np.random.default_rng(0).normal(size=(20, 3)), columns=["a", "b", "c"])
images = np.random.default_rng(1).normal(size=(5, 3, 8, 8)).astype(np.float32)
X.to_parquet(root + "/X.parquet"); np.save(root + "/images.npy", images)
mlflow.pytorch.save_model(tm.make_mlp(), root + "/pickled", serialization_format="pickle", **fast)
mlflow.pytorch.save_model(Local(), root + "/main_class", serialization_format="pickle", **fast)
mlflow.pytorch.save_model(torch.jit.script(tm.make_mlp()), root + "/scripted", serialization_format="pickle", **fast)
mlflow.pytorch.save_model(tm.make_cnn().eval(), root + "/exported", serialization_format="pt2", input_example=images[:3], **fast)
pair = (np.ones((4, 3), np.float32), np.full((4, 4), 0.5, np.float32))
two_sig = ModelSignature(Schema([TensorSpec(np.dtype("float32"), (-1, 3), "numbers"),
                               TensorSpec(np.dtype("float32"), (-1, 4), "extra")]))
mlflow.pytorch.save_model(tm.make_two_inputs().eval(), root + "/exported_two", serialization_format="pt2",
                          input_example=pair, signature=two_sig, **fast)
out = {{name: mlflow.pyfunc.load_model(root + "/" + name).predict(X).to_numpy().tolist()
       for name in ("pickled", "main_class", "scripted")}}
out["exported"] = mlflow.pyfunc.load_model(root + "/exported").predict(images).tolist()
out["exported_two"] = mlflow.pytorch.load_model(root + "/exported_two")(*map(torch.from_numpy, pair)).tolist()
out["pyfunc_flavors"] = {{n: "python_function" in mlflow.models.Model.load(root + "/" + n).flavors
                         for n in ("exported", "exported_two")}}
print(json.dumps(out))
'''

READS_WITHOUT_MLFLOW = r'''
import json, sys, numpy as np, pandas as pd, torch, spark_models.pyfunc, spark_models.pytorch
root = {root!r}
X, images = pd.read_parquet(root + "/X.parquet"), np.load(root + "/images.npy")
out = {{name: spark_models.pyfunc.load_model(root + "/" + name).predict(X).to_numpy().tolist()
       for name in ("pickled", "main_class", "scripted")}}
out["exported"] = spark_models.pyfunc.load_model(root + "/exported").predict(images).tolist()
two = spark_models.pytorch.load_model(root + "/exported_two")
pair = (np.ones((4, 3), np.float32), np.full((4, 4), 0.5, np.float32))
out["exported_two"] = two(*map(torch.from_numpy, pair)).tolist()
out["types"] = {{n: type(spark_models.pytorch.load_model(root + "/" + n)).__name__ for n in ("pickled", "main_class")}}
out["mlflow_loaded"] = any(m.split(".")[0] == "mlflow" for m in sys.modules)
print(json.dumps(out))
'''


@pytest.mark.slow
def test_mlflow_written_models_load_where_mlflow_cannot_be_imported(tmp_path):
    pytest.importorskip("mlflow")
    expected = run_json(MLFLOW_WRITES.format(root=str(tmp_path)), cwd=str(ROOT))
    assert expected.pop("pyfunc_flavors") == {"exported": True, "exported_two": False}  # MLflow: no pyfunc for 2 inputs
    got = run_json(READS_WITHOUT_MLFLOW.format(root=str(tmp_path)), blocked=("mlflow",), cwd=str(ROOT))
    assert got.pop("mlflow_loaded") is False
    assert got.pop("types") == {"pickled": "MLP", "main_class": "Local"}
    assert set(got) == set(expected)
    for name in expected:
        np.testing.assert_allclose(got[name], expected[name], rtol=1e-6, err_msg=name)


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["pickle", "torchscript", "pt2"])
def test_our_models_load_in_mlflow(fmt, frame, images, tmp_path):
    mlflow_pyfunc = pytest.importorskip("mlflow.pyfunc")
    import mlflow.pytorch

    path = tmp_path / "m"
    if fmt == "pt2":
        model, data = tm.make_cnn(), images
        spark_models.pytorch.save_model(model, path, serialization_format="pt2", input_example=images[:4])
    else:
        model, data = tm.make_mlp(), frame
        saved = torch.jit.script(model) if fmt == "torchscript" else model
        spark_models.pytorch.save_model(saved, path, input_example=frame.head(3))
    ours = spark_models.pyfunc.load_model(path).predict(data)
    theirs = mlflow_pyfunc.load_model(str(path)).predict(data)
    if fmt == "pt2":
        np.testing.assert_array_equal(theirs, ours)
    else:
        pd.testing.assert_frame_equal(theirs, ours)
    native = mlflow.pytorch.load_model(str(path))
    as_tensor = torch.from_numpy(np.asarray(data, dtype=np.float32))
    np.testing.assert_allclose(native(as_tensor).detach().numpy(), np.asarray(ours), rtol=1e-6)
    if fmt == "pickle":
        assert type(native) is tm.MLP
