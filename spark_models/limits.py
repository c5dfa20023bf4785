"""Size limits for what spark-models unpacks or allocates from a model it has not yet trusted.

A leaf module (stdlib only), shared by :mod:`mleap_bridge` and :mod:`udf`. Each limit has a
default that fits large real models and an environment variable to change it:

| limit | default | variable |
|---|---|---|
| total uncompressed bytes of an archive (zip bundle, shipped model tar) | 8 GiB | ``SPARK_MODELS_MAX_ARCHIVE_BYTES`` |
| entries in an archive | 100,000 | ``SPARK_MODELS_MAX_ARCHIVE_ENTRIES`` |
| width of a vector a bundle declares (one-hot size, HashingTF features, …) | 2**24 | ``SPARK_MODELS_MAX_VECTOR_SIZE`` |
"""

from __future__ import annotations

import os
from dataclasses import dataclass

MAX_ARCHIVE_BYTES_ENV = "SPARK_MODELS_MAX_ARCHIVE_BYTES"
MAX_ARCHIVE_ENTRIES_ENV = "SPARK_MODELS_MAX_ARCHIVE_ENTRIES"
MAX_VECTOR_SIZE_ENV = "SPARK_MODELS_MAX_VECTOR_SIZE"

_DEFAULTS = {
    MAX_ARCHIVE_BYTES_ENV: 8 << 30,
    MAX_ARCHIVE_ENTRIES_ENV: 100_000,
    MAX_VECTOR_SIZE_ENV: 1 << 24,
}


@dataclass(frozen=True)
class Limits:
    archive_bytes: int
    archive_entries: int
    vector_size: int


def _read(name: str) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return _DEFAULTS[name]
    try:
        value = int(raw.strip().replace("_", ""))
    except ValueError:
        from spark_models.exceptions import InvalidArgumentError

        raise InvalidArgumentError(f"{name}={raw!r} is not a whole number") from None
    if value < 1:
        from spark_models.exceptions import InvalidArgumentError

        raise InvalidArgumentError(f"{name}={raw!r} must be at least 1")
    return value


def current() -> Limits:
    """The limits in force now (read from the environment at each call)."""
    return Limits(_read(MAX_ARCHIVE_BYTES_ENV), _read(MAX_ARCHIVE_ENTRIES_ENV), _read(MAX_VECTOR_SIZE_ENV))
