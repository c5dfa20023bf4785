"""The one way a flavor writes a model directory: :func:`saved_model`.

::

    with saved_model(path, default_pip=FLAVOR.default_pip_requirements(), signature=signature,
                     input_example=input_example) as draft:
        native.save(draft.dir / "model.bin")
        draft.add_flavor("my_flavor", data="model.bin")
        draft.set_pyfunc(FLAVOR.module, data="model.bin")
        draft.predict_for_signature = native.predict
    return draft.model

On leaving the block the input example, environment files (conda.yaml, requirements.txt,
python_env.yaml), signature (inferred from the example when none is given), metadata, the
``python_function`` entry and MLmodel are written; on any error the directory is removed.
"""

from __future__ import annotations

import logging
import os
import shutil
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from spark_models.environment import python_version, write_environment
from spark_models.exceptions import ArtifactNotFoundError, InvalidArgumentError, NotSupportedError
from spark_models.flavors.contract import PYFUNC
from spark_models.mlmodel import Model
from spark_models.schema.input_example import save_input_example
from spark_models.schema.signature import ModelSignature

_logger = logging.getLogger(__name__)

CODE_DIR = "code"
_UNSET = object()


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


EXTRA_FILES_DIR = "extra_files"


def copy_extra_files(extra_files: Sequence[str | os.PathLike] | None, model_dir: Path) -> dict[str, Any]:
    """Local files copied into ``extra_files/``, and MLflow's flavor key for them
    (``{"extra_files": [{"path": "extra_files/<name>"}]}``; ``{}`` without files)."""
    if not extra_files:
        return {}
    if isinstance(extra_files, (str, os.PathLike)) or not isinstance(extra_files, (list, tuple)):
        raise InvalidArgumentError(f"extra_files must be a list of file paths, got {type(extra_files).__name__}")
    sources = []
    for item in extra_files:
        text = os.fspath(item)
        if "://" in text and not text.startswith("file://"):
            raise NotSupportedError(f"extra_files: {text!r} is not a local file; download it first")
        source = Path(text.removeprefix("file://"))
        if not source.is_file():
            raise ArtifactNotFoundError(f"Extra file {str(source)!r} does not exist")
        sources.append(source)
    names = [s.name for s in sources]
    clashes = sorted({n for n in names if names.count(n) > 1})
    if clashes:
        raise InvalidArgumentError(f"extra_files has several files named {clashes}; they would overwrite each other")
    dest = model_dir / EXTRA_FILES_DIR
    dest.mkdir()
    for source in sources:
        shutil.copy2(source, dest / source.name)
    return {"extra_files": [{"path": f"{EXTRA_FILES_DIR}/{name}"} for name in names]}


def _signature_from_example(input_example: Any, predict: Callable[[Any], Any] | None) -> ModelSignature | None:
    from spark_models.schema.inference import infer_signature

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


@dataclass
class ModelDraft:
    """A model directory being written: ``dir``, the ``model`` (MLmodel) and the ``code`` dir
    (relative, None without code paths) that :func:`saved_model` yields."""

    dir: Path
    model: Model
    code: str | None
    default_pip: list[str]
    predict_for_signature: Callable[[Any], Any] | None = None
    _pyfunc: dict[str, Any] | None = None
    _settings: dict[str, Any] = field(default_factory=dict)
    _signature: Any = _UNSET

    def add_flavor(self, name: str, **conf: Any) -> None:
        """Add flavor ``name``'s entry to MLmodel."""
        self.model.add_flavor(name, **conf)

    def set_pyfunc(self, loader_module: str, **conf: Any) -> None:
        """The ``python_function`` entry (``env`` and ``python_version`` are added on save)."""
        self._pyfunc = {"loader_module": loader_module, **conf}

    def resolve_signature(self) -> ModelSignature | None:
        """The model's signature: as given, or inferred from the input example (and
        ``predict_for_signature``), which is written to the directory the first time."""
        if self._signature is _UNSET:
            signature, example = self._settings["signature"], self._settings["input_example"]
            if example is not None:
                self.model.saved_input_example_info = save_input_example(example, self.dir)
                if signature is None:
                    signature = _signature_from_example(example, self.predict_for_signature)
            self._signature = signature
        return self._signature

    def _finish(self) -> None:
        self.model.signature = self.resolve_signature()
        if self._settings["metadata"] is not None:
            self.model.metadata = self._settings["metadata"]
        env = write_environment(self.dir, self.default_pip, *(self._settings[k] for k in
                                ("conda_env", "pip_requirements", "extra_pip_requirements")))
        if self._pyfunc is not None:
            self.model.add_flavor(PYFUNC, **self._pyfunc, env=env, python_version=python_version())
        self.model.save(self.dir)


@contextmanager
def saved_model(
    path: str | os.PathLike,
    *,
    default_pip: Sequence[str],
    mlflow_model: Model | None = None,
    code_paths: Sequence[str | os.PathLike] | None = None,
    signature: ModelSignature | None = None,
    input_example: Any = None,
    conda_env: Any = None,
    pip_requirements: Any = None,
    extra_pip_requirements: Any = None,
    metadata: dict[str, Any] | None = None,
) -> Iterator[ModelDraft]:
    """A new model directory at ``path`` (which must not exist or be empty) to write into.

    ``default_pip`` are the flavor's requirements, replaced or extended by the user's
    ``conda_env`` / ``pip_requirements`` / ``extra_pip_requirements`` (one at most).
    """
    model_dir = prepare_model_dir(path)
    try:
        code = copy_code_paths(code_paths, model_dir)
        settings = {"signature": signature, "input_example": input_example, "conda_env": conda_env,
                    "pip_requirements": pip_requirements, "extra_pip_requirements": extra_pip_requirements,
                    "metadata": metadata}
        draft = ModelDraft(model_dir, mlflow_model or Model(), code, list(default_pip), _settings=settings)
        yield draft
        draft._finish()
    except BaseException:
        shutil.rmtree(model_dir, ignore_errors=True)
        raise
