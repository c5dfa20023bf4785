"""The flavor registry is the one lookup path: built-ins, MLflow's names, entry-point plug-ins.

The third-party flavor used here is the README's own example ("Writing a custom flavor"),
installed as a real distribution with an entry point.
"""

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

import spark_models.mleap
import spark_models.pyfunc
import spark_models.pyfunc.model
import spark_models.sklearn
import spark_models.spark
from spark_models.exceptions import InvalidArgumentError, MissingDependencyError, UnknownFlavorError
from spark_models.flavors import Flavor, available_flavors, flavor_for_loader_module, get_flavor, register_flavor
from spark_models.flavors import registry

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_flavor_source() -> str:
    """The first Python block of README's "Writing a custom flavor" section."""
    section = README.read_text().split("## Writing a custom flavor", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.fixture
def plugin_site(tmp_path):
    site = tmp_path / "site"
    info = site / "tiny_flavor_pkg-1.0.dist-info"
    info.mkdir(parents=True)
    (site / "tiny_flavor_pkg.py").write_text(readme_flavor_source())
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tiny-flavor-pkg\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[spark_models.flavors]\ntiny_linear = tiny_flavor_pkg\n")
    return site


def _run(code: str, site: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{os.getcwd()}"}
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_readme_example_is_about_30_lines():
    lines = [ln for ln in readme_flavor_source().splitlines() if ln.strip()]
    assert 20 <= len(lines) <= 35


def test_readme_flavor_passes_conformance_through_its_entry_point(plugin_site, tmp_path):
    out = _run(f"""
        import json, pandas as pd
        import tiny_flavor_pkg
        from spark_models.flavors import available_flavors, get_flavor
        from spark_models.flavors.testing import check_flavor
        df = pd.DataFrame({{"a": [1.0, 2.0, 3.0], "b": [0.5, 0.0, 1.0]}})
        check_flavor(tiny_flavor_pkg.FLAVOR, tiny_flavor_pkg.TinyLinear({{"a": 2.0, "b": -1.0}}), df, {str(tmp_path)!r})
        print(json.dumps({{"flavors": available_flavors(), "same": get_flavor("tiny_linear") is tiny_flavor_pkg.FLAVOR}}))
    """, plugin_site)
    assert "tiny_linear" in out["flavors"] and out["same"]


def test_pyfunc_loads_a_plugin_model_through_the_registry(plugin_site, tmp_path):
    """A fresh process that never imports the plug-in itself: the entry point finds it."""
    model_dir = tmp_path / "m"
    _run(f"""
        import json, tiny_flavor_pkg
        tiny_flavor_pkg.save_model(tiny_flavor_pkg.TinyLinear({{"a": 3.0}}), {str(model_dir)!r})
        print("{{}}")
    """, plugin_site)
    out = _run(f"""
        import json, sys, pandas as pd
        import spark_models.pyfunc
        model = spark_models.pyfunc.load_model({str(model_dir)!r})
        print(json.dumps({{"pred": model.predict(pd.DataFrame({{"a": [1.0, 2.0]}})).tolist(),
                          "impl": type(model.get_raw_model()).__module__}}))
    """, plugin_site)
    assert out == {"pred": [3.0, 6.0], "impl": "tiny_flavor_pkg"}


@pytest.mark.parametrize("name, public", [("sklearn", spark_models.sklearn), ("spark", spark_models.spark),
                                          ("mleap", spark_models.mleap), ("python_function", spark_models.pyfunc.model)])
def test_builtin_flavors_resolve_by_name_and_every_loader_module(name, public):
    flavor = get_flavor(name)
    assert isinstance(flavor, Flavor) and flavor is public.FLAVOR and flavor.name == name
    assert flavor.module == public.__name__
    for loader in flavor.loader_modules:
        assert flavor_for_loader_module(loader) is flavor
    assert f"mlflow.{'pyfunc.model' if name == 'python_function' else name}" in flavor.loader_modules


def test_only_the_spark_flavor_declares_a_udf_hook():
    hooks = {name: get_flavor(name).prepare_for_udf is not None for name in ("sklearn", "spark", "mleap", "python_function")}
    assert hooks == {"sklearn": False, "spark": True, "mleap": False, "python_function": False}


def test_unknown_flavor_lists_known_ones():
    with pytest.raises(UnknownFlavorError, match="'no_such_flavor'.*sklearn.*spark_models.flavors"):
        get_flavor("no_such_flavor")


def test_missing_package_is_named_with_the_extra(monkeypatch):
    source = registry._builtin("ghost", "ghost_mod:FLAVOR", requires="ghost_lib_xyz", extra="ghost")
    monkeypatch.setitem(registry.known_flavors, "ghost", source)
    with pytest.raises(MissingDependencyError, match=r"ghost flavor needs 'ghost_lib_xyz'.*pip install 'spark-models\[ghost\]'"):
        get_flavor("ghost")


def test_unregistered_loader_module_is_adapted(tmp_path, monkeypatch):
    """MLflow's custom loader modules (``_load_pyfunc(path)`` only) still load."""
    (tmp_path / "plain_loader.py").write_text("def _load_pyfunc(path):\n    return path\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    flavor = flavor_for_loader_module("plain_loader")
    assert flavor.module == "plain_loader" and flavor.mlflow_module is None and callable(flavor.load_pyfunc)


def test_loader_module_without_a_loader_is_an_error(tmp_path, monkeypatch):
    (tmp_path / "no_loader.py").write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(InvalidArgumentError, match="'no_loader' defines neither FLAVOR"):
        flavor_for_loader_module("no_loader")


def test_register_flavor_conflicts_and_targets(monkeypatch):
    monkeypatch.setattr(registry, "_registered", {})
    monkeypatch.setattr(registry, "_loaded", {})
    register_flavor("mine", "spark_models.flavors.sklearn:FLAVOR", loader_modules=("my.loader",))
    assert get_flavor("mine") is get_flavor("sklearn")
    with pytest.raises(InvalidArgumentError, match="already registered"):
        register_flavor("sklearn", "other.module:FLAVOR")
    register_flavor("broken", "json:dumps")
    with pytest.raises(InvalidArgumentError, match="'json:dumps' is not a spark_models Flavor"):
        get_flavor("broken")


def test_check_flavor_catches_a_public_module_that_misses_the_loader(tmp_path, monkeypatch):
    """The shim modules cannot silently lose MLflow's ``_load_pyfunc``: check_flavor names it."""
    from sklearn.linear_model import LinearRegression

    from spark_models.flavors.testing import check_flavor

    monkeypatch.delattr(spark_models.sklearn, "_load_pyfunc")
    X = pd.DataFrame({"a": [0.0, 1.0, 2.0]})
    with pytest.raises(AssertionError, match="spark_models.sklearn has no _load_pyfunc"):
        check_flavor(spark_models.sklearn, LinearRegression().fit(X, X.a), X, tmp_path)


def test_available_flavors_lists_the_builtins():
    assert {"python_function", "sklearn", "spark", "mleap"} <= set(available_flavors())
