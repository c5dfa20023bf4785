"""Model environments: what a model declares, built once per machine, packed and unpacked (real uv, real PyPI)."""

from __future__ import annotations

import io
import json
import multiprocessing
import subprocess
import tarfile

import pytest

from spark_models.envs.archive import MANIFEST, pack_env, read_manifest, unpack_env
from spark_models.envs.build import MARKER, builds_of, ensure_env, find_env
from spark_models.envs.spec import env_spec, machine_platform, requirement_mismatches
from spark_models.exceptions import (
    InvalidArgumentError,
    MalformedModelError,
    ModelEnvironmentError,
)
from tests.helpers.env_models import OLD_SKLEARN

pytestmark = pytest.mark.slow


def _model_with(tmp_path, requirements: str, python_env: str | None = None):
    model = tmp_path / "m"
    model.mkdir(parents=True)
    (model / "MLmodel").write_text("flavors: {}\n")
    (model / "requirements.txt").write_text(requirements)
    if python_env is not None:
        (model / "python_env.yaml").write_text(python_env)
    return model


def test_spec_reads_the_models_pins_drops_our_own_and_adds_what_the_loader_imports(old_model):
    spec = env_spec(old_model[0])
    assert f"scikit-learn=={OLD_SKLEARN}" in spec.requirements
    assert not any(r.startswith(("spark-models", "mlflow")) for r in spec.requirements)
    assert any(r.startswith("pyarrow") for r in spec.requirements) and spec.python.count(".") == 1
    assert spec.platform == machine_platform() and spec == env_spec(old_model[0])


def test_spec_key_changes_with_the_requirements_and_the_manager(tmp_path):
    first = env_spec(_model_with(tmp_path / "a", "scikit-learn==1.5.2\n"))
    second = env_spec(_model_with(tmp_path / "b", "scikit-learn==1.5.1\n"))
    assert first.key != second.key
    assert env_spec(tmp_path / "a" / "m", "virtualenv").key != first.key


def test_spec_inlines_included_files_and_refuses_paths_outside_the_model(tmp_path):
    model = _model_with(tmp_path, "-r extra.txt\n", "python: '3.11'\ndependencies:\n- -r requirements.txt\n")
    (model / "extra.txt").write_text("numpy==2.0.0  # pinned\n")
    assert "numpy==2.0.0" in env_spec(model).requirements
    (model / "requirements.txt").write_text("-r ../../secret.txt\n")
    with pytest.raises(MalformedModelError, match="outside the model directory"):
        env_spec(model)


def test_spec_of_a_model_without_environment_files_says_so(tmp_path):
    model = tmp_path / "bare"
    model.mkdir()
    with pytest.raises(MalformedModelError, match="python_env.yaml"):
        env_spec(model)
    with pytest.raises(MalformedModelError, match="conda.yaml"):
        env_spec(model, "conda")


def test_conda_without_a_conda_binary_is_a_clear_error(tmp_path, env_cache, monkeypatch):
    model = _model_with(tmp_path, "")
    (model / "conda.yaml").write_text("dependencies:\n- python=3.11\n- pip:\n  - numpy\n")
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.delenv("CONDA_EXE", raising=False)
    with pytest.raises(ModelEnvironmentError, match="conda binary"):
        ensure_env(env_spec(model, "conda"), timeout=60)


def test_the_environment_is_built_once_and_has_the_models_version(old_model, env_cache):
    spec = env_spec(old_model[0])
    built = ensure_env(spec)
    again = ensure_env(spec)
    assert again == built and len(builds_of(spec.key)) == 1
    out = subprocess.run([str(built.python), "-c", "import sklearn; print(sklearn.__version__)"],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == OLD_SKLEARN


def _build_in_process(spec, cache, queue):
    queue.put(str(ensure_env(spec, cache_dir=cache).root))


def test_concurrent_processes_build_the_environment_once(old_model, tmp_path):
    cache = tmp_path / "fresh"
    spec = env_spec(old_model[0])
    queue = multiprocessing.get_context("spawn").Queue()
    procs = [multiprocessing.get_context("spawn").Process(target=_build_in_process, args=(spec, str(cache), queue))
             for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(300)
    roots = {queue.get(timeout=5) for _ in procs}
    assert len(roots) == 1 and len(builds_of(spec.key, cache)) == 1


def test_an_interrupted_build_is_redone_not_used(old_model, tmp_path):
    cache = tmp_path / "c"
    spec = env_spec(old_model[0])
    built = ensure_env(spec, cache_dir=cache)
    (built.root / MARKER).unlink()  # as if the build had died before finishing
    assert find_env(spec.key, cache) is None
    assert ensure_env(spec, cache_dir=cache).root == built.root and len(builds_of(spec.key, cache)) == 2


def test_a_failed_build_names_the_model_the_environment_and_the_log(tmp_path, env_cache):
    model = _model_with(tmp_path, "spark-models-no-such-package-anywhere==0.0.1\n")
    spec = env_spec(model)
    with pytest.raises(ModelEnvironmentError) as info:
        ensure_env(spec, model_uri="models:/broken/1", timeout=300)
    message = str(info.value)
    assert "models:/broken/1" in message and spec.key in message and str(env_cache) in message
    assert find_env(spec.key) is None and not (env_cache / "envs" / spec.key).exists()


def test_a_build_over_its_timeout_fails_and_leaves_nothing(tmp_path, env_cache):
    model = _model_with(tmp_path, "scikit-learn==1.4.2\nscipy==1.13.1\n")
    spec = env_spec(model)
    with pytest.raises(ModelEnvironmentError, match="timed out"):
        ensure_env(spec, timeout=0.05)
    assert not (env_cache / "envs" / spec.key).exists()


def test_archive_round_trip_on_another_cache(old_model, env_cache, tmp_path):
    built = ensure_env(env_spec(old_model[0]))
    archive = pack_env(built, tmp_path / "env.tar.gz")
    with pytest.raises(InvalidArgumentError, match="exists"):
        pack_env(built, archive)
    assert read_manifest(archive)["key"] == built.key
    unpacked = unpack_env(archive, cache_dir=tmp_path / "elsewhere")
    assert unpacked.root != built.root and unpacked.key == built.key
    out = subprocess.run([str(unpacked.python), "-c", "import sklearn, sys; print(sklearn.__version__, sys.prefix)"],
                         capture_output=True, text=True, check=True)
    assert out.stdout.split() == [OLD_SKLEARN, str(unpacked.root)]


def _rewritten(archive, target, **changes):
    """A copy of ``archive`` whose manifest has ``changes``."""
    with tarfile.open(archive) as src, tarfile.open(target, "w:gz", compresslevel=1) as out:
        for member in src:
            data = src.extractfile(member) if member.isfile() else None
            if member.name == MANIFEST:
                raw = json.dumps({**json.loads(data.read()), **changes}).encode()
                member.size, data = len(raw), io.BytesIO(raw)
            out.addfile(member, data)
    return target


@pytest.fixture(scope="module")
def small_archive(tmp_path_factory):
    """An archive of a small environment (numpy only besides the loader's packages)."""
    root = tmp_path_factory.mktemp("small-env")
    model = root / "m"
    model.mkdir()
    (model / "requirements.txt").write_text("numpy\n")
    built = ensure_env(env_spec(model), cache_dir=root / "cache")
    return pack_env(built, root / "small.tar.gz")


def test_an_archive_for_another_platform_or_python_is_refused_naming_both(small_archive, tmp_path):
    foreign = _rewritten(small_archive, tmp_path / "mac.tar.gz", platform="macosx-14.0-arm64")
    with pytest.raises(ModelEnvironmentError, match=f"'macosx-14.0-arm64'.*{machine_platform()}"):
        unpack_env(foreign, cache_dir=tmp_path / "c")
    old_python = _rewritten(small_archive, tmp_path / "py27.tar.gz", python="2.7")
    with pytest.raises(ModelEnvironmentError, match="Python 2.7; this machine has Python 3"):
        unpack_env(old_python, cache_dir=tmp_path / "c")
    assert not (tmp_path / "c" / "envs" / read_manifest(small_archive)["key"]).exists()


def test_an_archive_is_checked_before_anything_is_installed(small_archive, tmp_path):
    with pytest.raises(ModelEnvironmentError, match="does not have the content"):
        unpack_env(small_archive, cache_dir=tmp_path / "c", sha256="0" * 64)
    evil = tmp_path / "evil.tar.gz"
    with tarfile.open(small_archive) as src, tarfile.open(evil, "w:gz") as out:
        first = src.next()
        out.addfile(first, src.extractfile(first))
        escape = tarfile.TarInfo("env/../../escaped.txt")
        escape.size = 1
        out.addfile(escape, io.BytesIO(b"x"))
    with pytest.raises(MalformedModelError, match="unsafe archive entry"):
        unpack_env(evil, cache_dir=tmp_path / "c")
    assert not (tmp_path / "escaped.txt").exists()
    plain = tmp_path / "plain.tar.gz"
    with tarfile.open(plain, "w:gz") as out:
        out.add(__file__, arcname="x.py")
    with pytest.raises(MalformedModelError, match="not an environment archive"):
        unpack_env(plain, cache_dir=tmp_path / "c")


def test_build_env_writes_an_archive_to_a_path_or_an_fsspec_url(old_model, env_cache, tmp_path):
    import fsspec

    import spark_models

    out = spark_models.build_env(old_model[0], tmp_path / "env.tar.gz")
    assert read_manifest(tmp_path / "env.tar.gz")["key"] == env_spec(old_model[0]).key and out.endswith("env.tar.gz")
    with pytest.raises(InvalidArgumentError, match="exists"):
        spark_models.build_env(old_model[0], tmp_path / "env.tar.gz")
    spark_models.build_env(old_model[0], "memory://envs/env.tar.gz")
    assert fsspec.filesystem("memory").size("/envs/env.tar.gz") > 1_000_000


def test_mismatched_pins_are_listed_with_both_versions(old_model):
    mismatches = {name: (want, have) for name, want, have in requirement_mismatches(old_model[0])}
    import sklearn

    assert mismatches["scikit-learn"] == (OLD_SKLEARN, sklearn.__version__)


def test_virtualenv_builds_with_venv_and_pip_and_scores(tmp_path, env_cache):
    import pandas as pd

    import spark_models.pyfunc
    from spark_models.envs.provision import load_env_model

    class AddOne(spark_models.pyfunc.PythonModel):
        def predict(self, context, model_input, params=None):
            import sys

            return model_input["x"] + 1 + 0 * sys.version_info[0]

    path = tmp_path / "add-one"
    spark_models.pyfunc.save_model(str(path), python_model=AddOne())
    model = load_env_model(path, env_manager="virtualenv", timeouts={"build": 600})
    try:
        assert model.env.root.name == env_spec(path, "virtualenv").key
        assert (model.env.root / "bin" / "pip").exists()  # built by venv + pip, not uv
        out = model.predict(pd.DataFrame({"x": [1.0, 2.0]}))
        assert list(out) == [2.0, 3.0]
    finally:
        model.close()


def test_waiting_for_another_builder_is_bounded_by_the_build_timeout(old_model, tmp_path):
    from spark_models.envs.build import env_lock, env_paths

    spec = env_spec(old_model[0])
    target, _ = env_paths(spec.key, tmp_path)
    with env_lock(target, timeout=5, what="held by this test"):  # another builder, still at work
        with pytest.raises(ModelEnvironmentError, match=f"another process to build the uv environment {spec.key} "
                                                        rf"\(.*\) of model 'models:/m/1' \(log: .*{spec.key}.log\)"):
            ensure_env(spec, cache_dir=tmp_path, timeout=0.5, model_uri="models:/m/1")
