"""Model URIs → local directories: the one entry point every loader uses.

``runs:/`` and ``models:/`` go to the registry (:func:`spark_models.tracking.resolve.resolve_model_source`:
MLflow's client when installed, otherwise the tracking server's REST API); local paths and storage
URLs to :func:`spark_models.storage.resolve_storage_uri`.
"""

from __future__ import annotations

import os
from pathlib import Path

from spark_models.storage import resolve_storage_uri, uri_scheme

REGISTRY_SCHEMES = ("runs", "models")


def resolve_model_uri(model_uri: str | os.PathLike, dst_path: str | os.PathLike | None = None) -> Path:
    """A local directory holding the model at ``model_uri``.

    ``dst_path`` forces remote models to be downloaded there instead of the cache.
    """
    uri = os.fspath(model_uri)
    if uri_scheme(uri) in REGISTRY_SCHEMES:
        from spark_models.tracking.resolve import resolve_model_source

        return resolve_model_source(uri, dst_path).local_dir
    return resolve_storage_uri(uri, dst_path)
