"""Build a model's environment once per machine: cached by its key, one builder at a time.

Concurrent processes (two executors, two Python workers) that need the same environment wait
on a file lock; the first builds it, the others find it complete. An environment counts as
built only once its marker file exists (written last), so a build that died half-way is
removed and redone, never used.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from spark_models.envs.cache import cache_root, subdir
from spark_models.envs.spec import EnvSpec, major_minor
from spark_models.exceptions import MissingDependencyError, ModelEnvironmentError
from spark_models.processes import log_tail

_logger = logging.getLogger(__name__)

MARKER = ".spark-models-env.json"
BUILDS_LOG = "builds.jsonl"  # one line per environment built on this machine (who, when, how long)


@dataclass(frozen=True)
class BuiltEnv:
    """A complete environment: its directory, its interpreter, its key and its build log."""

    root: Path
    key: str
    log_path: Path

    @property
    def python(self) -> Path:
        return self.root / "bin" / "python"


def env_paths(key: str, cache_dir: str | os.PathLike | None = None) -> tuple[Path, Path]:
    """(environment directory, log file) of ``key`` in the cache."""
    root = cache_root(cache_dir)
    return subdir(root, "envs") / key, subdir(root, "logs") / f"{key}.log"


def find_env(key: str, cache_dir: str | os.PathLike | None = None) -> BuiltEnv | None:
    """The complete environment ``key`` when this machine has it."""
    target, log = env_paths(key, cache_dir)
    return BuiltEnv(target, key, log) if (target / MARKER).is_file() and (target / "bin" / "python").exists() else None


@contextmanager
def env_lock(target: Path, *, timeout: float, what: str) -> Iterator[None]:
    """Hold ``<target>.lock`` exclusively (waiting at most ``timeout`` seconds for another builder)."""
    fd = os.open(f"{target}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise ModelEnvironmentError(f"Waited {timeout:g} s for another process to build {what} at "
                                                f"{target}; it still holds {target}.lock (raise the build timeout)") from None
                time.sleep(0.2)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def ensure_env(spec: EnvSpec, *, cache_dir: str | os.PathLike | None = None, timeout: float = 1800.0,
               model_uri: str = "") -> BuiltEnv:
    """The environment of ``spec`` on this machine, built now unless it already is."""
    found = find_env(spec.key, cache_dir)
    if found:
        return found
    target, log = env_paths(spec.key, cache_dir)
    with env_lock(target, timeout=timeout, what=f"the {spec.describe()} of model {model_uri!r} (log: {log})"):
        found = find_env(spec.key, cache_dir)
        if found:
            return found
        if target.exists():
            _logger.warning("Removing the incomplete environment %s (a build that did not finish)", target)
            shutil.rmtree(target)
        started = time.monotonic()
        _logger.info("Building the %s for %s at %s (log: %s)", spec.describe(), model_uri or "a model", target, log)
        try:
            _build(spec, target, log, deadline=started + timeout, model_uri=model_uri)
        except BaseException:
            shutil.rmtree(target, ignore_errors=True)
            raise
        seconds = time.monotonic() - started
        _write_marker(target, spec, seconds)
        _record_build(target.parent, spec, seconds)
        _logger.info("Built environment %s in %.1f s", spec.key, seconds)
    return BuiltEnv(target, spec.key, log)


def _write_marker(target: Path, spec: EnvSpec, seconds: float) -> None:
    info = {"key": spec.key, "manager": spec.manager, "python": spec.python, "platform": spec.platform,
            "requirements": list(spec.requirements), "build_seconds": round(seconds, 2)}
    tmp = target / f"{MARKER}.tmp"
    tmp.write_text(json.dumps(info, indent=1))
    os.replace(tmp, target / MARKER)


def _record_build(envs: Path, spec: EnvSpec, seconds: float) -> None:
    line = json.dumps({"key": spec.key, "pid": os.getpid(), "host": socket.gethostname(), "seconds": round(seconds, 2),
                       "time": time.time()})
    with open(envs / BUILDS_LOG, "a") as f:
        f.write(line + "\n")


def builds_of(key: str, cache_dir: str | os.PathLike | None = None) -> list[dict]:
    """Every recorded build of environment ``key`` on this machine (oldest first)."""
    path = subdir(cache_root(cache_dir), "envs") / BUILDS_LOG
    if not path.is_file():
        return []
    return [entry for entry in map(json.loads, path.read_text().splitlines()) if entry.get("key") == key]


def uv_binary() -> str:
    try:
        from uv import find_uv_bin

        return find_uv_bin()
    except (ImportError, FileNotFoundError):
        found = shutil.which("uv")
        if found:
            return found
    raise MissingDependencyError("env_manager='uv' needs the uv binary: pip install uv (or 'spark-models[env]')")


def conda_binary() -> str:
    found = os.environ.get("CONDA_EXE") or shutil.which("conda") or shutil.which("mamba")
    if not found:
        raise ModelEnvironmentError("env_manager='conda' needs a conda binary: none is on PATH and CONDA_EXE is not "
                                    "set; install conda, or use env_manager='uv' (python_env.yaml / requirements.txt)")
    return found


def local_interpreter(python: str) -> str | None:
    """An interpreter of Python ``python`` (major.minor) on this machine: this one, or a
    ``pythonX.Y`` on PATH that really is that version (shims may exist for versions that are not)."""
    wanted = major_minor(python)
    if wanted == "{}.{}".format(*sys.version_info[:2]):
        return getattr(sys, "_base_executable", None) or sys.executable
    found = shutil.which(f"python{wanted}")
    if found is None:
        return None
    try:
        out = subprocess.run([found, "-c", "import sys; print('%d.%d' % sys.version_info[:2], sys.executable)"],
                             capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return None
    version, _, executable = out.stdout.strip().partition(" ")
    return executable if out.returncode == 0 and version == wanted else None


def _build(spec: EnvSpec, target: Path, log: Path, *, deadline: float, model_uri: str) -> None:
    requirements = target.parent / f".{spec.key}.requirements.txt"
    requirements.write_text("\n".join(spec.requirements) + "\n")
    try:
        for step in _commands(spec, target, requirements):
            _run(step, log, deadline=deadline, spec=spec, model_uri=model_uri)
    finally:
        requirements.unlink(missing_ok=True)
        (target.parent / f".{spec.key}.conda.yaml").unlink(missing_ok=True)


def _commands(spec: EnvSpec, target: Path, requirements: Path) -> list[list[str]]:
    python = str(target / "bin" / "python")
    if spec.manager == "uv":
        uv = uv_binary()
        return [[uv, "venv", "--quiet", "--relocatable", "--python", spec.python, str(target)],
                [uv, "pip", "install", "--quiet", "--python", python, "-r", str(requirements)]]
    if spec.manager == "virtualenv":
        base = local_interpreter(spec.python)
        if base is None:
            raise ModelEnvironmentError(f"env_manager='virtualenv' needs Python {spec.python}, which this machine "
                                        "lacks; env_manager='uv' can fetch it")
        return [[base, "-m", "venv", str(target)],
                [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r", str(requirements)]]
    conda_file = target.parent / f".{spec.key}.conda.yaml"
    conda_file.write_text(spec.conda_yaml or "")
    return [[conda_binary(), "env", "create", "--quiet", "--prefix", str(target), "--file", str(conda_file)],
            [python, "-m", "pip", "install", "--quiet", "-r", str(requirements)]]


def _run(command: list[str], log: Path, *, deadline: float, spec: EnvSpec, model_uri: str) -> None:
    remaining = deadline - time.monotonic()
    where = f"for model {model_uri!r}, environment {spec.key}; log: {log}"
    if remaining <= 0:
        raise ModelEnvironmentError(f"Building the environment timed out (build timeout) {where}")
    with open(log, "ab") as out:
        out.write(f"$ {' '.join(command)}\n".encode())
        out.flush()
        try:
            done = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                  timeout=remaining, env=_build_environ())
        except subprocess.TimeoutExpired:
            raise ModelEnvironmentError(f"Building the environment timed out (build timeout) {where}") from None
        except FileNotFoundError as e:
            raise ModelEnvironmentError(f"Cannot run {command[0]!r} {where}: {e}") from None
    if done.returncode != 0:
        raise ModelEnvironmentError(f"Building the environment failed (exit {done.returncode}) {where}:\n"
                                    f"{log_tail(log)}")


def _build_environ() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env.setdefault("PIP_NO_INPUT", "1")
    return env
