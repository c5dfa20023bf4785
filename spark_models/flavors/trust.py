"""What loading a model may run: the trust modes.

- ``allow_code=True`` (the default, as in MLflow): the model's ``code/`` directory goes on
  ``sys.path``, its ``loader_module`` is imported whatever it names, and pickle files are
  unpickled. Load only models you trust.
- ``allow_code=False`` (or ``SPARK_MODELS_ALLOW_CODE=0`` for a whole job, honoured by
  ``pyfunc.load_model``, the native loaders, ``spark_udf`` on the driver and in every task,
  ``serve`` and ``predict``): only registered flavors (built-in or installed through the
  ``spark_models.flavors`` entry-point group) load, only in formats that run no code from the
  model (skops with skops' default trusted types only, Spark ML persistence, MLeap bundles);
  a ``code`` directory, an unregistered ``loader_module``, a pickle file, or a flavor that does
  not declare what it runs is an :class:`~spark_models.exceptions.UnsafeModelError`.

In both modes a ``code/`` module that would shadow the standard library or a module already
imported from elsewhere is refused, naming it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from spark_models.exceptions import InvalidArgumentError, UnsafeModelError

ALLOW_CODE_ENV = "SPARK_MODELS_ALLOW_CODE"
_FALSE = {"0", "false", "no", "off"}
_TRUE = {"1", "true", "yes", "on"}


def resolve_allow_code(allow_code: bool | None) -> bool:
    """``allow_code`` as given, else ``$SPARK_MODELS_ALLOW_CODE``, else True."""
    if allow_code is not None:
        return bool(allow_code)
    raw = os.environ.get(ALLOW_CODE_ENV, "").strip().lower()
    if raw in _FALSE:
        return False
    if raw in _TRUE or raw == "":
        return True
    raise InvalidArgumentError(f"{ALLOW_CODE_ENV}={raw!r}: use 1/true/yes/on or 0/false/no/off")


def refusal(model_dir: Path, reason: str) -> UnsafeModelError:
    return UnsafeModelError(
        f"Refusing to load the model at {str(model_dir)!r} with allow_code=False: {reason}. If you trust it, pass "
        f"allow_code=True (or set {ALLOW_CODE_ENV}=1)"
    )


def _top_level_names(directory: Path) -> dict[str, Path]:
    names = {}
    for entry in directory.iterdir():
        if entry.is_dir() and entry.name.isidentifier():
            names[entry.name] = entry
        elif entry.suffix in (".py", ".pyc", ".so", ".pyd") and entry.stem.split(".")[0].isidentifier():
            names[entry.stem.split(".")[0]] = entry
    return names


def check_code_dir(code_dir: Path, search_dirs: list[Path]) -> None:
    """Refuse a module in ``search_dirs`` that would shadow the standard library or a module
    already imported from somewhere else."""
    root = code_dir.resolve()
    for directory in search_dirs:
        for name, path in _top_level_names(directory).items():
            if name in sys.stdlib_module_names:
                raise UnsafeModelError(
                    f"The model's code directory {str(code_dir)!r} holds {path.name!r}, which would shadow the standard "
                    f"library module {name!r}; rename it")
            loaded = sys.modules.get(name)
            origin = getattr(loaded, "__file__", None) if loaded is not None else None
            if loaded is not None and not (origin and root in Path(origin).resolve().parents):
                raise UnsafeModelError(
                    f"The model's code directory {str(code_dir)!r} holds {path.name!r}, which would shadow the module "
                    f"{name!r} already imported from {origin or 'a built-in'}; rename it")
