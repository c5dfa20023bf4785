"""Timeouts and names shared by the environment builder and the scorer process (a leaf module)."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, Mapping

from spark_models.exceptions import InvalidArgumentError

ENV_MANAGERS = ("local", "uv", "virtualenv", "conda")
CACHE_ENV = "SPARK_MODELS_ENV_CACHE"  # where environments are built (default: a private dir under $TMPDIR)


@dataclass(frozen=True)
class Timeouts:
    """Seconds allowed to build an environment, to load the model in its scorer process, and to
    score one batch. The defaults fit large models: a 30-minute build, a 10-minute load and a
    10-minute batch."""

    build: float = 1800.0
    load: float = 600.0
    batch: float = 600.0

    @classmethod
    def of(cls, value: "Timeouts | Mapping[str, Any] | None") -> "Timeouts":
        """``Timeouts`` from None (the defaults), a Timeouts, or a dict with some of its keys."""
        if value is None or isinstance(value, Timeouts):
            return value or cls()
        if not isinstance(value, Mapping):
            raise InvalidArgumentError(f"env timeouts must be a dict with keys build/load/batch, got {value!r}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(value) - known)
        if unknown:
            raise InvalidArgumentError(f"unknown env timeout(s) {unknown}; the keys are {sorted(known)}")
        for name, seconds in value.items():
            if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds > 0 \
                    or math.isnan(seconds):
                raise InvalidArgumentError(f"env timeout {name!r} must be a positive number of seconds, got {seconds!r}")
        return cls(**{k: float(v) for k, v in value.items()})


def check_env_manager(env_manager: str) -> str:
    if env_manager not in ENV_MANAGERS:
        raise InvalidArgumentError(f"env_manager={env_manager!r} is not one of {list(ENV_MANAGERS)}")
    return env_manager
