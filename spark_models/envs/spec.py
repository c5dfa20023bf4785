"""What a model's environment is: its Python version and requirements, and the hash that names it."""

from __future__ import annotations

import hashlib
import json
import logging
import platform
import re
import sysconfig
from dataclasses import dataclass
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from spark_models.environment import (
    CONDA_ENV_FILE,
    PYTHON_ENV_FILE,
    REQUIREMENTS_FILE,
    installed_version,
    pip_requirements_of,
    python_version,
    read_python_env,
    requirement_name,
)
from spark_models.envs.options import check_env_manager
from spark_models.exceptions import InvalidArgumentError, MalformedModelError

_logger = logging.getLogger(__name__)

SPEC_FORMAT = 1  # bump when the way an environment is built changes: every key changes with it
# Requirements a scorer process does not need: our own code is copied in, and MLflow is never imported there.
_PROVIDED = {"spark-models", "mlflow", "mlflow-skinny", "mlflow-tracing"}
# What our loader imports in the scorer process (the rest of spark-models' dependencies is driver-side).
_WORKER_DEPENDENCIES = ("pandas", "pyarrow", "numpy", "pyyaml", "cloudpickle", "fsspec")


@dataclass(frozen=True)
class EnvSpec:
    """A model's environment: ``python`` (major.minor), pip ``requirements`` and, for conda, the
    ``conda.yaml`` text. ``key`` hashes them with the manager, the platform and :data:`SPEC_FORMAT`."""

    manager: str
    python: str
    requirements: tuple[str, ...]
    conda_yaml: str | None
    platform: str
    key: str

    def describe(self) -> str:
        return f"{self.manager} environment {self.key} (Python {self.python}, {len(self.requirements)} requirements)"


def machine_platform() -> str:
    """This machine's platform tag as environments are compatible by: OS, CPU and C library."""
    libc, version = platform.libc_ver()
    return f"{sysconfig.get_platform()}-{libc}{version}" if libc else sysconfig.get_platform()


def major_minor(version: str) -> str:
    parts = str(version).strip().split(".")
    if len(parts) < 2 or not all(p.isdigit() for p in parts[:2]):
        raise MalformedModelError(f"Python version {version!r} is not of the form X.Y[.Z]")
    return ".".join(parts[:2])


@lru_cache(maxsize=1)
def worker_dependencies() -> tuple[str, ...]:
    """spark-models' own requirements of the packages its loader imports, with their version ranges."""
    try:
        declared = metadata.requires("spark-models") or []
    except metadata.PackageNotFoundError:
        declared = []
    ranges = {requirement_name(r): r.split(";")[0].strip() for r in declared if "extra ==" not in r}
    return tuple(ranges.get(name, name) for name in _WORKER_DEPENDENCIES)


def _inside(model_dir: Path, name: str, what: str) -> Path:
    path = (model_dir / name).resolve()
    if not path.is_relative_to(model_dir.resolve()):
        raise MalformedModelError(f"{model_dir}: {what} {name!r} points outside the model directory")
    return path


def _requirement_lines(model_dir: Path, path: Path, seen: frozenset = frozenset()) -> list[str]:
    """The lines of a requirements file, with ``-r`` files inlined and local paths made absolute."""
    if path in seen:
        raise MalformedModelError(f"{model_dir}: requirements file {path.name!r} includes itself")
    if not path.is_file():
        raise MalformedModelError(f"{model_dir}: requirements file {path.name!r} does not exist")
    lines: list[str] = []
    for raw in path.read_text().splitlines():
        line = raw.split(" #")[0].strip()
        if not line or line.startswith("#"):
            continue
        included = re.match(r"^(-r|--requirement)[\s=]+(\S+)$", line)
        if included:
            lines += _requirement_lines(model_dir, _inside(model_dir, included.group(2), "requirements file"),
                                        seen | {path})
        elif line.startswith((".", "/")) or line.endswith(".whl"):  # a wheel or directory shipped with the model
            lines.append(str(_inside(model_dir, line, "requirement")))
        else:
            lines.append(line)
    return lines


def _declared(model_dir: Path, manager: str) -> tuple[str, list[str], str | None]:
    """(python version, requirement lines, conda.yaml text) as the model declares them."""
    conda_path = model_dir / CONDA_ENV_FILE
    conda_text = conda_path.read_text() if conda_path.is_file() else None
    if manager == "conda":
        if conda_text is None:
            raise MalformedModelError(f"{model_dir}: env_manager='conda' needs {CONDA_ENV_FILE}, which the model lacks")
        conda = yaml.safe_load(conda_text) or {}
        python = next((re.split(r"[=<>]+", d, maxsplit=1)[1] for d in conda.get("dependencies") or []
                       if isinstance(d, str) and re.match(r"python\s*[=<>]", d)), python_version())
        return python, pip_requirements_of(conda), conda_text
    python_env = read_python_env(model_dir)
    if python_env is not None:
        if not isinstance(python_env, dict):
            raise MalformedModelError(f"{model_dir}/{PYTHON_ENV_FILE} is not a YAML mapping")
        lines: list[str] = []
        for dep in python_env.get("dependencies") or []:
            included = re.match(r"^(-r|--requirement)[\s=]+(\S+)$", str(dep).strip())
            if included:
                lines += _requirement_lines(model_dir, _inside(model_dir, included.group(2), "requirements file"))
            elif str(dep).strip():
                lines.append(str(dep).strip())
        return str(python_env.get("python") or python_version()), lines, None
    if (model_dir / REQUIREMENTS_FILE).is_file():
        return python_version(), _requirement_lines(model_dir, model_dir / REQUIREMENTS_FILE), None
    if conda_text is not None:
        conda = yaml.safe_load(conda_text) or {}
        return python_version(), pip_requirements_of(conda), None
    raise MalformedModelError(f"{model_dir}: the model has none of {PYTHON_ENV_FILE}, {REQUIREMENTS_FILE}, "
                              f"{CONDA_ENV_FILE}; use env_manager='local'")


def env_spec(model_dir: str | Path, manager: str = "uv") -> EnvSpec:
    """The environment ``model_dir`` declares, for ``manager`` (``uv``, ``virtualenv`` or ``conda``)."""
    if check_env_manager(manager) == "local":
        raise InvalidArgumentError("env_manager='local' uses the current environment; it has no spec")
    root = Path(model_dir)
    python, lines, conda_text = _declared(root, manager)
    dropped = [r for r in lines if requirement_name(r) in _PROVIDED]
    if dropped:
        _logger.info("Not installing %s in the model's environment: spark-models brings its own loader", dropped)
    kept = [r for r in lines if requirement_name(r) not in _PROVIDED]
    named = {requirement_name(r) for r in kept}
    requirements = tuple(kept + [d for d in worker_dependencies() if requirement_name(d) not in named])
    python = major_minor(python)
    platform_tag = machine_platform()
    payload = json.dumps([SPEC_FORMAT, manager, python, requirements, conda_text, platform_tag])
    key = hashlib.sha256(payload.encode()).hexdigest()[:16]
    return EnvSpec(manager, python, requirements, conda_text, platform_tag, key)


def requirement_mismatches(model_dir: str | Path) -> list[tuple[str, str, str | None]]:
    """(name, the model's pinned version, the installed version or None) for each ``==`` pin the
    current environment does not satisfy (spark-models and MLflow are not compared)."""
    found = []
    root = Path(model_dir)
    try:
        _, lines, _ = _declared(root, "uv")
    except MalformedModelError:
        return []
    for line in lines:
        pin = re.match(r"^([A-Za-z0-9_.\-]+)(\[[^\]]*\])?\s*==\s*([^\s;,]+)", line)
        if not pin or requirement_name(line) in _PROVIDED:
            continue
        installed = installed_version(pin.group(1))
        if installed != pin.group(3).split("+")[0]:
            found.append((pin.group(1), pin.group(3), installed))
    return found


def warn_requirement_mismatches(model_dir: str | Path, *, model_uri: Any = None) -> None:
    """Log a warning naming each of the model's pins the current environment differs from."""
    mismatches = requirement_mismatches(model_dir)
    if mismatches:
        listed = ", ".join(f"{name} {want} (installed: {have or 'not installed'})" for name, want, have in mismatches)
        _logger.warning("Model %s was saved with %s; env_manager='uv' scores it in its own environment",
                        model_uri or model_dir, listed)
