"""The private cache directory environments, code copies and logs live in."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from spark_models.envs.options import CACHE_ENV
from spark_models.exceptions import UnsafeModelError


def private(root: Path) -> Path:
    """``root``, created 0700; refused unless this user owns it and nobody else may write or read it
    (another user could plant an environment there that our processes would run)."""
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    if hasattr(os, "getuid"):
        info = root.lstat()
        if root.is_symlink() or info.st_uid != os.getuid() or info.st_mode & 0o077:
            raise UnsafeModelError(f"{root} is not a private directory of this user (owner uid {info.st_uid}, mode "
                                   f"{oct(info.st_mode & 0o777)}); remove it or set TMPDIR (environments: {CACHE_ENV})")
    return root


def cache_root(configured: str | os.PathLike | None = None) -> Path:
    """``configured``, else ``$SPARK_MODELS_ENV_CACHE``, else ``$TMPDIR/spark-models-envs-<uid>``; private."""
    chosen = configured or os.environ.get(CACHE_ENV)
    if chosen:
        return private(Path(chosen).expanduser().absolute())
    return user_dir("envs")


def user_dir(kind: str) -> Path:
    """``$TMPDIR/spark-models-<kind>-<uid>``, private to this user."""
    user = os.getuid() if hasattr(os, "getuid") else os.environ.get("USERNAME", "user")
    return private(Path(tempfile.gettempdir()) / f"spark-models-{kind}-{user}")


def subdir(root: Path, name: str) -> Path:
    """A private subdirectory of the cache (``envs``, ``code``, ``logs``, ``archives``)."""
    return private(root / name)
