"""The supervisor of one local deployment: owns the public port, runs ``spark-models serve`` behind it.

``python -m spark_models.deployments.supervisor --dir D --name N --model-uri URI --config JSON --socket S``

A TCP proxy forwards each new connection on the public port to the current backend (a ``serve``
process on a private port). A backend that dies is restarted (at most 5 fast crashes in a row,
then the state is ``failed``). The control socket ``S`` takes one JSON line per connection
(``{"op": "status"}``, ``{"op": "update", "model_uri": ..., "config": {...}}``, ``{"op": "stop"}``)
and answers one JSON line. The state file ``D/deployment.json`` is rewritten atomically on each change.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from spark_models.processes import (
    MARKER_ENV,
    die_with_parent,
    free_port,
    log_tail,
    process_start_time,
    write_json_atomically,
)

_logger = logging.getLogger(__name__)

STATE_FILE = "deployment.json"
DEFAULT_TIMEOUT = 300.0
DRAIN_SECONDS = 30.0
FAST_CRASH_SECONDS = 60.0
MAX_FAST_CRASHES = 5
_STOP_SECONDS = 15.0


class Backend:
    """One ``serve`` process on a private port; ``active`` counts the proxied connections to it."""

    def __init__(self, model_uri: str, config: dict, log_path: Path):
        self.model_uri, self.config, self.log_path = model_uri, config, log_path
        self.port = free_port()
        args = [sys.executable, "-m", "spark_models.cli", "serve", "-m", model_uri, "-h", "127.0.0.1",
                "-p", str(self.port), "--workers", str(config.get("workers", 1)),
                "--env-manager", config.get("env_manager", "local")]
        if config.get("allow_code") is not None:
            args.append("--allow-code" if config["allow_code"] else "--no-allow-code")
        with open(log_path, "ab") as log:
            # its own process group, so stopping it also stops the workers it forks; preexec_fn is safe
            # here: the supervisor runs no threads
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True, preexec_fn=die_with_parent)
        self.started = time.monotonic()
        self.start_time = process_start_time(self.proc.pid)
        self.active = 0
        self.retired = False

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def describe(self) -> dict:
        return {"pid": self.proc.pid, "port": self.port, "start_time": self.start_time, "log": str(self.log_path),
                "model_uri": self.model_uri}

    async def healthy(self) -> bool:
        """``GET /health`` answers 200."""
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", self.port), 2)
        except (OSError, asyncio.TimeoutError):
            return False
        try:
            writer.write(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            line = await asyncio.wait_for(reader.readline(), 5)
            return line.split()[1:2] == [b"200"]
        except (OSError, asyncio.TimeoutError):
            return False
        finally:
            writer.close()

    async def wait_healthy(self, timeout: float) -> str | None:
        """None once healthy; else why not (it exited, or ``timeout`` passed)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive:
                return f"the serve process exited (code {self.proc.returncode})"
            if await self.healthy():
                return None
            await asyncio.sleep(0.2)
        return f"the serve process was not healthy within {timeout:g} s"

    async def stop(self) -> None:
        """SIGTERM its process group, SIGKILL after a while; reaped."""
        self.retired = True
        for sig, wait in ((signal.SIGTERM, _STOP_SECONDS), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(self.proc.pid, sig)
            except (ProcessLookupError, PermissionError):
                pass
            deadline = time.monotonic() + wait
            while self.alive and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            if not self.alive:
                break
        try:  # workers the server forked may outlive it briefly
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


class Supervisor:
    """The event loop's state: the current backend, the proxy, the control socket and the state file."""

    def __init__(self, directory: Path, name: str, model_uri: str, config: dict, control_socket: str):
        self.dir, self.name, self.control_socket = directory, name, control_socket
        self.model_uri, self.config = model_uri, config
        self.host, self.port = config.get("host", "127.0.0.1"), int(config["port"])
        self.current: Backend | None = None
        self.backends: list[Backend] = []
        self.serial = 0
        self.restarts = 0
        self.fast_crashes = 0
        self.status = "starting"
        self.error: str | None = None
        self.created = self.updated = time.time()
        self.lock = asyncio.Lock()
        self.stopping = asyncio.Event()
        self.tasks: set[asyncio.Task] = set()

    def write_state(self) -> None:
        url_host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        doc = {
            "name": self.name, "model_uri": self.model_uri, "flavor": "python_function", "host": self.host,
            "port": self.port, "url": f"http://{url_host}:{self.port}", "status": self.status, "error": self.error,
            "config": self.config, "supervisor": {"pid": os.getpid(), "start_time": process_start_time(os.getpid()),
                                                  "log": str(self.dir / "supervisor.log")},
            "backend": self.current.describe() if self.current else None, "control_socket": self.control_socket,
            "created": self.created, "updated": self.updated, "restarts": self.restarts,
        }
        write_json_atomically(self.dir / STATE_FILE, doc)

    def _spawn(self, model_uri: str, config: dict) -> Backend:
        self.serial += 1
        backend = Backend(model_uri, config, self.dir / f"serve-{self.serial}.log")
        self.backends.append(backend)
        _logger.info("Started backend %d (pid %d, port %d) for %s", self.serial, backend.proc.pid, backend.port,
                     model_uri)
        return backend

    def _background(self, coro) -> None:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _retire(self, backend: Backend) -> None:
        """Let the connections to ``backend`` finish (bounded), then stop it."""
        backend.retired = True
        deadline = time.monotonic() + DRAIN_SECONDS
        while backend.active and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        await backend.stop()
        self.backends.remove(backend)
        _logger.info("Stopped backend pid %d (%d connection(s) left)", backend.proc.pid, backend.active)

    async def start_first(self) -> bool:
        async with self.lock:
            backend = self._spawn(self.model_uri, self.config)
            self.current = backend
            self.write_state()
            error = await backend.wait_healthy(float(self.config.get("timeout", DEFAULT_TIMEOUT)))
            if error:
                self.status, self.error = "failed", f"{error}; log {backend.log_path}"
                _logger.error("Deployment %s failed to start: %s", self.name, self.error)
            else:
                self.status = "ready"
            self.write_state()
            return error is None

    async def update(self, model_uri: str | None, config: dict | None) -> dict:
        """Start the new backend; once healthy, switch new connections to it and retire the old one."""
        async with self.lock:
            model_uri = model_uri or self.model_uri
            config = {**self.config, **(config or {})}
            previous, self.status = self.status, "updating"
            self.write_state()
            backend = self._spawn(model_uri, config)
            error = await backend.wait_healthy(float(config.get("timeout", DEFAULT_TIMEOUT)))
            if error:
                await backend.stop()
                self.backends.remove(backend)
                self.status = previous
                self.write_state()
                return {"ok": False, "error": error, "log": str(backend.log_path),
                        "log_tail": log_tail(backend.log_path)}
            old, self.current = self.current, backend
            self.model_uri, self.config, self.updated = model_uri, config, time.time()
            self.status, self.error, self.fast_crashes = "ready", None, 0
            self.write_state()
            if old is not None:
                self._background(self._retire(old))
            _logger.info("Deployment %s now serves %s", self.name, model_uri)
            return {"ok": True, "state": json.loads((self.dir / STATE_FILE).read_text())}

    async def monitor(self) -> None:
        """Restart a current backend that died; give up after ``MAX_FAST_CRASHES`` fast crashes."""
        while not self.stopping.is_set():
            await asyncio.sleep(0.25)
            backend = self.current
            if backend is None or backend.alive or backend.retired or self.lock.locked():
                continue
            async with self.lock:
                if backend is not self.current or self.stopping.is_set():
                    continue
                uptime = time.monotonic() - backend.started
                self.fast_crashes = self.fast_crashes + 1 if uptime < FAST_CRASH_SECONDS else 1
                _logger.error("Backend pid %d died (code %s) after %.0f s; log tail:\n%s", backend.proc.pid,
                              backend.proc.returncode, uptime, log_tail(backend.log_path, 10))
                await backend.stop()  # the workers it forked, if any
                self.backends.remove(backend)
                if self.fast_crashes >= MAX_FAST_CRASHES:
                    self.current, self.status = None, "failed"
                    self.error = f"the backend crashed {self.fast_crashes} times in a row; log {backend.log_path}"
                    _logger.error("Giving up on deployment %s: %s", self.name, self.error)
                    self.write_state()
                    continue
                await asyncio.sleep(min(0.5 * 2 ** (self.fast_crashes - 1), 8.0))
                self.restarts += 1
                self.current, self.status = self._spawn(self.model_uri, self.config), "starting"
                self.write_state()
                error = await self.current.wait_healthy(float(self.config.get("timeout", DEFAULT_TIMEOUT)))
                self.status, self.error = ("ready", None) if error is None else ("starting", error)
                self.write_state()

    async def _backend_connection(self) -> tuple[Backend, Any, Any] | None:
        """A connection to the current backend (counted in its ``active``), waiting (bounded) while one restarts."""
        deadline = time.monotonic() + 60.0
        while time.monotonic() < deadline and not self.stopping.is_set():
            backend = self.current
            if backend is not None and backend.alive:
                backend.active += 1  # before connecting, so a retiring backend waits for this connection
                try:
                    reader, writer = await asyncio.open_connection("127.0.0.1", backend.port)
                    return backend, reader, writer
                except OSError:
                    backend.active -= 1
            elif self.status == "failed":
                return None
            await asyncio.sleep(0.1)
        return None

    async def proxy(self, client_reader, client_writer) -> None:
        upstream = await self._backend_connection()
        if upstream is None:
            client_writer.close()
            return
        backend, reader, writer = upstream
        try:
            to_backend = asyncio.ensure_future(_pipe(client_reader, writer, half_close=True))
            await _pipe(reader, client_writer, half_close=False)
            to_backend.cancel()
        finally:
            backend.active -= 1
            writer.close()
            client_writer.close()

    async def control(self, reader, writer) -> None:
        try:
            request = json.loads(await asyncio.wait_for(reader.readline(), 10))
            op = request.get("op")
            if op == "status":
                reply = {"ok": True, "state": json.loads((self.dir / STATE_FILE).read_text())}
            elif op == "update":
                reply = await self.update(request.get("model_uri"), request.get("config"))
            elif op == "stop":
                reply = {"ok": True}
                self.stopping.set()
            else:
                reply = {"ok": False, "error": f"unknown request {op!r}"}
        except (ValueError, AttributeError, asyncio.TimeoutError) as e:
            reply = {"ok": False, "error": f"bad control request: {e}"}
        try:
            writer.write(json.dumps(reply).encode() + b"\n")
            await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()

    async def shutdown(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*(b.stop() for b in self.backends), return_exceptions=True)
        self.current, self.status = None, "stopped" if self.status != "failed" else "failed"
        self.write_state()


async def _pipe(reader, writer, *, half_close: bool) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        if half_close and writer.can_write_eof():
            writer.write_eof()
    except (OSError, asyncio.IncompleteReadError):
        pass


async def run(supervisor: Supervisor) -> int:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, supervisor.stopping.set)
    public = await asyncio.start_server(supervisor.proxy, supervisor.host, supervisor.port, reuse_address=True)
    control = await asyncio.start_unix_server(supervisor.control, supervisor.control_socket)
    os.chmod(supervisor.control_socket, 0o600)
    _logger.info("Deployment %s: proxy on %s:%d, control socket %s", supervisor.name, supervisor.host,
                 supervisor.port, supervisor.control_socket)
    code = 0
    if await supervisor.start_first():
        watcher = asyncio.ensure_future(supervisor.monitor())
        await supervisor.stopping.wait()
        watcher.cancel()
    else:
        code = 1
    public.close()
    control.close()
    await supervisor.shutdown()
    try:
        os.unlink(supervisor.control_socket)
    except OSError:
        pass
    _logger.info("Deployment %s stopped", supervisor.name)
    return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="spark_models.deployments.supervisor")
    parser.add_argument("--dir", required=True, type=Path)
    parser.add_argument("--name", required=True)
    parser.add_argument("--model-uri", required=True)
    parser.add_argument("--config", required=True, help="JSON object")
    parser.add_argument("--socket", required=True)
    args = parser.parse_args(argv)
    os.environ[MARKER_ENV] = str(args.dir.absolute())  # inherited by every backend
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    supervisor = Supervisor(args.dir.absolute(), args.name, args.model_uri, json.loads(args.config), args.socket)
    try:
        return asyncio.run(run(supervisor))
    except OSError as e:  # the public port or the control socket cannot be bound
        supervisor.status, supervisor.error = "failed", str(e)
        supervisor.write_state()
        _logger.error("Deployment %s cannot start: %s", args.name, e)
        return 1


if __name__ == "__main__":
    sys.exit(main())
