"""Steps every flavor's ``save_model`` shares: the directory, code paths, example, MLmodel."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Any, Callable, Sequence

from spark_models.environment import python_version, write_environment
from spark_models.exceptions import ArtifactNotFoundError, InvalidArgumentError
from spark_models.input_example import save_input_example
from spark_models.mlmodel import Model
from spark_models.signature import ModelSignature

_logger = logging.getLogger(__name__)

CODE_DIR = "code"


def prepare_model_dir(path: str | os.PathLike) -> Path:
    """Create the model directory; refuse to write into a non-empty one."""
    root = Path(path)
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise InvalidArgumentError(f"Model path {str(root)!r} already exists and is not an empty directory")
    root.mkdir(parents=True, exist_ok=True)
    return root


def copy_code_paths(code_paths: Sequence[str | os.PathLike] | None, model_dir: Path) -> str | None:
    """Copy files/dirs into ``code/``; returns the relative dir for the flavor's ``code`` key."""
    if not code_paths:
        return None
    dest = model_dir / CODE_DIR
    dest.mkdir()
    for src in map(Path, code_paths):
        if not src.exists():
            raise ArtifactNotFoundError(f"Code path {str(src)!r} does not exist")
        if src.is_dir():
            shutil.copytree(src, dest / src.name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(src, dest / src.name)
    return CODE_DIR


def _signature_from_example(input_example: Any, predict: Callable[[Any], Any] | None) -> ModelSignature | None:
    from spark_models.schema_inference import infer_signature

    output = None
    if predict is not None:
        try:
            output = predict(input_example)
        except Exception as e:  # the model may not accept the raw example; inputs alone still help
            _logger.warning("Could not run the model on input_example to infer the output schema: %s", e)
    try:
        return infer_signature(input_example, output)
    except Exception as e:
        _logger.warning("Could not infer a signature from input_example: %s", e)
        return None


def finish_model(
    model_dir: Path,
    mlflow_model: Model,
    pyfunc_conf: dict[str, Any] | None,
    default_pip: Sequence[str],
    signature: ModelSignature | None = None,
    input_example: Any = None,
    conda_env: Any = None,
    pip_requirements: Any = None,
    extra_pip_requirements: Any = None,
    metadata: dict[str, Any] | None = None,
    predict_for_signature: Callable[[Any], Any] | None = None,
) -> Model:
    """Write input example, environment files and MLmodel; add the python_function flavor.

    When ``signature`` is None and an ``input_example`` is given, the signature is inferred
    from the example and from ``predict_for_signature(example)`` when that is given.
    """
    if input_example is not None:
        mlflow_model.saved_input_example_info = save_input_example(input_example, model_dir)
        if signature is None:
            signature = _signature_from_example(input_example, predict_for_signature)
    mlflow_model.signature = signature
    if metadata is not None:
        mlflow_model.metadata = metadata
    env = write_environment(model_dir, default_pip, conda_env, pip_requirements, extra_pip_requirements)
    if pyfunc_conf is not None:
        mlflow_model.add_flavor("python_function", **pyfunc_conf, env=env, python_version=python_version())
    mlflow_model.save(model_dir)
    return mlflow_model
