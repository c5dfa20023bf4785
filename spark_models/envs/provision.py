"""Getting a model's environment ready, and a model object that scores in it (no Spark here).

:func:`build_env` packs a model's environment into an archive for :func:`udf.spark_udf`'s
``prebuilt_env_uri``; :func:`load_env_model` is what ``predict``/``serve --env-manager`` score with.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Any, Mapping

from spark_models.envs.archive import file_sha256, pack_env, unpack_env
from spark_models.envs.build import BuiltEnv, ensure_env
from spark_models.envs.cache import cache_root, subdir
from spark_models.envs.options import Timeouts, check_env_manager
from spark_models.envs.spec import EnvSpec, env_spec
from spark_models.exceptions import InvalidArgumentError

_logger = logging.getLogger(__name__)


def _is_remote(uri: str) -> bool:
    return "://" in uri and not uri.startswith("file://")


def fetch_archive(uri: str | os.PathLike, *, cache_dir: str | os.PathLike | None = None) -> Path:
    """A local copy of the archive at ``uri`` (a path or any fsspec URL: ``s3://``, ``gs://``, ``https://`` …)."""
    text = os.fspath(uri)
    if not _is_remote(text):
        path = Path(text.removeprefix("file://"))
        if not path.is_file():
            raise InvalidArgumentError(f"prebuilt_env_uri {text!r}: no such file")
        return path
    import fsspec

    root = subdir(cache_root(cache_dir), "archives")
    fd, tmp = tempfile.mkstemp(prefix=".download-", suffix=".tar.gz", dir=root)
    try:
        with os.fdopen(fd, "wb") as out, fsspec.open(text, "rb") as src:
            for chunk in iter(lambda: src.read(1 << 22), b""):
                out.write(chunk)
        final = root / f"{file_sha256(Path(tmp))[:24]}.tar.gz"
        os.replace(tmp, final)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _logger.info("Downloaded %s to %s", text, final)
    return final


def prepared_env(model_dir: str | os.PathLike, env_manager: str, *, model_uri: str = "",
                 prebuilt_env_uri: str | None = None, cache_dir: str | os.PathLike | None = None,
                 timeouts: Timeouts | Mapping[str, Any] | None = None) -> tuple[EnvSpec | None, BuiltEnv]:
    """(the model's spec, its environment on this machine): unpacked from ``prebuilt_env_uri``, or
    built from the model's requirements once per machine (found in the cache afterwards)."""
    limits = Timeouts.of(timeouts)
    check_env_manager(env_manager)
    if prebuilt_env_uri is not None:
        built = unpack_env(fetch_archive(prebuilt_env_uri, cache_dir=cache_dir), cache_dir=cache_dir, timeout=limits.build)
        return None, built
    spec = env_spec(model_dir, env_manager)
    return spec, ensure_env(spec, cache_dir=cache_dir, timeout=limits.build, model_uri=model_uri or os.fspath(model_dir))


def build_env(model_uri: str | os.PathLike, out: str | os.PathLike, *, env_manager: str = "uv",
              overwrite: bool = False, cache_dir: str | os.PathLike | None = None,
              timeouts: Timeouts | Mapping[str, Any] | None = None) -> str:
    """Pack the environment ``model_uri`` declares into the archive ``out`` (a path or fsspec URL); returns ``out``.

    The archive holds the environment built on this machine, for this platform and Python version;
    ``spark_udf(..., prebuilt_env_uri=out)`` ships it to executors that cannot reach a package index.
    An existing ``out`` is refused unless ``overwrite``.
    """
    from spark_models.tracking.resolve import resolve_model_source

    if check_env_manager(env_manager) == "local":
        raise InvalidArgumentError("build_env needs env_manager 'uv', 'virtualenv' or 'conda'")
    source = resolve_model_source(model_uri)
    _, built = prepared_env(source.local_dir, env_manager, model_uri=os.fspath(model_uri), cache_dir=cache_dir,
                            timeouts=timeouts)
    target = os.fspath(out)
    if not _is_remote(target):
        pack_env(built, target.removeprefix("file://"), overwrite=overwrite)
        return target
    import fsspec

    fs, path = fsspec.core.url_to_fs(target)
    if fs.exists(path) and not overwrite:
        raise InvalidArgumentError(f"{target} exists; pass overwrite=True to replace it")
    with tempfile.TemporaryDirectory() as tmp:
        local = pack_env(built, Path(tmp) / "env.tar.gz")
        fs.put_file(str(local), path)
    return target


class EnvModel:
    """A pyfunc model scored by a scorer process in the model's own environment.

    ``metadata`` and ``signature`` are read here; ``predict`` sends the input to the scorer process
    (Arrow IPC over pipes), which enforces the signature and runs the model.
    """

    def __init__(self, model_dir: Path, scorer: Any, env: BuiltEnv):
        from spark_models.mlmodel import Model

        self.metadata = Model.load(model_dir)
        self.env, self._scorer = env, scorer

    @property
    def signature(self) -> Any:
        return self.metadata.signature

    def predict(self, data: Any, params: dict | None = None) -> Any:
        return self._scorer.predict(data, params)

    def close(self) -> None:
        self._scorer.close()

    def __repr__(self) -> str:
        return f"EnvModel({self._scorer!r}, env={self.env.key})"


def load_env_model(model_uri: str | os.PathLike, *, env_manager: str = "uv", prebuilt_env_uri: str | None = None,
                   allow_code: bool | None = None, model_config: dict | None = None,
                   timeouts: Timeouts | Mapping[str, Any] | None = None,
                   cache_dir: str | os.PathLike | None = None) -> EnvModel:
    """``model_uri`` loaded in its own environment (built or unpacked first); the scorer process starts now."""
    from spark_models.envs.scorer import EnvScorer
    from spark_models.flavors.trust import resolve_allow_code
    from spark_models.tracking.resolve import resolve_model_source

    limits = Timeouts.of(timeouts)
    source = resolve_model_source(model_uri)
    _, built = prepared_env(source.local_dir, env_manager, model_uri=os.fspath(model_uri),
                            prebuilt_env_uri=prebuilt_env_uri, cache_dir=cache_dir, timeouts=limits)
    log = built.log_path.with_name(f"{built.key}-scorer-{os.getpid()}.log")
    scorer = EnvScorer(built.python, source.local_dir, model_uri=os.fspath(model_uri), env_key=built.key,
                       log_path=log, allow_code=resolve_allow_code(allow_code), model_config=model_config,
                       timeouts=limits)
    scorer.start()
    return EnvModel(Path(source.local_dir), scorer, built)
