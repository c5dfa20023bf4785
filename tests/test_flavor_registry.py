"""The flavor registry: built-ins, entry-point plug-ins, missing packages named."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from spark_models.exceptions import InvalidArgumentError, MissingDependencyError, UnknownFlavorError
from spark_models.flavors import available_flavors, get_flavor_module, register_flavor
from spark_models.flavors import registry

# A complete third-party flavor, installed as a real distribution with an entry point.
TINY_FLAVOR = '''
"""A third-party flavor: a model is a dict of column weights."""
import json, os
from pathlib import Path
from spark_models.mlmodel import Model
from spark_models.environment import default_requirements
from spark_models.saving import finish_model, prepare_model_dir
from spark_models.uri import resolve_model_uri

FLAVOR_NAME = "tiny_linear"

class TinyLinear:
    def __init__(self, weights):
        self.weights = weights
    def predict(self, df, params=None):
        return sum(df[c] * w for c, w in self.weights.items()).to_numpy()

def save_model(model, path, **kwargs):
    root = prepare_model_dir(path)
    (root / "weights.json").write_text(json.dumps(model.weights))
    mlflow_model = Model().add_flavor(FLAVOR_NAME, data="weights.json")
    finish_model(root, mlflow_model, {"loader_module": __name__}, default_requirements(), predict_for_signature=model.predict, **kwargs)

def load_model(model_uri):
    root = resolve_model_uri(model_uri)
    conf = Model.load(root).get_flavor(FLAVOR_NAME)
    return TinyLinear(json.loads((root / conf["data"]).read_text()))

def _load_pyfunc(path):
    return load_model(path)
'''


@pytest.fixture
def plugin_site(tmp_path):
    site = tmp_path / "site"
    (site / "tiny_flavor_pkg-1.0.dist-info").mkdir(parents=True)
    (site / "tiny_flavor_pkg.py").write_text(TINY_FLAVOR)
    (site / "tiny_flavor_pkg-1.0.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: tiny-flavor-pkg\nVersion: 1.0\n")
    (site / "tiny_flavor_pkg-1.0.dist-info" / "entry_points.txt").write_text("[spark_models.flavors]\ntiny_linear = tiny_flavor_pkg\n")
    return site


def test_entry_point_flavor_passes_conformance(plugin_site, tmp_path):
    code = textwrap.dedent(f"""
        import json, pandas as pd
        from spark_models.flavors import available_flavors, get_flavor_module
        from spark_models.flavors.testing import check_flavor
        flavor = get_flavor_module("tiny_linear")
        df = pd.DataFrame({{"a": [1.0, 2.0, 3.0], "b": [0.5, 0.0, 1.0]}})
        check_flavor(flavor, flavor.TinyLinear({{"a": 2.0, "b": -1.0}}), df, {str(tmp_path)!r})
        print(json.dumps({{"flavors": available_flavors(), "module": flavor.__name__}}))
    """)
    env = {**os.environ, "PYTHONPATH": f"{plugin_site}{os.pathsep}{os.getcwd()}"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "tiny_linear" in out["flavors"] and out["module"] == "tiny_flavor_pkg"


def test_builtin_flavors():
    assert {"python_function", "sklearn"} <= set(available_flavors())
    assert get_flavor_module("sklearn").FLAVOR_NAME == "sklearn"


def test_unknown_flavor_lists_known_ones():
    with pytest.raises(UnknownFlavorError, match="'h2o'.*sklearn.*spark_models.flavors"):
        get_flavor_module("h2o")


def test_missing_package_is_named(monkeypatch):
    monkeypatch.setitem(registry._registry, "ghost", {"module": "ghost_mod", "requires": "ghost_lib_xyz", "err": "The ghost flavor needs ghost-lib: pip install ghost-lib"})
    with pytest.raises(MissingDependencyError, match="pip install ghost-lib.*ghost_lib_xyz"):
        get_flavor_module("ghost")


def test_register_flavor_conflicts(monkeypatch):
    monkeypatch.setattr(registry, "_registry", {})
    register_flavor("mine", "json")
    assert get_flavor_module("mine").__name__ == "json"
    with pytest.raises(InvalidArgumentError, match="already registered"):
        register_flavor("sklearn", "other.module")
