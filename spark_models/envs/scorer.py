"""``EnvScorer``: a persistent child process scoring one model in the model's own environment.

The child (:mod:`spark_models.envs.child`) loads the model once; batches go to it over pipes
(:mod:`spark_models.envs.protocol`). A child that crashes in a batch is restarted once and
given the batch again; a batch or a load that outlives its timeout kills the child.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from spark_models import exceptions
from spark_models.envs import protocol
from spark_models.envs.options import Timeouts
from spark_models.envs.overlay import code_overlay
from spark_models.exceptions import ModelEnvironmentError, ScorerProcessError, ScorerTimeoutError
from spark_models.processes import HAS_PARENT_DEATH_SIGNAL, die_with_parent, log_tail

try:
    import fcntl
except ImportError:  # not POSIX: pipes keep their default size
    fcntl = None

_logger = logging.getLogger(__name__)

# The child must not import modules from the current directory (``-c`` puts it first on sys.path).
_BOOT = "import sys; del sys.path[0]; from spark_models.envs.child import main; sys.exit(main())"
_DROPPED_ENV = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP", "PYTHONSAFEPATH")
_TAIL_LINES = 40
_CLOSE_SECONDS = 5.0
_PIPE_BYTES = 1 << 20
_F_SETPIPE_SZ = 1031  # Linux


_spawner: tuple[int, Any] | None = None
_spawner_lock = threading.Lock()


def _spawn(*args: Any, **kwargs: Any) -> subprocess.Popen:
    """``Popen`` from a thread that lives as long as this process: the kernel's parent-death
    signal fires when the *thread* that forked the child ends (a server's pool thread may)."""
    global _spawner
    if threading.current_thread() is threading.main_thread() or not HAS_PARENT_DEATH_SIGNAL:
        return subprocess.Popen(*args, **kwargs)
    with _spawner_lock:
        if _spawner is None or _spawner[0] != os.getpid():  # none yet, or one of the parent before a fork
            from concurrent.futures import ThreadPoolExecutor

            _spawner = (os.getpid(), ThreadPoolExecutor(1, thread_name_prefix="scorer-spawner"))
        executor = _spawner[1]
    return executor.submit(subprocess.Popen, *args, **kwargs).result()


def _exit_status(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


class EnvScorer:
    """Scores one model in a child process running ``python`` (the model environment's
    interpreter). ``predict`` behaves like ``PyFuncModel.predict``; the child starts on first
    use (or :meth:`start`) and lives until :meth:`close`. Thread-safe: one batch at a time.

    The child dies with this process: it watches its parent, and on Linux the kernel kills it
    when the parent dies."""

    def __init__(self, python: str | Path, model_dir: str | Path, *, model_uri: str, env_key: str,
                 log_path: Path, allow_code: bool = True, model_config: dict | None = None,
                 timeouts: Timeouts = Timeouts(), extra_env: dict[str, str] | None = None):
        self.python = str(python)
        self.model_dir = str(Path(model_dir).absolute())
        self.model_uri = model_uri
        self.env_key = env_key
        self.log_path = Path(log_path)
        self.allow_code = allow_code
        self.model_config = model_config
        self.timeouts = Timeouts.of(timeouts)
        self.extra_env = dict(extra_env or {})
        self.info: dict[str, Any] = {}  # the child's READY message: pid, python, versions
        self._proc: subprocess.Popen | None = None
        self._pipe: protocol.Pipe | None = None
        self._owner = os.getpid()
        self._lock = threading.Lock()

    @property
    def pid(self) -> int | None:
        """The child's process id while it runs."""
        proc = self._proc
        return proc.pid if proc is not None and self._owner == os.getpid() and proc.poll() is None else None

    def _where(self) -> str:
        return f"model {self.model_uri!r}, environment {self.env_key}, log {self.log_path}"

    def start(self) -> None:
        """Start the child and wait (up to ``timeouts.load``) until it has loaded the model."""
        with self._lock:
            if not self._alive():
                self._start()

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        """Score ``data`` in the child, like ``PyFuncModel.predict``; starts the child if needed."""
        frames = protocol.encode(data)
        with self._lock:
            if not self._alive():
                self._start()
            try:
                kind, head, reply = self._exchange(frames, params)
            except ScorerTimeoutError:
                raise
            except ScorerProcessError as first:  # a crash (model errors come back as messages)
                _logger.warning("The scorer process crashed (%s); restarting it once for this batch", first)
                self._start()
                try:
                    kind, head, reply = self._exchange(frames, params)
                except ScorerTimeoutError:
                    raise
                except ScorerProcessError as second:
                    raise ScorerProcessError(f"After a restart: {second}") from None
        if kind == protocol.ERROR:
            raise self._model_error(head)
        try:
            output = protocol.decode(reply)
        except Exception as e:  # e.g. a pickled output whose classes this process cannot import
            raise ScorerProcessError(f"cannot read the model's output from the scorer process: {e} "
                                     f"({self._where()})") from None
        from spark_models.pyfunc.outputs import align_output

        return align_output(output, data)

    def _exchange(self, frames: list, params: dict[str, Any] | None) -> tuple[bytes, dict[str, Any], list]:
        """One request → ``(OUTPUT or ERROR, head, frames)``, with the batch deadline. A crash
        raises ScorerProcessError with the exit status and the log's tail."""
        kind, head, reply = self._ask(
            protocol.REQUEST, {"params": params}, frames, seconds=self.timeouts.batch, during="",
            late=f"The scorer process took longer than {self.timeouts.batch:g}s to score a batch and was killed")
        if kind not in (protocol.OUTPUT, protocol.ERROR):
            self._kill()
            raise ScorerProcessError(f"The scorer protocol broke: a {kind!r} message instead of an output ({self._where()})")
        return kind, head, reply

    def _ask(self, kind: bytes, head: dict[str, Any], frames: list, *, seconds: float, late: str,
             during: str) -> tuple[bytes, dict[str, Any], list]:
        """Send one message and receive the answer within ``seconds``; a timeout kills the child."""
        pipe = self._pipe
        pipe.deadline = time.monotonic() + seconds
        try:
            pipe.send(kind, head, frames or ())
            return pipe.receive()
        except ScorerTimeoutError:
            self._kill()
            raise ScorerTimeoutError(f"{late} ({self._where()})") from None
        except ScorerProcessError as e:
            raise self._crashed(f"{during}{e}") from None

    def _start(self) -> None:
        self._kill()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = self._child_env(code_overlay())
        try:
            with open(self.log_path, "ab") as log:
                proc = _spawn([self.python, "-c", _BOOT], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=log, env=env, bufsize=0, close_fds=True,
                                        preexec_fn=die_with_parent if HAS_PARENT_DEATH_SIGNAL else None)
        except OSError as e:
            raise ModelEnvironmentError(f"cannot run the environment's python {self.python}: {e} ({self._where()})") from None
        self._proc, self._owner = proc, os.getpid()
        self._pipe = protocol.Pipe(proc.stdout.fileno(), proc.stdin.fileno())
        for fd in (proc.stdout.fileno(), proc.stdin.fileno()):
            os.set_blocking(fd, False)
            try:
                if fcntl is not None:
                    fcntl.fcntl(fd, _F_SETPIPE_SZ, _PIPE_BYTES)
            except OSError:
                pass  # bigger pipes are only faster
        self._handshake()

    def _handshake(self) -> None:
        config = {"model_dir": self.model_dir, "allow_code": self.allow_code, "model_config": self.model_config}
        kind, head, _ = self._ask(
            protocol.CONFIG, config, [], seconds=self.timeouts.load, during="while loading the model: ",
            late=f"The scorer process did not load the model within {self.timeouts.load:g}s and was killed")
        if kind == protocol.ERROR:
            self._reap()  # it exits after reporting
            raise self._model_error(head, "loading the model")
        if kind != protocol.READY:
            self._kill()
            raise ScorerProcessError(f"The scorer protocol broke: a {kind!r} message instead of ready ({self._where()})")
        self.info = {k: v for k, v in head.items() if k != "frames"}
        _logger.info("Scorer process %s loaded %s in environment %s (python %s)", head.get("pid"), self.model_uri,
                     self.env_key, head.get("python"))

    def _child_env(self, overlay: Path) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in _DROPPED_ENV}
        env.update(self.extra_env)
        extra_path = self.extra_env.get("PYTHONPATH")
        env["PYTHONPATH"] = os.pathsep.join([str(overlay)] + ([extra_path] if extra_path else []))
        env["PYTHONNOUSERSITE"] = "1"
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def _alive(self) -> bool:
        if self._proc is not None and self._owner != os.getpid():
            self._proc = self._pipe = None  # a forked copy of us: that child belongs to the parent
        return self._proc is not None and self._proc.poll() is None

    def _crashed(self, what: str) -> ScorerProcessError:
        """The error for a child that died (reaped here), with its exit status and stderr tail."""
        code = self._reap()
        tail = log_tail(self.log_path, _TAIL_LINES)
        return ScorerProcessError(f"The scorer process failed ({what}; {_exit_status(code)}) ({self._where()})"
                                  + (f"; the end of its log:\n{tail}" if tail else ""))

    def _model_error(self, head: dict[str, Any], doing: str = "predict") -> Exception:
        name = head.get("class", "")
        cls = getattr(exceptions, name, None)
        if not (isinstance(cls, type) and issubclass(cls, exceptions.SparkModelsError)):
            cls = ScorerProcessError
        _logger.debug("The scorer process's traceback:\n%s", head.get("traceback", ""))
        return cls(f"{head.get('message', '')} [{name} in the scorer process, {doing}; {self._where()}]")

    def _reap(self) -> int | None:
        """Wait briefly for a child that is exiting; kill it if it does not. Its exit code."""
        proc = self._proc
        if proc is None:
            return None
        try:
            code = proc.wait(timeout=_CLOSE_SECONDS)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
        self._release()
        return code

    def _kill(self) -> None:
        proc = self._proc
        if proc is not None and self._owner == os.getpid():
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        self._release()

    def _release(self) -> None:
        proc, self._proc, self._pipe = self._proc, None, None
        if proc is not None and self._owner == os.getpid():
            for stream in (proc.stdin, proc.stdout):
                try:
                    stream.close()
                except OSError:
                    pass

    def close(self) -> None:
        """Stop the child: close its input (it exits), kill it if it lingers."""
        with self._lock:
            proc = self._proc
            if proc is None or self._owner != os.getpid():
                self._proc = self._pipe = None
                return
            try:
                proc.stdin.close()
            except OSError:
                pass
            self._reap()

    def __enter__(self) -> "EnvScorer":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


_shared: dict[tuple, EnvScorer] = {}
_shared_lock = threading.Lock()


def shared_scorer(python: str | Path, model_dir: str | Path, **kwargs: Any) -> EnvScorer:
    """The process-wide :class:`EnvScorer` of this interpreter, model, ``allow_code`` and
    ``model_config`` (made with ``kwargs`` the first time); all are closed at exit."""
    config = json.dumps(kwargs.get("model_config"), sort_keys=True, default=repr)
    key = (str(python), str(Path(model_dir).absolute()), kwargs.get("allow_code", True), config)
    with _shared_lock:
        scorer = _shared.get(key)
        if scorer is None:
            if not _shared:
                atexit.register(_close_shared)
            scorer = _shared[key] = EnvScorer(python, model_dir, **kwargs)
        return scorer


def _close_shared() -> None:
    with _shared_lock:
        scorers = list(_shared.values())
        _shared.clear()
    for scorer in scorers:
        try:
            scorer.close()
        except Exception:  # exiting anyway
            _logger.debug("closing a scorer failed", exc_info=True)
