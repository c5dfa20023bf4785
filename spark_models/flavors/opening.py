"""Opening a model: resolve its URI to a local directory and parse its MLmodel once, into the
:class:`~spark_models.flavors.contract.LoadContext` every loader gets."""

from __future__ import annotations

import os
from typing import Any, Mapping

from spark_models.flavors.contract import PYFUNC, LoadContext
from spark_models.flavors.registry import implied_pyfunc
from spark_models.mlmodel import Model


def open_model(model_uri: str | os.PathLike, dst_path: str | os.PathLike | None = None,
               model_config: Mapping[str, Any] | None = None, *, allow_code: bool | None = None) -> LoadContext:
    """Resolve ``model_uri`` to a local directory and parse its MLmodel: the one parse of a load.
    ``allow_code`` None means ``$SPARK_MODELS_ALLOW_CODE`` (default True)."""
    from spark_models.flavors.trust import resolve_allow_code
    from spark_models.uri import resolve_model_uri

    model_dir = resolve_model_uri(model_uri, dst_path)
    return LoadContext(model_dir, _with_implied_pyfunc(Model.load(model_dir)), dict(model_config or {}),
                       resolve_allow_code(allow_code))


def _with_implied_pyfunc(model: Model) -> Model:
    """``model`` with the ``python_function`` entry one of its flavors implies, when it has none."""
    if PYFUNC in model.flavors:
        return model
    entry = implied_pyfunc(model.flavors)
    if entry is not None:
        model.flavors[PYFUNC] = entry
    return model
