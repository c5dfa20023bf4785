"""Deployment plugins: a third-party target installed by pip through a real entry point, used from
``get_deploy_client`` and the ``deployments`` CLI; broken plugins and unknown targets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from spark_models.commands.deployments import config_dict
from spark_models.deployments import get_deploy_client, installed_targets
from spark_models.deployments.base import BaseDeploymentClient, PredictionsResponse
from spark_models.exceptions import DeploymentNotFoundError, InvalidArgumentError, NotSupportedError

pytestmark = pytest.mark.slow

PLUGIN = '''
"""A deployment target that keeps its deployments in one JSON file and scores in-process."""
import json
from pathlib import Path

from spark_models.deployments.base import BaseDeploymentClient, PredictionsResponse


def target_help():
    return "jsonfile:/path/to/store.json keeps deployments in that file; config: any NAME=VALUE"


def run_local(target, name, model_uri, flavor=None, config=None):
    Path(target.split(":", 1)[1] + ".run_local").write_text(json.dumps([name, model_uri, flavor, config]))


class JsonFileClient(BaseDeploymentClient):
    def __init__(self, target_uri):
        super().__init__(target_uri)
        self.store = Path(target_uri.split(":", 1)[1])

    def _read(self):
        return json.loads(self.store.read_text()) if self.store.exists() else {}

    def _write(self, data):
        self.store.write_text(json.dumps(data))

    def create_deployment(self, name, model_uri, flavor=None, config=None, endpoint=None):
        data = self._read()
        data[name] = {"name": name, "model_uri": model_uri, "flavor": flavor or "python_function", "config": config}
        self._write(data)
        return data[name]

    def update_deployment(self, name, model_uri=None, flavor=None, config=None, endpoint=None):
        data = self._read()
        data[name].update({k: v for k, v in {"model_uri": model_uri, "config": config}.items() if v})
        self._write(data)
        return data[name]

    def delete_deployment(self, name, config=None, endpoint=None):
        data = self._read()
        data.pop(name, None)
        self._write(data)

    def list_deployments(self, endpoint=None):
        return list(self._read().values())

    def get_deployment(self, name, endpoint=None):
        return self._read()[name]

    def predict(self, deployment_name=None, inputs=None, endpoint=None):
        import spark_models.pyfunc

        model = spark_models.pyfunc.load_model(self._read()[deployment_name]["model_uri"])
        return PredictionsResponse(predictions=[float(v) for v in model.predict(inputs)])
'''

BROKEN = '''
def target_help():
    return "broken"
'''


def _install_plugin(root: Path) -> Path:
    """pip-install a package declaring two ``spark_models.deployments`` entry points into ``root/site``."""
    package = root / "pkg"
    package.mkdir()
    (package / "sm_jsonfile_plugin.py").write_text(PLUGIN)
    (package / "sm_broken_plugin.py").write_text(BROKEN)
    (package / "pyproject.toml").write_text(textwrap.dedent('''
        [build-system]
        requires = ["setuptools>=65"]
        build-backend = "setuptools.build_meta"
        [project]
        name = "sm-jsonfile-plugin"
        version = "1.0"
        [project.entry-points."spark_models.deployments"]
        jsonfile = "sm_jsonfile_plugin"
        broken = "sm_broken_plugin"
        [tool.setuptools]
        py-modules = ["sm_jsonfile_plugin", "sm_broken_plugin"]
    '''))
    site = root / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", str(site), str(package)], check=True, capture_output=True)
    assert list(site.glob("sm_jsonfile_plugin-1.0.dist-info/entry_points.txt"))
    return site


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory):
    return _install_plugin(tmp_path_factory.mktemp("plugin"))


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    from sklearn.linear_model import LinearRegression

    import spark_models.sklearn

    X = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0], "b": [1.0, 0.0, 1.0, 0.0]})
    lr = LinearRegression().fit(X, X.a * 2 + X.b)
    path = tmp_path_factory.mktemp("dep-model") / "lr"
    spark_models.sklearn.save_model(lr, path)
    return path, X, lr.predict(X)


def _cli(site: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "spark_models.cli", "deployments", *args], capture_output=True,
                          text=True, timeout=120, env=env)


def test_a_pip_installed_plugin_is_found_through_its_entry_point(plugin_site, model, tmp_path):
    path, X, expected = model
    store = f"jsonfile:{tmp_path / 'store.json'}"
    code = textwrap.dedent(f'''
        import json, pandas as pd
        from spark_models.deployments import get_deploy_client, installed_targets, run_local, target_help
        client = get_deploy_client({store!r})
        created = client.create_deployment("lr", {str(path)!r}, config={{"replicas": "2"}})
        preds = client.predict("lr", pd.DataFrame({X.to_dict("list")!r}))
        run_local({store!r}, "lr", {str(path)!r}, None, {{"k": "v"}})
        print(json.dumps({{"class": type(client).__name__, "targets": installed_targets(), "created": created,
                           "listed": client.list_deployments(), "preds": preds.get_predictions("ndarray").tolist(),
                           "help": target_help("jsonfile")}}))
    ''')
    env = {**os.environ, "PYTHONPATH": str(plugin_site)}
    out = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                                    env=env).stdout.strip().splitlines()[-1])
    assert out["class"] == "JsonFileClient" and {"jsonfile", "local", "broken"} <= set(out["targets"])
    assert out["created"]["config"] == {"replicas": "2"} and [d["name"] for d in out["listed"]] == ["lr"]
    np.testing.assert_allclose(out["preds"], expected)
    assert out["help"].startswith("jsonfile:/path")
    assert json.loads(Path(f"{tmp_path / 'store.json'}.run_local").read_text()) == ["lr", str(path), None, {"k": "v"}]


def test_the_cli_drives_a_plugin_target_end_to_end(plugin_site, model, tmp_path):
    path, X, expected = model
    target = f"jsonfile:{tmp_path / 'store.json'}"
    created = _cli(plugin_site, "create", "-t", target, "--name", "lr", "-m", str(path), "-C", "replicas=2")
    assert created.returncode == 0 and "python_function deployment lr is created" in created.stdout, created.stderr
    assert json.loads(_cli(plugin_site, "get", "-t", target, "--name", "lr").stdout)["config"] == {"replicas": "2"}
    updated = _cli(plugin_site, "update", "-t", target, "--name", "lr", "-C", "replicas=3")
    assert updated.returncode == 0 and "is updated" in updated.stdout
    X.to_csv(tmp_path / "in.csv", index=False)
    scored = _cli(plugin_site, "predict", "-t", target, "--name", "lr", "-I", str(tmp_path / "in.csv"),
                  "-O", str(tmp_path / "out.json"))
    assert scored.returncode == 0, scored.stderr
    np.testing.assert_allclose(json.loads((tmp_path / "out.json").read_text())["predictions"], expected)
    again = _cli(plugin_site, "predict", "-t", target, "--name", "lr", "-I", str(tmp_path / "in.csv"),
                 "-O", str(tmp_path / "out.json"))
    assert again.returncode == 2 and "--overwrite" in again.stderr  # an existing output is never replaced silently
    assert "keeps deployments" in _cli(plugin_site, "help", "-t", "jsonfile").stdout
    assert _cli(plugin_site, "delete", "-t", target, "--name", "lr").returncode == 0
    assert json.loads(_cli(plugin_site, "list", "-t", target).stdout) == []


def test_a_broken_plugin_and_an_unknown_target_are_clear_errors(plugin_site):
    broken = _cli(plugin_site, "list", "-t", "broken")
    assert broken.returncode == 1 and "DeploymentError" in broken.stderr and "run_local" in broken.stderr
    unknown = _cli(plugin_site, "list", "-t", "nosuch:/x")
    assert unknown.returncode == 1 and "DeploymentNotFoundError" in unknown.stderr
    assert "'broken', 'jsonfile', 'local'" in unknown.stderr  # the installed targets


def test_unknown_targets_and_bad_uris_in_python():
    with pytest.raises(DeploymentNotFoundError, match=r"installed targets: \[.*'local'"):
        get_deploy_client("nosuch")
    with pytest.raises(InvalidArgumentError, match="not a deployment target URI"):
        get_deploy_client("/just/a/path")
    assert "local" in installed_targets()


def test_config_pairs_from_the_command_line():
    import click

    assert config_dict(("port=5001", "url=a=b")) == {"port": "5001", "url": "a=b"}
    for bad in (("port",), ("a=1", "a=2"), ("=x",)):
        with pytest.raises(click.BadParameter):
            config_dict(bad)
    from spark_models.commands.deployments import deployments

    result = CliRunner().invoke(deployments, ["create", "-t", "local", "--name", "x", "-m", "m", "-C", "port"])
    assert result.exit_code == 2 and "NAME=VALUE" in result.output


def test_the_base_client_refuses_what_a_target_does_not_offer():
    class Minimal(BaseDeploymentClient):
        create_deployment = update_deployment = delete_deployment = lambda self, *a, **k: {}
        list_deployments = get_deployment = predict = lambda self, *a, **k: {}

    client = Minimal("minimal")
    for call in (lambda: client.create_endpoint("e"), lambda: client.list_endpoints(),
                 lambda: client.explain("d"), lambda: client.predict_stream("d")):
        with pytest.raises(NotSupportedError, match="Minimal"):
            call()
    frame = PredictionsResponse(predictions=[{"a": 1}, {"a": 2}]).get_predictions()
    assert frame.a.tolist() == [1, 2]
