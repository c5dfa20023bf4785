"""Nothing untrusted is trusted: the safe mode (allow_code=False), code/ that would shadow modules,
and the workers' private, hash-verified extraction cache."""

import os
import shutil
import tarfile
import tempfile

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner
from sklearn.linear_model import LinearRegression

import spark_models.pyfunc
import spark_models.sklearn
from spark_models.cli import cli
from spark_models.exceptions import UnsafeModelError
from spark_models.flavors.trust import ALLOW_CODE_ENV
from spark_models.models import infer_signature
from udf.shipping import build_archive, content_hash, extracted_model_dir, private_dir

X = pd.DataFrame({"a": [0.0, 1.0, 2.0], "b": [1.0, 0.0, 1.0]})
EVIL = "from pathlib import Path\nPath({marker!r}).write_text('ran')\ndef _load_pyfunc(path):\n    return None\n"


def _sklearn(tmp_path, name="sk", fmt="skops"):
    reg = LinearRegression().fit(X, X.a)
    spark_models.sklearn.save_model(reg, tmp_path / name, serialization_format=fmt,
                                    signature=infer_signature(X, reg.predict(X)))
    return tmp_path / name


def _edit(path, edit):
    meta = yaml.safe_load((path / "MLmodel").read_text())
    edit(meta)
    (path / "MLmodel").write_text(yaml.safe_dump(meta))


@pytest.fixture
def evil_skops(tmp_path):
    """A skops model whose MLmodel names a loader module shipped in its code/ directory."""
    path = _sklearn(tmp_path)
    (path / "code").mkdir()
    marker = tmp_path / "marker.txt"
    (path / "code" / "evil_loader_mod.py").write_text(EVIL.format(marker=str(marker)))
    _edit(path, lambda m: m["flavors"]["python_function"].update(loader_module="evil_loader_mod", code="code"))
    return path, marker


def test_safe_mode_refuses_a_models_own_code_and_runs_none_of_it(evil_skops):
    path, marker = evil_skops
    with pytest.raises(UnsafeModelError, match="allow_code=False: it ships code"):
        spark_models.pyfunc.load_model(path, allow_code=False)
    assert not marker.exists()


def test_safe_mode_from_the_environment(evil_skops, monkeypatch):
    path, marker = evil_skops
    monkeypatch.setenv(ALLOW_CODE_ENV, "0")
    with pytest.raises(UnsafeModelError):
        spark_models.pyfunc.load_model(path)
    assert not marker.exists()


def test_the_default_mode_trusts_the_model(evil_skops):
    """As documented (and as in MLflow): by default the model's loader module is imported."""
    from spark_models.exceptions import InvalidArgumentError

    path, marker = evil_skops
    with pytest.raises(InvalidArgumentError, match="has no predict"):
        spark_models.pyfunc.load_model(path)
    assert marker.read_text() == "ran"


def test_safe_mode_refuses_an_unregistered_loader_module_without_importing_it(tmp_path, monkeypatch):
    path = _sklearn(tmp_path)
    marker = tmp_path / "marker.txt"
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "installed_evil_mod.py").write_text(EVIL.format(marker=str(marker)))
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    _edit(path, lambda m: m["flavors"]["python_function"].update(loader_module="installed_evil_mod"))
    with pytest.raises(UnsafeModelError, match="'installed_evil_mod' is not a registered flavor"):
        spark_models.pyfunc.load_model(path, allow_code=False)
    assert not marker.exists()


@pytest.mark.parametrize("fmt", ["pickle", "cloudpickle"])
def test_safe_mode_refuses_pickles_and_allows_skops(tmp_path, fmt):
    with pytest.raises(UnsafeModelError, match=f"unpickles model.pkl \\({fmt}\\)"):
        spark_models.pyfunc.load_model(_sklearn(tmp_path, fmt, fmt), allow_code=False)
    with pytest.raises(UnsafeModelError):
        spark_models.sklearn.load_model(tmp_path / fmt, allow_code=False)
    safe = spark_models.pyfunc.load_model(_sklearn(tmp_path, "skops"), allow_code=False)
    assert safe.predict(X).tolist() == pytest.approx(X.a.tolist())


def test_safe_mode_ignores_trusted_types_listed_by_the_model_itself(tmp_path):
    from sklearn.preprocessing import FunctionTransformer

    path = tmp_path / "ft"
    model = FunctionTransformer(func=abs)  # a callable: skops does not trust it by default
    spark_models.sklearn.save_model(model, path, serialization_format="skops", pyfunc_predict_fn="transform",
                                    skops_trusted_types=["builtins.abs"])
    assert spark_models.pyfunc.load_model(path).predict(X) is not None  # the default trusts the MLmodel's list
    with pytest.raises(UnsafeModelError, match="not trusted"):
        spark_models.pyfunc.load_model(path, allow_code=False)


def test_safe_mode_refuses_custom_python_models(tmp_path):
    class Echo(spark_models.pyfunc.PythonModel):
        def predict(self, context, model_input):
            return model_input

    spark_models.pyfunc.save_model(tmp_path / "py", python_model=Echo())
    with pytest.raises(UnsafeModelError, match="unpickles python_model.pkl"):
        spark_models.pyfunc.load_model(tmp_path / "py", allow_code=False)


@pytest.mark.spark
def test_spark_udf_and_predict_honour_safe_mode(spark, evil_skops, tmp_path):
    path, marker = evil_skops
    with pytest.raises(UnsafeModelError):
        spark_models.pyfunc.spark_udf(spark, str(path), allow_code=False)
    X.to_csv(tmp_path / "in.csv", index=False)
    for local in ([], ["--local"]):
        result = CliRunner().invoke(cli, ["predict", "-m", str(path), "-i", str(tmp_path / "in.csv"),
                                          "-o", str(tmp_path / f"out{len(local)}"), "--no-allow-code", *local])
        assert result.exit_code == 1 and "UnsafeModelError" in result.output
    assert not marker.exists()


@pytest.mark.spark
def test_spark_udf_safe_mode_is_enforced_in_the_workers_too(spark, tmp_path):
    u = spark_models.pyfunc.spark_udf(spark, str(_sklearn(tmp_path)), allow_code=False)
    assert u._plan.allow_code is False
    assert spark.createDataFrame(X).withColumn("p", u()).count() == 3


@pytest.mark.parametrize("name", ["colorsys", "json", "yaml"])
def test_code_that_would_shadow_a_module_is_refused(tmp_path, name):
    import yaml as _  # noqa: F401 (yaml: already imported from site-packages)

    path = _sklearn(tmp_path, fmt="cloudpickle")
    (path / "code").mkdir()
    (path / "code" / f"{name}.py").write_text("HIJACKED = True\n")
    _edit(path, lambda m: m["flavors"]["python_function"].update(code="code"))
    with pytest.raises(UnsafeModelError, match=f"'{name}.py', which would shadow the .*module '{name}'"):
        spark_models.pyfunc.load_model(path)
    assert not getattr(__import__(name), "HIJACKED", False)


def test_the_extraction_cache_is_private(monkeypatch, tmp_path):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    root = private_dir("extracted")
    assert root.stat().st_mode & 0o777 == 0o700
    os.chmod(root, 0o755)
    with pytest.raises(UnsafeModelError, match="not a private directory"):
        private_dir("extracted")
    os.chmod(root, 0o700)
    if os.getuid() == 0:  # only root can hand a directory to someone else
        os.chown(root, 12345, 12345)
        with pytest.raises(UnsafeModelError, match="owner uid 12345"):
            private_dir("extracted")


def test_a_planted_or_partial_directory_is_never_served(monkeypatch, tmp_path):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    model = _sklearn(tmp_path)
    key = content_hash(model)
    archive = build_archive(model, key)
    planted = private_dir("extracted") / key
    shutil.copytree(_sklearn(tmp_path, "other", "cloudpickle"), planted)  # someone else's model, right name
    served = extracted_model_dir(archive, key)
    assert served == planted and content_hash(served) == key  # replaced by the real content
    (served / "model.skops").unlink()  # a partial copy
    assert content_hash(extracted_model_dir(archive, key)) == key


def test_an_archive_whose_content_does_not_match_its_hash_is_refused(monkeypatch, tmp_path):
    from spark_models.exceptions import MalformedModelError

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    model = _sklearn(tmp_path)
    bogus = tmp_path / "bogus.tar.gz"
    with tarfile.open(bogus, "w:gz") as tar:
        tar.add(model / "MLmodel", arcname="MLmodel")
    with pytest.raises(MalformedModelError, match="does not match the model hash"):
        extracted_model_dir(bogus, content_hash(model))
    assert not any(private_dir("extracted").iterdir())


def test_shipped_archives_are_size_capped(monkeypatch, tmp_path):
    from spark_models.exceptions import MalformedModelError
    from udf.shipping import safe_extract

    model = _sklearn(tmp_path)
    archive = build_archive(model, content_hash(model))
    monkeypatch.setenv("SPARK_MODELS_MAX_ARCHIVE_BYTES", "100")
    with pytest.raises(MalformedModelError, match="uncompressed bytes exceed the limit of 100.*SPARK_MODELS_MAX_ARCHIVE_BYTES"):
        safe_extract(archive, tmp_path / "out")
    monkeypatch.delenv("SPARK_MODELS_MAX_ARCHIVE_BYTES")
    monkeypatch.setenv("SPARK_MODELS_MAX_ARCHIVE_ENTRIES", "2")
    with pytest.raises(MalformedModelError, match="entries exceed the limit of 2"):
        safe_extract(archive, tmp_path / "out")


@pytest.mark.parametrize("key, value", [("data", "../../../etc/passwd"), ("code", "/etc")])
def test_mlmodel_paths_stay_inside_the_model(tmp_path, key, value):
    from spark_models.exceptions import MalformedModelError

    path = _sklearn(tmp_path, fmt="cloudpickle")
    _edit(path, lambda m: m["flavors"]["python_function"].update({key: value}))
    with pytest.raises(MalformedModelError, match=f"{value!r} lies outside the model directory"):
        spark_models.pyfunc.load_model(path)


def test_serve_refuses_in_safe_mode_before_listening(evil_skops):
    import subprocess
    import sys

    path, marker = evil_skops
    proc = subprocess.run([sys.executable, "-m", "spark_models.cli", "serve", "-m", str(path), "--no-allow-code",
                           "-p", "0"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "UnsafeModelError" in proc.stderr and "it ships code" in proc.stderr
    assert not marker.exists()
