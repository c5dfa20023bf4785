"""The gluon flavor: reading MLflow 1.x/2.x's gluon layout where MXNet cannot be imported.

``tests/fixtures/gluon/mlflow-2.9.2-dense`` was written by MLflow 2.9.2's ``mlflow.gluon`` with
MXNet 1.9.1 (see ``make_fixture.py`` there); ``mlflow-1.x-handwritten`` follows MLflow 1.x's
writer by hand. MXNet imports only beside numpy < 1.24, so here every load must end in the
MissingDependencyError that says so and how to convert the model; ``net.onnx`` (the same network,
converted as that message says) shows the way out works. With ``$SPARK_MODELS_MXNET_PYTHON``
naming an interpreter that has mxnet, the real loader is checked there too.
"""

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

import spark_models.gluon
import spark_models.pyfunc
from spark_models.exceptions import (
    ArtifactNotFoundError,
    MissingDependencyError,
    UnsafeModelError,
)
from spark_models.flavors.opening import open_model
from spark_models.flavors.registry import flavor_for_loader_module, get_flavor
from spark_models.flavors.testing import _check_contract
from spark_models.mlmodel import Model
from spark_models.pyfunc.loading import check_trusted
from tests.isolation import run_json

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "gluon"
WRITTEN = FIXTURES / "mlflow-2.9.2-dense"
HANDWRITTEN = FIXTURES / "mlflow-1.x-handwritten"
LAYOUTS = {"mlflow-2.9.2": (WRITTEN, "1.9.1"), "mlflow-1.x": (HANDWRITTEN, "1.8.0")}
RETIRED = ("Apache Attic in 2023", "numpy < 1.24", "convert it to ONNX", "mx.onnx.export_model(",
           "data/net-symbol.json", "data/net-0000.params", "spark_models.onnx.save_model")

try:
    import mxnet  # noqa: F401
    HAVE_MXNET = True
except (ImportError, AttributeError, OSError):  # not installed, or np.bool beside numpy >= 1.24
    HAVE_MXNET = False
needs_no_mxnet = pytest.mark.skipif(HAVE_MXNET, reason="mxnet imports here: these tests check its absence")


def expected() -> dict:
    return json.loads((FIXTURES / "expected.json").read_text())


def copy_of(src: Path, tmp_path: Path) -> Path:
    dest = tmp_path / src.name
    shutil.copytree(src, dest)
    return dest


def with_code(model_dir: Path) -> None:
    """Give a fixture copy a code directory, as MLflow writes one for code_paths."""
    (model_dir / "code").mkdir()
    (model_dir / "code" / "gluon_helpers_for_test.py").write_text("RAN = True\n")
    meta = yaml.safe_load((model_dir / "MLmodel").read_text())
    meta["flavors"]["gluon"]["code"] = meta["flavors"]["python_function"]["code"] = "code"
    (model_dir / "MLmodel").write_text(yaml.safe_dump(meta))


# ---- the layout and the registry ---------------------------------------------------------

@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_mlflow_layouts_parse(name):
    model_dir, version = LAYOUTS[name]
    meta = Model.load(model_dir)
    assert meta.flavors["gluon"] == {"code": None, "mxnet_version": version}
    pyfunc = meta.flavors["python_function"]
    assert pyfunc["loader_module"] == "mlflow.gluon" and "data" not in pyfunc  # MLflow's loader takes the directory
    assert pyfunc["env"] == ({"conda": "conda.yaml", "virtualenv": "python_env.yaml"} if name == "mlflow-2.9.2"
                             else "conda.yaml")
    for relative in (spark_models.gluon.SYMBOL_FILE, spark_models.gluon.PARAMS_FILE):
        assert (model_dir / relative).is_file()
    graph = json.loads((model_dir / spark_models.gluon.SYMBOL_FILE).read_text())
    assert graph["nodes"][0]["name"] == "data"  # the input MLflow binds
    assert f"mxnet=={version}" in (model_dir / "requirements.txt").read_text().splitlines()


def test_registry_finds_the_flavor_by_mlflow_s_loader_module():
    flavor = spark_models.gluon.FLAVOR
    assert flavor_for_loader_module("mlflow.gluon") is flavor
    assert flavor_for_loader_module("spark_models.gluon") is flavor
    assert get_flavor("gluon") is flavor
    _check_contract(flavor)  # fields, both loader modules, the public module MLflow would import
    assert "spark-models" in " ".join(flavor.default_pip_requirements())


# ---- without MXNet -----------------------------------------------------------------------

@needs_no_mxnet
@pytest.mark.parametrize("allow_code", [True, False])
@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_pyfunc_load_says_mxnet_is_retired_and_how_to_convert(name, allow_code):
    model_dir, version = LAYOUTS[name]
    with pytest.raises(MissingDependencyError) as caught:
        spark_models.pyfunc.load_model(model_dir, allow_code=allow_code)
    message = str(caught.value)
    assert all(part in message for part in RETIRED), message
    assert f"written with mxnet {version}" in message and str(model_dir) in message
    assert f"this environment has numpy {np.__version__}" in message
    assert isinstance(caught.value, ImportError)


@needs_no_mxnet
@pytest.mark.parametrize("ctx", [None, "cpu"])
def test_native_load_says_the_same(ctx):
    with pytest.raises(MissingDependencyError, match="MXNet is retired: it moved to the Apache Attic in 2023") as caught:
        spark_models.gluon.load_model(str(WRITTEN), ctx)
    assert all(part in str(caught.value) for part in RETIRED)
    with pytest.raises(MissingDependencyError, match="Apache Attic"):
        spark_models.gluon._load_pyfunc(str(WRITTEN))  # what MLflow would call: the model directory


@needs_no_mxnet
def test_save_model_needs_mxnet_too(tmp_path):
    with pytest.raises(MissingDependencyError, match=r"^Saving a gluon model needs MXNet, and mxnet is not installed") as caught:
        spark_models.gluon.save_model(object(), tmp_path / "m")
    assert all(part in str(caught.value) for part in RETIRED)
    assert not (tmp_path / "m").exists()


# ---- trust -------------------------------------------------------------------------------

@needs_no_mxnet
def test_safe_mode_treats_the_graph_and_weights_as_data(tmp_path):
    """Symbol JSON and NDArray params run no code: safe mode lets the load go on (to the MXNet
    error); a model shipping code is refused before MXNet is even looked for."""
    context = open_model(WRITTEN, allow_code=False)
    assert spark_models.gluon.FLAVOR.runs_code(context) is None
    check_trusted(context)  # raises nothing
    coded = copy_of(WRITTEN, tmp_path)
    with_code(coded)
    assert "ships code ('code')" in spark_models.gluon.FLAVOR.runs_code(open_model(coded))
    for load in (spark_models.pyfunc.load_model, spark_models.gluon.load_model):
        with pytest.raises(UnsafeModelError, match="ships code"):
            load(coded, allow_code=False)
        with pytest.raises(MissingDependencyError, match="Apache Attic"):
            load(coded, allow_code=True)


def test_missing_weights_are_named(tmp_path):
    broken = copy_of(WRITTEN, tmp_path)
    (broken / "data" / "net-0000.params").unlink()
    for load in (spark_models.pyfunc.load_model, spark_models.gluon.load_model):
        with pytest.raises(ArtifactNotFoundError, match=r"net-0000.params does not exist: .* keeps its network in"):
            load(broken)


# ---- the way out, and the real loader where mxnet exists ---------------------------------

def test_the_onnx_conversion_scores_as_mlflow_did():
    """net.onnx is the fixture converted with the recipe of the error message (in the fixture's
    MXNet environment): onnxruntime here gives what MLflow 2.9.2's pyfunc gave there."""
    ort = pytest.importorskip("onnxruntime")
    data = expected()
    X = pd.DataFrame(**data["input"])
    session = ort.InferenceSession(str(FIXTURES / "net.onnx"), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {session.get_inputs()[0].name: X.to_numpy(np.float32)})
    np.testing.assert_allclose(out, np.asarray(data["mlflow_predict"], np.float32), rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_loading_imports_nothing_heavy():
    code = f'''
import json, sys
import spark_models.pyfunc
from spark_models.exceptions import MissingDependencyError
try:
    spark_models.pyfunc.load_model({str(WRITTEN)!r})
except MissingDependencyError as e:
    error = str(e)
heavy = ("mxnet", "mlflow", "torch", "tensorflow", "spacy", "sklearn", "pyspark")
print(json.dumps({{"error": error, "heavy": sorted(m for m in heavy if m in sys.modules)}}))
'''
    out = run_json(code, blocked=("mlflow", "mxnet"))
    assert "Apache Attic" in out["error"] and out["heavy"] == []


MXNET_SCRIPT = r'''
import json, sys
sys.path.insert(0, {root!r})
import mxnet as mx, numpy as np, pandas as pd
import spark_models.gluon, spark_models.pyfunc
data = json.load(open({expected!r}))
X = pd.DataFrame(**data["input"])
out = {{}}
for name, path in {layouts!r}.items():
    out[name] = spark_models.pyfunc.load_model(path, allow_code=False).predict(X).to_numpy().tolist()
net = spark_models.gluon.load_model({written!r}, mx.cpu())
net.hybridize()
net(mx.nd.array(X.to_numpy()))
spark_models.gluon.save_model(net, {ours!r})
out["ours"] = spark_models.pyfunc.load_model({ours!r}).predict(X).to_numpy().tolist()
out["ours_mlmodel"] = open({ours!r} + "/MLmodel").read()
print(json.dumps(out))
'''


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("SPARK_MODELS_MXNET_PYTHON"),
                    reason="set SPARK_MODELS_MXNET_PYTHON to a Python with mxnet 1.9.1 (see tests/fixtures/gluon/make_fixture.py)")
def test_with_real_mxnet_elsewhere(tmp_path):
    """In an interpreter that has MXNet: both layouts load and score exactly as MLflow 2.9.2 did,
    and a model we save reloads the same."""
    script = MXNET_SCRIPT.format(root=str(ROOT), expected=str(FIXTURES / "expected.json"), written=str(WRITTEN),
                                 layouts={k: str(v[0]) for k, v in LAYOUTS.items()}, ours=str(tmp_path / "ours"))
    proc = subprocess.run([os.environ["SPARK_MODELS_MXNET_PYTHON"], "-c", script], capture_output=True, text=True, check=False,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    mlflow_said = np.asarray(expected()["mlflow_predict"], np.float32)
    for name in (*LAYOUTS, "ours"):
        np.testing.assert_array_equal(np.asarray(out[name], np.float32), mlflow_said)
    flavors = yaml.safe_load(out["ours_mlmodel"])["flavors"]
    assert flavors["gluon"] == {"mxnet_version": "1.9.1", "code": None}
    assert flavors["python_function"]["loader_module"] == "spark_models.gluon" and "data" not in flavors["python_function"]
