"""Where ``predict`` writes, following Spark's save modes, without ever losing data.

- ``errorifexists`` (default): an existing output is an error naming it;
- ``overwrite``: the output is replaced, only once the new one is complete;
- ``append``: the new rows are added to the existing output (a folder gets new part files, a
  file is rewritten with the old rows first);
- ``ignore``: an existing output is left alone and nothing is scored.

An output that is, contains or lies inside an input is always refused. Local outputs are
written to a temporary sibling and renamed into place when complete, so a failed or killed
job leaves the previous output as it was. Other URLs (``s3://`` …) are written by Spark's own
writer in the same mode (its output committer decides what a failure leaves behind).
"""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator
from urllib.parse import unquote, urlparse

from spark_models.exceptions import InvalidArgumentError

_logger = logging.getLogger(__name__)

MODES = ("errorifexists", "overwrite", "append", "ignore")
_ALIASES = {"error": "errorifexists", "default": "errorifexists"}


def normalize_mode(mode: str) -> str:
    mode = _ALIASES.get(mode.lower(), mode.lower())
    if mode not in MODES:
        raise InvalidArgumentError(f"Unknown save mode {mode!r}; use one of {', '.join(MODES)}")
    return mode


def local_path(uri: str) -> Path | None:
    """The local path of a plain path or ``file://`` URI (None for other URLs and ``-``)."""
    if uri == "-":
        return None
    parsed = urlparse(uri)
    if len(parsed.scheme) <= 1:
        return Path(uri).expanduser().resolve()
    if parsed.scheme == "file":
        return Path(unquote(parsed.netloc + parsed.path)).resolve()
    return None


def check_not_overlapping(source: str, target: str) -> None:
    """Refuse an output that is, contains or lies inside the input."""
    src, dst = local_path(source), local_path(target)
    if src is None or dst is None:
        if source != "-" and source.rstrip("/") == target.rstrip("/"):
            raise InvalidArgumentError(f"The output {target!r} is the input; write the predictions elsewhere")
        return
    if src == dst or dst in src.parents or src in dst.parents:
        relation = "is" if src == dst else "contains" if dst in src.parents else "lies inside"
        raise InvalidArgumentError(
            f"The output {target!r} {relation} the input {source!r}; writing it would destroy the input. "
            "Write the predictions elsewhere")


def should_score(target: str, mode: str) -> bool:
    """False when ``mode`` says to leave an existing output alone; an error for ``errorifexists``."""
    path = local_path(target)
    if path is None or not os.path.lexists(path):
        return True
    if mode == "errorifexists":
        raise InvalidArgumentError(
            f"The output {target!r} already exists; pass --mode overwrite to replace it, --mode append to add to it, "
            "or --mode ignore to skip")
    if mode == "ignore":
        _logger.info("The output %s exists and --mode ignore: nothing to do", target)
        return False
    return True


@contextmanager
def staged_output(target: str) -> Iterator[Path]:
    """A temporary sibling of local ``target`` to write into; removed when the block fails."""
    path = local_path(target)
    assert path is not None, "staged_output is for local outputs"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.spark-models-{uuid.uuid4().hex[:12]}{''.join(path.suffixes)}"
    try:
        yield tmp
    except BaseException:
        _remove(tmp)
        raise


def replace_with(target: str, staged: Path) -> None:
    """Put the complete ``staged`` output at ``target``; an old one is removed only afterwards."""
    path = local_path(target)
    if os.path.lexists(path) and path.is_dir() != staged.is_dir():
        _remove(staged)
        kind, new = ("folder", "file") if path.is_dir() else ("file", "folder")
        raise InvalidArgumentError(f"The output {target!r} is a {kind} but this job writes a {new}; choose another output")
    if not path.is_dir():
        os.replace(staged, path)  # atomic, over an old file too
        return
    old = path.parent / f".{path.name}.old-{uuid.uuid4().hex[:12]}"
    os.replace(path, old)
    os.replace(staged, path)
    _remove(old)


def append_parts(target: str, staged: Path) -> None:
    """Move the data files of a staged Spark output folder into the existing ``target`` folder."""
    path = local_path(target)
    if not path.is_dir():
        _remove(staged)
        raise InvalidArgumentError(f"--mode append: the output {target!r} is not a folder of part files")
    for part in sorted(staged.iterdir()):
        if part.name.startswith(("_", ".")):
            continue
        os.replace(part, path / part.name)
    _remove(staged)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        path.unlink()
