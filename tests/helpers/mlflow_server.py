"""A real ``mlflow server`` for the tracking and registry tests: SQLite backend store, proxied
artifacts (``--serve-artifacts``) under a temporary directory, on a free loopback port.

Fixture ``mlflow_server`` (session scope) yields an :class:`MlflowServer`; the server is stopped
at the end of the session. It needs the full ``mlflow`` package (the dev extra installs it).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

STARTUP_SECONDS = 120


@dataclass(frozen=True)
class MlflowServer:
    url: str  # http://127.0.0.1:<port>
    root: Path  # backend store and artifacts live here
    log: Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_until_up(url: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"mlflow server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"mlflow server did not answer at {url} in {STARTUP_SECONDS} s:\n{log.read_text()[-3000:]}")


def start_server(root: Path) -> tuple[MlflowServer, subprocess.Popen]:
    """Start ``mlflow server`` with its files under ``root``; returns it and its process."""
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = root / "server.log"
    mlflow = Path(sys.executable).with_name("mlflow")
    command = [str(mlflow) if mlflow.exists() else shutil.which("mlflow") or "mlflow", "server",
               "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
               "--serve-artifacts", "--artifacts-destination", str(root / "artifacts"),
               "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    env = {**os.environ, "MLFLOW_TRACKING_URI": ""}
    env.pop("MLFLOW_TRACKING_URI")
    with open(log, "wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=root,
                                start_new_session=True)
    _wait_until_up(url, proc, log)
    return MlflowServer(url, root, log), proc


def stop_server(proc: subprocess.Popen) -> None:
    import signal

    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    """A running ``mlflow server`` (SQLite store, proxied artifacts) for the whole session."""
    pytest.importorskip("mlflow.server", reason="the full mlflow package runs the tracking server")
    server, proc = start_server(tmp_path_factory.mktemp("mlflow-server"))
    try:
        yield server
    finally:
        stop_server(proc)
