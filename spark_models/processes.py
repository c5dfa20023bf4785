"""Process helpers (a leaf module, stdlib only): the parent-death signal, process identity against
pid reuse, processes found by an environment marker, log tails, atomic JSON state."""

from __future__ import annotations

import ctypes
import json
import os
import signal
import socket
import sys
from pathlib import Path

# Every process of a deployment (supervisor, serve, its workers) carries this in its environment,
# so one that outlived its parent can still be found and stopped.
MARKER_ENV = "SPARK_MODELS_DEPLOYMENT_DIR"
_TAIL_LINES = 40


def _prctl():
    """``prctl`` from libc, looked up before any fork (no dlopen in a forked child)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _prctl()
HAS_PARENT_DEATH_SIGNAL = _PRCTL is not None


def die_with_parent() -> None:
    """In a forked child before exec: SIGKILL it when its parent dies (PR_SET_PDEATHSIG)."""
    if _PRCTL is not None:
        _PRCTL(1, signal.SIGKILL, 0, 0, 0)


def process_start_time(pid: int) -> int | None:
    """The kernel's start time of a live (non-zombie) process, or None if there is none.

    Compared with the one recorded in the state, it tells our process from a reused pid."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        if sys.platform.startswith("linux"):
            return None
        try:
            os.kill(pid, 0)
        except OSError:
            return None
        return 0
    return None if fields[0] in ("Z", "X") else int(fields[19])


def marked_processes(marker: str) -> list[int]:
    """Live processes of this user whose environment has ``MARKER_ENV=marker`` (Linux; [] elsewhere)."""
    needle = f"{MARKER_ENV}={marker}".encode()
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            pid = int(entry.name)
            if pid != os.getpid() and needle in (entry / "environ").read_bytes().split(b"\0") \
                    and process_start_time(pid) is not None:
                found.append(pid)
        except (OSError, ValueError):
            continue
    return found


def log_tail(path: str | os.PathLike | None, lines: int = _TAIL_LINES) -> str:
    """The last ``lines`` lines of a log file ("" if it cannot be read)."""
    if not path:
        return ""
    try:
        with open(path, "rb") as f:
            f.seek(max(f.seek(0, os.SEEK_END) - 128 * 1024, 0))
            return b"\n".join(f.read().splitlines()[-lines:]).decode("utf-8", "replace")
    except OSError:
        return ""


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on now."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def write_json_atomically(path: Path, doc: dict) -> None:
    """Readers see the old document or the new one, never a part."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=2, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
