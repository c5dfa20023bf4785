"""A Docker build context that serves one model: ``spark-models build-docker``.

The context holds the model, its requirements (minus MLflow, which serving does not need,
and spark-models itself, installed separately), spark-models (its source when it runs from
a checkout, else a pinned PyPI requirement), the entry script and a Dockerfile. The image
follows SageMaker's inference container contract (:mod:`spark_models.serving.sagemaker_entrypoint`):
``docker run IMAGE serve`` (also the default command) serves ``/opt/ml/model`` on port 8080, and
``docker run IMAGE CMD...`` runs a command. Java is installed only when the model scores through
Spark (a spark flavor without an MLeap bundle), unless told otherwise.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
from pathlib import Path

from spark_models.environment import read_requirements, requirement_name
from spark_models.exceptions import InvalidArgumentError
from spark_models.flavors.opening import open_model
from spark_models.serving.sagemaker_entrypoint import MODEL_DIR, PORT

_logger = logging.getLogger(__name__)

SOURCE_DIR = "spark-models-src"
REQUIREMENTS = "model-requirements.txt"
ENTRYPOINT = "entrypoint.py"
_NOT_INSTALLED = {"mlflow", "mlflow-skinny", "spark-models"}
_SOURCE_ITEMS = ("pyproject.toml", "README.md", "spark_models", "udf", "mleap_bridge")
_IMAGE_NAME = re.compile(r"^[a-z0-9]+([._-][a-z0-9]+)*(/[a-z0-9]+([._-][a-z0-9]+)*)*(:[\w][\w.-]{0,127})?$")


def build_context(model_uri: str, context_dir: str | Path, *, install_java: bool | None = None) -> Path:
    """Write the build context for ``model_uri`` into ``context_dir`` (which must be empty or absent)."""
    target = Path(context_dir)
    if target.exists() and any(target.iterdir()):
        raise InvalidArgumentError(f"Build context directory {str(target)!r} is not empty")
    context = open_model(model_uri)
    source, meta = context.model_dir, context.model
    target.mkdir(parents=True, exist_ok=True)
    shutil.copytree(source, target / "model", ignore=shutil.ignore_patterns("__pycache__"))
    kept, dropped = _split_requirements(read_requirements(source))
    header = f"# From the model's requirements.txt; not installed here: {', '.join(dropped) or 'nothing'}\n"
    (target / REQUIREMENTS).write_text(header + "".join(f"{r}\n" for r in kept))
    shutil.copy(Path(__file__).with_name("sagemaker_entrypoint.py"), target / ENTRYPOINT)
    install_line = _spark_models_install(target)
    java = _needs_java(meta.flavors) if install_java is None else install_java
    python = _python_minor(meta.flavors.get("python_function", {}).get("python_version"))
    (target / "Dockerfile").write_text(dockerfile(python, install_line, java=java))
    return target


def dockerfile(python: str, spark_models_install: str, *, java: bool) -> str:
    """The Dockerfile text."""
    java_step = (
        "RUN apt-get update && apt-get install -y --no-install-recommends openjdk-17-jre-headless \\\n"
        "    && rm -rf /var/lib/apt/lists/*\n"
        "ENV PYSPARK_PYTHON=python PYSPARK_DRIVER_PYTHON=python\n"
        if java
        else ""
    )
    return (
        f"FROM python:{python}-slim\n"
        f"{java_step}"
        "ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 WORKERS=1\n"
        "WORKDIR /opt/ml\n"
        f"{spark_models_install}"
        f"COPY {REQUIREMENTS} /opt/ml/{REQUIREMENTS}\n"
        f"RUN pip install -r /opt/ml/{REQUIREMENTS}\n"
        f"COPY {ENTRYPOINT} /opt/ml/{ENTRYPOINT}\n"
        f"COPY model {MODEL_DIR}\n"
        f"EXPOSE {PORT}\n"
        f'ENTRYPOINT ["python", "/opt/ml/{ENTRYPOINT}"]\n'
        'CMD ["serve"]\n'
    )


def build_command(context_dir: str | Path, image_name: str) -> list[str]:
    """The ``docker build`` command for the context."""
    if not _IMAGE_NAME.match(image_name):
        raise InvalidArgumentError(f"{image_name!r} is not a valid Docker image name (lowercase, e.g. my-model:1.0)")
    return ["docker", "build", "-t", image_name, str(context_dir)]


def docker_engine_available() -> bool:
    """Whether a Docker engine answers (the client alone is not enough)."""
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _split_requirements(lines: list[str]) -> tuple[list[str], list[str]]:
    kept, dropped = [], []
    for line in lines:
        (dropped if requirement_name(line) in _NOT_INSTALLED else kept).append(line)
    return kept, dropped


def _spark_models_install(target: Path) -> str:
    """Dockerfile lines installing spark-models: from its source when we run from one."""
    from spark_models import __version__

    root = Path(__file__).resolve().parents[2]
    if all((root / item).exists() for item in _SOURCE_ITEMS):
        dest = target / SOURCE_DIR
        dest.mkdir()
        for item in _SOURCE_ITEMS:
            src = root / item
            if src.is_dir():
                shutil.copytree(src, dest / item, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                shutil.copy2(src, dest / item)
        return f"COPY {SOURCE_DIR} /opt/{SOURCE_DIR}\nRUN pip install '/opt/{SOURCE_DIR}[serve]'\n"
    return f"RUN pip install 'spark-models[serve]=={__version__}'\n"


def _needs_java(flavors: dict) -> bool:
    return "spark" in flavors and "mleap" not in flavors


def _python_minor(version: str | None) -> str:
    import sys

    if version and re.match(r"^\d+\.\d+", version):
        return ".".join(version.split(".")[:2])
    return "{}.{}".format(*sys.version_info[:2])
