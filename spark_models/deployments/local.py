"""The built-in ``local`` deployment target: each deployment is a supervised ``spark-models serve``.

Target URIs: ``local`` (state under ``$SPARK_MODELS_DEPLOYMENTS_DIR``, default
``~/.spark-models/deployments``) or ``local:/abs/state/dir``. See
:mod:`spark_models.deployments.supervisor` for what runs per deployment.

>>> client = LocalDeploymentClient("local:/tmp/deployments")  # doctest: +SKIP
>>> client.create_deployment("iris", "/models/iris", config={"port": "8080"})  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from spark_models.deployments.base import BaseDeploymentClient, PredictionsResponse
from spark_models.deployments.supervisor import DEFAULT_TIMEOUT, STATE_FILE
from spark_models.envs.cache import private
from spark_models.exceptions import DeploymentError, DeploymentNotFoundError, InvalidArgumentError, NotSupportedError
from spark_models.processes import MARKER_ENV, free_port, log_tail, marked_processes, process_start_time

_logger = logging.getLogger(__name__)

STATE_DIR_ENV = "SPARK_MODELS_DEPLOYMENTS_DIR"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_FLAVOR = "python_function"
_CONFIG_TYPES = {"port": int, "host": str, "workers": int, "env_manager": str, "timeout": float, "allow_code": bool}
_SOCKET_PATH_MAX = 100
_STARTUP_MARGIN = 30.0
_children: dict[int, subprocess.Popen] = {}  # supervisors this process started, reaped when seen dead


def target_help() -> str:
    """What the ``local`` target does and which ``-C key=value`` options it takes."""
    return (
        "Target 'local' (or 'local:/abs/state/dir'): each deployment is a supervised 'spark-models serve' process "
        f"on this machine; state, pids and logs live under ${STATE_DIR_ENV} (default ~/.spark-models/deployments).\n"
        "Config (-C key=value): port (public port; default a free one), host (default 127.0.0.1), workers, "
        "env_manager (local, uv, virtualenv, conda), timeout (seconds to wait for the model to be healthy; "
        f"default {DEFAULT_TIMEOUT:g}), allow_code (true/false).\n"
        "update starts the new model, waits for /health, then switches new connections to it and stops the old one "
        "once its connections finish. A backend that crashes is restarted."
    )


def run_local(target: str, name: str, model_uri: str, flavor: str | None = None, config: dict | None = None) -> None:
    """Serve ``model_uri`` in the foreground (``spark-models serve``) until interrupted; keeps no state."""
    _check_flavor(flavor)
    settings = convert_config(config)
    args = [sys.executable, "-m", "spark_models.cli", "serve", "-m", _absolute_uri(model_uri),
            "-h", settings.get("host", "127.0.0.1"), "-p", str(settings.get("port", 5000)),
            "--workers", str(settings.get("workers", 1)), "--env-manager", settings.get("env_manager", "local")]
    if "allow_code" in settings:
        args.append("--allow-code" if settings["allow_code"] else "--no-allow-code")
    _logger.info("Serving %s locally as %s", model_uri, name)
    proc = subprocess.Popen(args)
    try:
        code = proc.wait()
    except KeyboardInterrupt:
        proc.send_signal(signal.SIGINT)
        code = proc.wait()
    if code not in (0, -signal.SIGINT, -signal.SIGTERM):
        raise DeploymentError(f"Serving {model_uri} as {name} failed (exit code {code})")


def convert_config(config: dict | None) -> dict:
    """``config`` with the CLI's string values converted; unknown keys refused."""
    settings: dict[str, Any] = {}
    for key, value in (config or {}).items():
        kind = _CONFIG_TYPES.get(key)
        if kind is None:
            raise InvalidArgumentError(f"Unknown config key {key!r} for the local target; known: "
                                       f"{', '.join(sorted(_CONFIG_TYPES))}")
        try:
            settings[key] = _parse_bool(value) if kind is bool else kind(value)
        except (TypeError, ValueError):
            raise InvalidArgumentError(f"config {key}={value!r} is not a valid {kind.__name__}") from None
    if settings.get("workers", 1) < 1 or not settings.get("timeout", 1) > 0:
        raise InvalidArgumentError("config workers must be at least 1 and timeout positive")
    if not 0 <= settings.get("port", 0) <= 65535:
        raise InvalidArgumentError(f"config port must be 0..65535, got {settings['port']}")
    return settings


def _parse_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError(value)


def _check_flavor(flavor: str | None) -> None:
    if flavor not in (None, _FLAVOR):
        raise NotSupportedError(f"The local target serves flavor {_FLAVOR!r} only, not {flavor!r}")


def _absolute_uri(model_uri: str) -> str:
    """A local path made absolute (the supervisor may resolve it elsewhere); other URIs as given."""
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]+:", model_uri) and not os.path.exists(model_uri):
        return model_uri
    return str(Path(model_uri).expanduser().absolute())


def _alive(info: dict | None) -> bool:
    """The recorded process still runs and is the same process (same kernel start time)."""
    if not info or not info.get("pid"):
        return False
    pid = int(info["pid"])
    child = _children.get(pid)
    if child is not None and child.poll() is not None:
        _children.pop(pid, None)
        return False
    started = process_start_time(pid)
    return started is not None and (info.get("start_time") is None or started == info["start_time"])


class LocalDeploymentClient(BaseDeploymentClient):
    """Deployments as supervised ``serve`` processes on this machine (target ``local[:/state/dir]``)."""

    def __init__(self, target_uri: str):
        super().__init__(target_uri)
        scheme, _, rest = target_uri.partition(":")
        if scheme != "local":
            raise InvalidArgumentError(f"Not a local target URI: {target_uri!r}")
        if rest:
            if not os.path.isabs(rest):
                raise InvalidArgumentError(f"The local target's state directory must be absolute, got {rest!r}")
            self.root = Path(rest)
        else:
            self.root = Path(os.environ.get(STATE_DIR_ENV) or "~/.spark-models/deployments").expanduser().absolute()

    # --- state ---------------------------------------------------------------------------------

    def _dir(self, name: str) -> Path:
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise InvalidArgumentError(f"Invalid deployment name {name!r}: 1-64 letters, digits, '_', '.', '-', "
                                       "starting with a letter or digit")
        return self.root / name

    def _read_state(self, name: str) -> dict | None:
        try:
            return json.loads((self._dir(name) / STATE_FILE).read_text())
        except (OSError, ValueError):
            return None

    def _describe(self, name: str) -> dict | None:
        directory = self._dir(name)
        if not directory.is_dir():
            return None
        state = self._read_state(name) or {"name": name, "flavor": _FLAVOR, "status": "unknown"}
        supervisor_alive = _alive(state.get("supervisor"))
        backend_alive = _alive(state.get("backend"))
        state["alive"] = supervisor_alive and backend_alive
        state["supervisor_alive"], state["backend_alive"] = supervisor_alive, backend_alive
        return state

    def _require(self, name: str) -> dict:
        state = self._describe(name)
        if state is None:
            raise DeploymentNotFoundError(f"No deployment {name!r} in {self.root}")
        return state

    # --- control -------------------------------------------------------------------------------

    def _control(self, state: dict, request: dict, timeout: float) -> dict:
        path = state.get("control_socket")
        if not path:
            raise DeploymentError(f"Deployment {state.get('name')!r} has no control socket")
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            try:
                s.connect(path)
                s.sendall(json.dumps(request).encode() + b"\n")
                data = b""
                while not data.endswith(b"\n"):
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    data += chunk
            except OSError as e:
                raise DeploymentError(f"Deployment {state.get('name')!r} does not answer on {path}: {e}") from None
        try:
            return json.loads(data)
        except ValueError:
            raise DeploymentError(f"Deployment {state.get('name')!r} answered {data[:200]!r} on {path}") from None

    def _socket_path(self, directory: Path) -> str:
        path = str(directory / "control.sock")
        if len(path.encode()) <= _SOCKET_PATH_MAX:
            return path
        short = private(Path(tempfile.mkdtemp(prefix="smd-")))
        return str(short / "control.sock")

    def _log_tails(self, name: str) -> str:
        directory = self._dir(name)
        logs = sorted(directory.glob("serve-*.log"), key=lambda p: int(p.stem.split("-")[1]))
        parts = [f"--- {directory / 'supervisor.log'} ---\n{log_tail(directory / 'supervisor.log', 20)}"]
        if logs:
            parts.append(f"--- {logs[-1]} ---\n{log_tail(logs[-1])}")
        return "\n".join(parts)

    # --- the client API ------------------------------------------------------------------------

    def create_deployment(self, name: str, model_uri: str, flavor: str | None = None, config: dict | None = None,
                          endpoint: str | None = None) -> dict:
        """Start a supervisor serving ``model_uri`` as ``name``; the deployment once it answers ``/ping``."""
        directory = self._dir(name)
        _check_flavor(flavor)
        settings = convert_config(config)
        existing = self._describe(name)
        if existing is not None:
            if existing["supervisor_alive"]:
                raise DeploymentError(f"Deployment {name!r} already exists in {self.root} (status "
                                      f"{existing.get('status')}, url {existing.get('url')}); update or delete it")
            self.delete_deployment(name)  # what a dead one left behind
        settings.setdefault("host", "127.0.0.1")
        if not settings.get("port"):
            settings["port"] = free_port(settings["host"] if settings["host"] != "0.0.0.0" else "127.0.0.1")
        private(self.root)
        private(directory)
        uri = _absolute_uri(model_uri)
        args = [sys.executable, "-m", "spark_models.deployments.supervisor", "--dir", str(directory), "--name", name,
                "--model-uri", uri, "--config", json.dumps(settings), "--socket", self._socket_path(directory)]
        with open(directory / "supervisor.log", "ab") as log:
            proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True, cwd=directory,
                                    env={**os.environ, MARKER_ENV: str(directory)})
        _children[proc.pid] = proc
        problem = self._wait_ready(name, proc, settings.get("timeout", DEFAULT_TIMEOUT) + _STARTUP_MARGIN)
        if problem is None:
            _logger.info("Deployed %s as %s", model_uri, name)
            return self._require(name)
        tails = self._log_tails(name)
        self._stop(name, self._read_state(name) or {"supervisor": {"pid": proc.pid}})
        shutil.rmtree(directory, ignore_errors=True)
        raise DeploymentError(f"Deployment {name!r} of {model_uri} did not start: {problem}\n{tails}")

    def _wait_ready(self, name: str, proc: subprocess.Popen, timeout: float) -> str | None:
        from spark_models.serving.client import ScoringClient

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self._read_state(name) or {}
            if state.get("status") == "failed":
                return state.get("error") or "failed"
            if proc.poll() is not None:
                return f"the supervisor exited (code {proc.returncode})"
            if state.get("status") == "ready" and ScoringClient(state["url"], timeout=5).ping():
                return None
            time.sleep(0.2)
        return f"not ready within {timeout:g} s"

    def update_deployment(self, name: str, model_uri: str | None = None, flavor: str | None = None,
                          config: dict | None = None, endpoint: str | None = None) -> dict:
        """Serve ``model_uri`` (and/or ``config``) under ``name`` with no downtime; the old model keeps
        serving if the new one does not become healthy."""
        _check_flavor(flavor)
        state = self._require(name)
        settings = convert_config(config)
        for key in ("port", "host"):
            if key in settings and settings[key] != state.get("config", {}).get(key):
                raise InvalidArgumentError(f"The {key} of deployment {name!r} cannot change; delete and create it")
        if not state["supervisor_alive"]:
            raise DeploymentError(f"The supervisor of deployment {name!r} is not running; delete and create it\n"
                                  f"{self._log_tails(name)}")
        request = {"op": "update", "model_uri": _absolute_uri(model_uri) if model_uri else None, "config": settings}
        timeout = float(settings.get("timeout", state.get("config", {}).get("timeout", DEFAULT_TIMEOUT)))
        reply = self._control(state, request, timeout + _STARTUP_MARGIN)
        if not reply.get("ok"):
            raise DeploymentError(f"Update of deployment {name!r} failed, the previous model keeps serving: "
                                  f"{reply.get('error')}; log {reply.get('log')}:\n{reply.get('log_tail', '')}")
        return self._require(name)

    def delete_deployment(self, name: str, config: dict | None = None, endpoint: str | None = None) -> None:
        """Stop deployment ``name`` and remove its state (a missing one is not an error)."""
        directory = self._dir(name)
        if not directory.is_dir():
            return
        state = self._read_state(name) or {}
        self._stop(name, state)
        socket_path = state.get("control_socket")
        if socket_path and not socket_path.startswith(str(directory)):
            shutil.rmtree(os.path.dirname(socket_path), ignore_errors=True)
        shutil.rmtree(directory, ignore_errors=True)
        _logger.info("Deleted deployment %s", name)

    def _stop(self, name: str, state: dict) -> None:
        """Ask the supervisor to stop, then signal it; make sure it and its backend are gone."""
        supervisor, backend = state.get("supervisor"), state.get("backend")
        if _alive(supervisor):
            grace = 30.0
            try:
                self._control(state, {"op": "stop"}, 10)
            except DeploymentError as e:
                _logger.warning("%s; signalling it", e)
                grace = 0.0
            for sig, wait in ((None, grace), (signal.SIGTERM, 20.0), (signal.SIGKILL, 5.0)):
                if sig is not None and _alive(supervisor):
                    _signal(supervisor["pid"], sig)
                if _wait_gone(supervisor, wait):
                    break
        # what the supervisor could not stop because it died first: its backend, the backend's workers
        marker, deadline = str(self._dir(name)), time.monotonic() + 5.0
        while (left := marked_processes(marker)) and time.monotonic() < deadline:
            for pid in left:
                _signal(pid, signal.SIGKILL)
            time.sleep(0.1)
        if _alive(supervisor) or _alive(backend) or left:
            raise DeploymentError(f"Deployment {name!r} could not be stopped (supervisor {supervisor}, backend "
                                  f"{backend}, other processes {left})")
        if supervisor:
            _children.pop(int(supervisor.get("pid", 0)), None)

    def list_deployments(self, endpoint: str | None = None) -> list[dict]:
        """Every deployment under the state directory, with ``alive`` checked against the processes."""
        if not self.root.is_dir():
            return []
        found = (self._describe(p.name) for p in sorted(self.root.iterdir()) if p.is_dir() and _NAME.fullmatch(p.name))
        return [d for d in found if d is not None]

    def get_deployment(self, name: str, endpoint: str | None = None) -> dict:
        """Deployment ``name``'s state, with ``alive``; DeploymentNotFoundError if there is none."""
        return self._require(name)

    def predict(self, deployment_name: str | None = None, inputs: Any = None,
                endpoint: str | None = None) -> PredictionsResponse:
        """POST ``inputs`` (a DataFrame, sent as ``dataframe_split``, or a JSON-able dict) to the deployment."""
        import pandas as pd

        from spark_models.serving.client import ScoringClient, ScoringServerError

        state = self._require(deployment_name)
        if isinstance(inputs, pd.DataFrame):
            body = {"dataframe_split": json.loads(inputs.to_json(orient="split", index=False))}
        elif isinstance(inputs, dict):
            body = inputs
        else:
            raise InvalidArgumentError(f"predict takes a pandas DataFrame or a dict, got {type(inputs).__name__}")
        try:
            answer = ScoringClient(state["url"]).post(json.dumps(body).encode())
        except ScoringServerError as e:
            raise DeploymentError(f"Deployment {deployment_name!r} refused the request: {e}") from None
        except OSError as e:
            raise DeploymentError(f"Deployment {deployment_name!r} at {state['url']} cannot be reached: {e}") from None
        return PredictionsResponse(answer)


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _wait_gone(info: dict | None, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while _alive(info):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True
