"""``spark_udf(env_manager=...)``: the model's environment on the driver and on every executor.

The driver builds the environment (failing fast, and warming the cache local-mode workers
use), or ships an archive of it (``prebuilt_env_uri``, or ``ship_env=True`` when executors
cannot reach a package index). Each executor finds the environment in its machine's cache,
unpacks the shipped archive, or builds it once (a file lock makes concurrent workers wait for
one build). Each Python worker then keeps one scorer process in that environment.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional

from spark_models.envs.options import CACHE_ENV, Timeouts
from spark_models.envs.spec import EnvSpec
from spark_models.exceptions import InvalidArgumentError

_logger = logging.getLogger(__name__)

_SHIPPED_FILES: set = set()  # (session id, file path) already added to a session


@dataclass(frozen=True)
class EnvPlan:
    """Which environment the workers score in and how they get it (pickled into every task)."""

    manager: str
    key: str
    spec: Optional[EnvSpec]  # to build it where it is missing (None: only the archive has it)
    timeouts: Timeouts
    cache_dir: Optional[str]  # the driver's cache in local mode (same machine); else each executor's own
    archive: Optional[str] = None  # SparkFiles name of a shipped environment archive
    archive_sha256: Optional[str] = None


def ship_file(spark: Any, path: Path) -> str:
    """Send ``path`` to the executors once per session; its SparkFiles name."""
    from spark_models.sessions import is_connect

    session = spark.session_id if is_connect(spark) else spark.sparkContext.applicationId
    if (session, str(path)) not in _SHIPPED_FILES:
        if is_connect(spark):
            spark.addArtifacts(str(path), file=True)
        else:
            spark.sparkContext.addFile(str(path))
        _SHIPPED_FILES.add((session, str(path)))
    return path.name


def _packed(built: Any, cache_dir: Optional[str]) -> Path:
    """The archive of a built environment, packed once per environment key."""
    from spark_models.envs.archive import pack_env
    from spark_models.envs.cache import cache_root, subdir

    out = subdir(cache_root(cache_dir), "archives") / f"spark-models-env-{built.key}.tar.gz"
    return out if out.is_file() else pack_env(built, out)


def _prebuilt(spark: Any, local_dir: Path, uri: str, *, cache_dir: Optional[str], timeouts: Timeouts) -> EnvPlan:
    from spark_models.envs.archive import check_compatible, file_sha256, read_manifest
    from spark_models.envs.provision import fetch_archive
    from spark_models.envs.spec import env_spec
    from spark_models.sessions import is_local_master

    archive = fetch_archive(uri, cache_dir=cache_dir)
    manifest = read_manifest(archive)
    if is_local_master(spark):  # executors check on their machine; here it is the same one
        check_compatible(manifest, uri)
    manager = str(manifest.get("manager") or "uv")
    try:
        declared = env_spec(local_dir, manager).key
    except Exception:  # a model without environment files can still use a prebuilt one
        declared = None
    if declared != manifest.get("key"):
        _logger.warning("The environment archive %s (environment %s) was not built from this model's requirements "
                        "(environment %s); scoring in it anyway", uri, manifest.get("key"), declared)
    return EnvPlan(manager, str(manifest["key"]), None, timeouts, cache_dir, ship_file(spark, archive),
                   file_sha256(archive))


def plan_environment(spark: Any, local_dir: Path, env_manager: str, *, model_uri: str,
                     prebuilt_env_uri: Optional[str], ship_env: bool,
                     timeouts: Timeouts | Mapping[str, Any] | None) -> Optional[EnvPlan]:
    """The EnvPlan for ``env_manager`` (None for ``"local"``), with the environment ready on the driver."""
    from spark_models.envs.options import check_env_manager

    from spark_models.envs.cache import cache_root
    from spark_models.sessions import is_local_master

    limits = Timeouts.of(timeouts)
    cache_dir = str(cache_root()) if is_local_master(spark) else None
    if check_env_manager(env_manager) == "local":
        if prebuilt_env_uri is not None or ship_env:
            raise InvalidArgumentError("prebuilt_env_uri and ship_env need env_manager 'uv', 'virtualenv' or 'conda'")
        from spark_models.envs.spec import warn_requirement_mismatches

        warn_requirement_mismatches(local_dir, model_uri=model_uri)
        return None
    if prebuilt_env_uri is not None:
        return _prebuilt(spark, local_dir, os.fspath(prebuilt_env_uri), cache_dir=cache_dir, timeouts=limits)
    from spark_models.envs.provision import prepared_env

    spec, built = prepared_env(local_dir, env_manager, model_uri=model_uri, cache_dir=cache_dir, timeouts=limits)
    if not ship_env:
        return EnvPlan(env_manager, built.key, spec, limits, cache_dir)
    from spark_models.envs.archive import file_sha256

    archive = _packed(built, cache_dir)
    return EnvPlan(env_manager, built.key, spec, limits, cache_dir, ship_file(spark, archive), file_sha256(archive))


def worker_env(env: EnvPlan, model_uri: str) -> Any:
    """The plan's environment on this executor: cached, unpacked from the shipped archive, or built."""
    from spark_models.envs.build import ensure_env, find_env

    cache_dir = env.cache_dir or os.environ.get(CACHE_ENV)
    found = find_env(env.key, cache_dir)
    if found:
        return found
    if env.archive:
        from pyspark import SparkFiles

        from spark_models.envs.archive import unpack_env

        return unpack_env(SparkFiles.get(env.archive), cache_dir=cache_dir, sha256=env.archive_sha256,
                          timeout=env.timeouts.build)
    return ensure_env(env.spec, cache_dir=cache_dir, timeout=env.timeouts.build, model_uri=model_uri)


def env_scorer(plan: Any, model_dir: Path) -> Any:
    """This Python worker's scorer process for ``plan`` (started once, kept across tasks)."""
    from spark_models.envs.scorer import shared_scorer

    built = worker_env(plan.env, plan.model_uri)
    log = built.log_path.with_name(f"{built.key}-scorer-{os.getpid()}.log")
    return shared_scorer(built.python, model_dir, model_uri=plan.model_uri, env_key=built.key, log_path=log,
                         allow_code=plan.allow_code, timeouts=plan.env.timeouts,
                         model_config=dict(plan.model_config) if plan.model_config else None)
