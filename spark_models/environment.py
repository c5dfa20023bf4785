"""conda.yaml, requirements.txt and python_env.yaml, in the forms MLflow writes.

Each flavor passes its default requirements (pinned to the installed versions); the
user's ``conda_env``, ``pip_requirements`` or ``extra_pip_requirements`` replace or
extend them, exactly one of the three at a time, as in MLflow.
"""

from __future__ import annotations

import functools
import os
import re
import sys
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable, Sequence

import yaml

from spark_models.exceptions import InvalidArgumentError, MalformedModelError

CONDA_ENV_FILE = "conda.yaml"
REQUIREMENTS_FILE = "requirements.txt"
PYTHON_ENV_FILE = "python_env.yaml"

_NAME_SPLIT = re.compile(r"[\s<>=!~;\[@(]")


def python_version() -> str:
    return "{}.{}.{}".format(*sys.version_info[:3])


def installed_version(dist: str) -> str | None:
    """The installed version of a distribution, without a local label (``+cpu``)."""
    try:
        return metadata.version(dist).split("+")[0]
    except metadata.PackageNotFoundError:
        return None


def pinned(dist: str) -> str:
    """``dist==<installed version>``, or the bare name when it is not installed."""
    version = installed_version(dist)
    return f"{dist}=={version}" if version else dist


def default_requirements(*dists: str) -> list[str]:
    """spark-models itself (it holds the loaders) plus the given distributions, pinned."""
    return [pinned("spark-models"), *(pinned(d) for d in dists)]


def requirement_name(line: str) -> str:
    """The distribution name of a requirement line, normalized (PEP 503)."""
    name = _NAME_SPLIT.split(line.strip(), maxsplit=1)[0]
    return re.sub(r"[-_.]+", "-", name).lower()


@functools.lru_cache(maxsize=None)
def providing_distribution(module: str, preferred: str) -> str:
    """The installed distribution that provides import name ``module``: ``preferred`` when it is
    installed (or nothing is), else the one that is (``tensorflow-cpu``, ``xgboost-cpu``)."""
    names = metadata.packages_distributions().get(module) or []
    if not names or requirement_name(preferred) in {requirement_name(n) for n in names}:
        return preferred
    return metadata.metadata(min(names))["Name"]


def _read_requirement_lines(source: str | os.PathLike | Sequence[str]) -> list[str]:
    """A list of requirement strings, or a path (str/PathLike) to a requirements file."""
    if not isinstance(source, (str, os.PathLike)):
        return [str(r) for r in source]
    path = Path(source)
    if not path.is_file():
        raise InvalidArgumentError(f"Requirements file {str(path)!r} does not exist")
    lines = (ln.strip() for ln in path.read_text().splitlines())
    return [ln for ln in lines if ln and not ln.startswith("#")]


def _conda_env_dict(conda_env: dict[str, Any] | str | os.PathLike) -> dict[str, Any]:
    if isinstance(conda_env, dict):
        return conda_env
    path = Path(conda_env)
    if not path.is_file():
        raise InvalidArgumentError(f"conda_env file {str(path)!r} does not exist")
    env = yaml.safe_load(path.read_text())
    if not isinstance(env, dict):
        raise InvalidArgumentError(f"conda_env file {str(path)!r} is not a YAML mapping")
    return env


def pip_requirements_of(conda_env: dict[str, Any]) -> list[str]:
    """The pip section of a conda environment (``pip:`` inside ``dependencies``)."""
    reqs: list[str] = []
    for dep in conda_env.get("dependencies") or []:
        if isinstance(dep, dict) and "pip" in dep:
            reqs.extend(str(r) for r in dep["pip"] or [])
    # The reference doc's example puts "pip" beside "dependencies"; accept that too.
    reqs.extend(str(r) for r in conda_env.get("pip") or [])
    return reqs


def _conda_python(conda_env: dict[str, Any]) -> str | None:
    for dep in conda_env.get("dependencies") or []:
        if isinstance(dep, str) and re.match(r"python\s*[=<>]", dep):
            return re.split(r"[=<>]+", dep, maxsplit=1)[1].strip()
    return None


def make_conda_env(pip_requirements: Iterable[str], python: str | None = None) -> dict[str, Any]:
    """A conda environment in MLflow's layout."""
    pip_version = installed_version("pip")
    return {
        "channels": ["conda-forge"],
        "dependencies": [
            f"python={python or python_version()}",
            f"pip<={pip_version}" if pip_version else "pip",
            {"pip": list(pip_requirements)},
        ],
        "name": "mlflow-env",
    }


def make_python_env(python: str | None = None) -> dict[str, Any]:
    build = [pinned("pip"), pinned("setuptools"), pinned("wheel")]
    return {"python": python or python_version(), "build_dependencies": build, "dependencies": ["-r requirements.txt"]}


def resolve_environment(
    default_pip: Sequence[str],
    conda_env: dict[str, Any] | str | os.PathLike | None = None,
    pip_requirements: str | os.PathLike | Sequence[str] | None = None,
    extra_pip_requirements: str | os.PathLike | Sequence[str] | None = None,
) -> tuple[dict[str, Any], list[str], str]:
    """(conda env, pip requirements, python version) from defaults and user overrides."""
    given = [n for n, v in (("conda_env", conda_env), ("pip_requirements", pip_requirements), ("extra_pip_requirements", extra_pip_requirements)) if v is not None]
    if len(given) > 1:
        raise InvalidArgumentError(f"Pass only one of conda_env, pip_requirements, extra_pip_requirements; got {given}")
    if conda_env is not None:
        env = _conda_env_dict(conda_env)
        python = _conda_python(env) or python_version()
        return env, pip_requirements_of(env), python
    if pip_requirements is not None:
        reqs = _read_requirement_lines(pip_requirements)
    else:
        reqs = list(default_pip)
        extras = _read_requirement_lines(extra_pip_requirements) if extra_pip_requirements is not None else []
        extra_names = {requirement_name(r) for r in extras}
        reqs = [r for r in reqs if requirement_name(r) not in extra_names] + extras
    return make_conda_env(reqs), reqs, python_version()


def write_environment(
    model_dir: str | os.PathLike,
    default_pip: Sequence[str],
    conda_env: dict[str, Any] | str | os.PathLike | None = None,
    pip_requirements: str | os.PathLike | Sequence[str] | None = None,
    extra_pip_requirements: str | os.PathLike | Sequence[str] | None = None,
) -> dict[str, str]:
    """Write the three environment files; returns the python_function ``env`` entry."""
    env, reqs, python = resolve_environment(default_pip, conda_env, pip_requirements, extra_pip_requirements)
    root = Path(model_dir)
    (root / CONDA_ENV_FILE).write_text(yaml.safe_dump(env, default_flow_style=False))
    (root / REQUIREMENTS_FILE).write_text("\n".join(reqs))
    (root / PYTHON_ENV_FILE).write_text(yaml.safe_dump(make_python_env(python), default_flow_style=False, sort_keys=False))
    return {"conda": CONDA_ENV_FILE, "virtualenv": PYTHON_ENV_FILE}


def read_requirements(model_dir: str | os.PathLike) -> list[str]:
    """The model's requirements.txt lines (empty when it has none)."""
    path = Path(model_dir) / REQUIREMENTS_FILE
    if not path.is_file():
        return []
    return _read_requirement_lines(path)


def read_python_env(model_dir: str | os.PathLike) -> dict[str, Any] | None:
    path = Path(model_dir) / PYTHON_ENV_FILE
    if not path.is_file():
        return None
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise MalformedModelError(f"{path}: malformed YAML: {e}") from None
