"""The entry point of an image written by ``spark-models build-docker``: SageMaker's container contract.

SageMaker starts an inference container as ``docker run IMAGE serve``. ``serve`` (or no
argument) replaces this process with ``spark-models serve`` for the model in ``/opt/ml/model``
(``$SPARK_MODELS_MODEL_DIR`` to serve another) on ``0.0.0.0:8080`` (``$SAGEMAKER_BIND_TO_PORT``
when SageMaker sets it) with ``$WORKERS`` workers; arguments after ``serve`` are passed on to it.
The server keeps this process's PID (PID 1 in the container), so it gets SIGTERM directly.
Any other arguments are run as a command, so ``docker run -it IMAGE bash`` works.

The build context holds a copy of this file as ``entrypoint.py``; the image runs it with
``python /opt/ml/entrypoint.py``.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import sysconfig
from pathlib import Path
from typing import Mapping, Sequence

from spark_models.exceptions import InvalidArgumentError, MissingDependencyError, ModelNotFoundError, SparkModelsError

_logger = logging.getLogger("spark_models.entrypoint")

MODEL_DIR = "/opt/ml/model"
MODEL_DIR_ENV = "SPARK_MODELS_MODEL_DIR"
PORT = 8080
PORT_ENV = "SAGEMAKER_BIND_TO_PORT"
WORKERS_ENV = "WORKERS"


def serve_command(environ: Mapping[str, str], extra: Sequence[str] = ()) -> list[str]:
    """The ``spark-models serve`` command line for this environment (checked, not run)."""
    model_dir = Path(environ.get(MODEL_DIR_ENV) or MODEL_DIR)
    if not (model_dir / "MLmodel").is_file():
        raise ModelNotFoundError(
            f"No model to serve in {str(model_dir)!r}: it has no MLmodel file (SageMaker puts the model in "
            f"{MODEL_DIR}; set {MODEL_DIR_ENV} to serve another directory)"
        )
    port = _positive_int(environ, PORT_ENV, PORT, upper=65535)
    workers = _positive_int(environ, WORKERS_ENV, 1)
    return [_spark_models_executable(), "serve", "-m", str(model_dir), "-h", "0.0.0.0", "-p", str(port),
            "-w", str(workers), *extra]


def main(argv: Sequence[str] | None = None) -> int:
    """Serve (no argument or ``serve ...``) or run the given command; returns only on an error."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    command = list(sys.argv[1:] if argv is None else argv)
    if not command or command[0] == "serve":
        try:
            command = serve_command(os.environ, command[1:])
        except SparkModelsError as e:
            _logger.error("%s", e)
            return 1
        _logger.info("Running: %s", " ".join(command))
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execvp(command[0], command)
    except OSError as e:  # the command does not exist or cannot be run
        _logger.error("Cannot run %r: %s", command[0], e.strerror or e)
        return 127 if isinstance(e, FileNotFoundError) else 126


def _spark_models_executable() -> str:
    """The ``spark-models`` script installed with this interpreter, else the one on PATH.

    Not ``python -m spark_models.cli``: that puts the working directory (/opt/ml, which holds
    ``model/`` and this file) first on ``sys.path``, where it could shadow modules the model imports.
    """
    script = Path(sysconfig.get_path("scripts")) / "spark-models"
    if script.is_file() and os.access(script, os.X_OK):
        return str(script)
    found = shutil.which("spark-models")
    if found is None:
        raise MissingDependencyError(
            f"spark-models is not installed for {sys.executable}: pip install 'spark-models[serve]'"
        )
    return found


def _positive_int(environ: Mapping[str, str], name: str, default: int, *, upper: int | None = None) -> int:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < 1 or (upper is not None and int(raw) > upper):
        bound = f" (at most {upper})" if upper is not None else ""
        raise InvalidArgumentError(f"{name} must be a positive whole number{bound}, got {raw!r}")
    return int(raw)


if __name__ == "__main__":
    sys.exit(main())
