"""The ``Rscript`` process that scores crates, and the protocol it speaks (see ``crate_server.R``).

One process per crate file per Python process (:func:`r_process`), started when the model loads
and reused for every batch; it is stopped when the last model using it is garbage collected or
at interpreter exit, and it exits by itself when its Python process goes away (its stdin closes).
A crate that raises an R error leaves the process running; a process that dies is restarted
by the next call.

Messages, both ways: 4 ASCII bytes of kind, 12 ASCII digits of payload length, the payload.
Requests go on the process's stdin (``PARM`` params frame, ``PRED`` data frame, ``STOP``);
answers come on a pipe of their own (``REDY``, ``VECT``/``FRAM``/``FRMR`` result, ``FAIL``
message), so whatever the crate prints cannot corrupt them: R's own output is logged. A frame
is UTF-8: one line of column types, then CSV (R's ``read.csv``/``write.csv``) with a header
row. Strings carry a leading ``s`` so that an unquoted ``NA`` is the only missing value (NaN,
None, NaT ↔ NA); towards R, backslashes, CR and LF in them are escaped (R's ``allowEscapes``);
doubles travel as hex (``float.hex`` / R's ``%a``), exact both ways.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import os
import shutil
import subprocess
import threading
import weakref
from collections import deque
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from spark_models.exceptions import (
    InvalidArgumentError,
    MalformedModelError,
    MissingDependencyError,
    ModelOutputError,
    SchemaEnforcementError,
    SparkModelsError,
)

_logger = logging.getLogger(__name__)

RSCRIPT_ENV = "SPARK_MODELS_RSCRIPT"
"""Path of the ``Rscript`` to run (default: the one on ``PATH``)."""
INSTALL_HINT = "install R (Debian/Ubuntu: apt-get install -y r-base-core; elsewhere see https://cloud.r-project.org)"
_INT32 = 2**31 - 1
_starts = 0
_starts_lock = threading.Lock()
_processes: weakref.WeakValueDictionary[tuple[Any, ...], RProcess] = weakref.WeakValueDictionary()


class RFunctionError(SparkModelsError, RuntimeError):
    """The R function of a crate raised an error, or its R process died (the message says which)."""


def process_starts() -> int:
    """How many R processes this Python process has started (for tests and monitoring)."""
    return _starts


def rscript() -> str:
    """The ``Rscript`` executable: ``$SPARK_MODELS_RSCRIPT``, else ``Rscript`` on ``PATH``."""
    configured = os.environ.get(RSCRIPT_ENV)
    found = shutil.which(configured or "Rscript")
    if found is None:
        where = f"{RSCRIPT_ENV}={configured!r} is not an executable" if configured else "Rscript is not on PATH"
        raise MissingDependencyError(f"Scoring an R crate needs R, but {where}: {INSTALL_HINT}")
    return found


def _server_script() -> str:
    script = resources.files(__package__) / "crate_server.R"
    if not script.is_file():
        raise MissingDependencyError(f"spark-models was installed without its R script {script}; reinstall it")
    return str(script)


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    locale = env.get("LC_ALL") or env.get("LC_CTYPE") or env.get("LANG") or ""
    if "utf-8" not in locale.lower() and "utf8" not in locale.lower():
        env["LC_ALL"] = "C.UTF-8"  # strings are UTF-8 both ways; a C locale would take them as bytes
    return env


def pack_crate(source: str | os.PathLike, target: str | os.PathLike, *, timeout: float = 300) -> None:
    """Write ``source`` (an RDS file of a crate, or MLflow's ``crate.bin``) to ``target`` as MLflow R
    writes ``crate.bin``; InvalidArgumentError when it holds no crate."""
    args = [rscript(), "--vanilla", _server_script(), "pack", os.fspath(source), os.fspath(target)]
    done = subprocess.run(args, capture_output=True, text=True, env=_child_env(), timeout=timeout, check=False)
    message = (done.stderr.strip() or done.stdout.strip())[-4000:]
    if done.returncode == 2:
        raise InvalidArgumentError(f"Cannot save {os.fspath(source)!r} as a crate: {message}")
    if done.returncode != 0:
        raise RFunctionError(f"Rscript failed (exit code {done.returncode}) writing a crate: {message}")


# ---- frames ---------------------------------------------------------------------------------

def _hex(values: np.ndarray) -> list[str]:
    return ["NA" if math.isnan(v) else v.hex() for v in values.astype(np.float64).tolist()]


def _escaped(text: str) -> str:
    """``text`` for R's ``read.csv(allowEscapes = TRUE)``, which would turn a raw CR LF into LF."""
    return text.replace("\\", "\\\\").replace("\r", "\\r").replace("\n", "\\n")


def _marked(values: Any, missing: np.ndarray) -> list[str]:
    return ["NA" if m else f"s{_escaped(v)}" for v, m in zip(values, missing)]


def _integers(series: pd.Series, missing: np.ndarray) -> tuple[str, list[str]]:
    present = series[~missing]
    if len(present) and (present.min() < -_INT32 or present.max() > _INT32):
        return "numeric", _hex(series.to_numpy(dtype=np.float64, na_value=np.nan))
    values = series.to_numpy(dtype=object, na_value=None)
    return "integer", ["NA" if m else str(int(v)) for v, m in zip(values, missing)]


def _datetimes(series: pd.Series, missing: np.ndarray) -> tuple[str, list[str]]:
    stamps = pd.to_datetime(series)
    if stamps.dt.tz is not None:
        stamps = stamps.dt.tz_convert("UTC").dt.tz_localize(None)
    text = stamps.dt.strftime("%Y-%m-%dT%H:%M:%S.%f").to_numpy(dtype=object)
    return "datetime", ["NA" if m else v for v, m in zip(text, missing)]


def _objects(name: str, series: pd.Series, missing: np.ndarray) -> tuple[str, list[str]]:
    kind = pd.api.types.infer_dtype(series, skipna=True)
    if kind in ("string", "empty"):
        return "character", _marked(series.tolist(), missing)
    if kind == "boolean":
        return "logical", ["NA" if m else ("TRUE" if v else "FALSE") for v, m in zip(series.tolist(), missing)]
    if kind == "integer":
        return _integers(series.where(~missing, None).astype("Int64"), missing)
    if kind in ("floating", "mixed-integer-float", "decimal"):
        return "numeric", _hex(np.array([np.nan if m else float(v) for v, m in zip(series.tolist(), missing)]))
    if kind in ("datetime", "datetime64"):
        return _datetimes(series, missing)
    if kind == "date":
        return "date", ["NA" if m else v.isoformat() for v, m in zip(series.tolist(), missing)]
    raise SchemaEnforcementError(
        f"Column {name!r} holds {kind} values, which have no R counterpart here: pass numbers, strings, "
        "booleans, dates or timestamps")


def _column_to_text(name: str, series: pd.Series) -> tuple[str, list[str]]:
    """The R type and CSV cells of one column."""
    missing = series.isna().to_numpy(dtype=bool)
    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return _objects(name, series.astype(object), missing)
    if pd.api.types.is_bool_dtype(dtype):
        return "logical", ["NA" if m else ("TRUE" if v else "FALSE") for v, m in zip(series.tolist(), missing)]
    if pd.api.types.is_integer_dtype(dtype):
        return _integers(series, missing)
    if pd.api.types.is_float_dtype(dtype):
        return "numeric", _hex(series.to_numpy(dtype=np.float64, na_value=np.nan))
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return _datetimes(series, missing)
    return _objects(name, series, missing)


def encode_frame(frame: pd.DataFrame) -> bytes:
    """A frame as the R side reads it (types line, then CSV)."""
    if frame.shape[1] == 0:
        raise SchemaEnforcementError("The input has no columns: an R crate is called on a data.frame of them")
    names = [str(c) for c in frame.columns]
    typed = [_column_to_text(name, frame.iloc[:, i]) for i, name in enumerate(names)]
    buffer = io.StringIO()
    buffer.write(",".join(t for t, _ in typed) + "\n")
    writer = csv.writer(buffer, lineterminator="\n", quoting=csv.QUOTE_ALL)  # R reads escapes only quoted
    writer.writerow([_escaped(name) for name in names])
    writer.writerows(zip(*(cells for _, cells in typed)))
    return buffer.getvalue().encode("utf-8")


def encode_params(params: Mapping[str, Any]) -> bytes:
    """Params as a one-row frame: each becomes a named argument of the R function."""
    bad = [k for k, v in params.items() if not (v is None or isinstance(v, (str, bool, int, float, np.generic)))]
    if bad:
        raise InvalidArgumentError(f"Param {bad[0]!r} is not a scalar: an R crate takes str, int, float or bool params")
    return encode_frame(pd.DataFrame({k: [v] for k, v in params.items()}))


def _column_from_text(kind: str, cells: tuple[str, ...]) -> Any:
    missing = [c == "NA" for c in cells]
    if kind == "numeric":
        return np.array([np.nan if m else float.fromhex(c) for c, m in zip(cells, missing)], dtype=np.float64)
    if kind == "integer":
        if any(missing):
            return np.array([np.nan if m else float(c) for c, m in zip(cells, missing)], dtype=np.float64)
        return np.array([int(c) for c in cells], dtype=np.int64)
    if kind == "logical":
        values = [None if m else c == "TRUE" for c, m in zip(cells, missing)]
        return np.array(values, dtype=object if any(missing) else bool)
    if kind == "character":
        return np.array([None if m else c[1:] for c, m in zip(cells, missing)], dtype=object)
    if kind in ("datetime", "date"):
        fmt = "%Y-%m-%dT%H:%M:%S.%f" if kind == "datetime" else "%Y-%m-%d"
        return pd.to_datetime(pd.Series([None if m else c for c, m in zip(cells, missing)], dtype=object), format=fmt)
    raise ModelOutputError(f"The R side sent a column of unknown type {kind!r}")


def decode_result(kind: str, payload: bytes) -> pd.Series | pd.DataFrame:
    """An R result: ``VECT`` → Series, ``FRAM`` → DataFrame; ``FRMR`` has R's row names first and
    is put back in input order when they are a permutation of the input rows."""
    first, _, body = payload.decode("utf-8").partition("\n")
    types = first.split(",")
    rows = list(csv.reader(io.StringIO(body, newline="")))
    header, rows = rows[0], rows[1:]
    columns = list(zip(*rows)) if rows else [()] * len(types)
    frame = pd.DataFrame({i: _column_from_text(t, c) for i, (t, c) in enumerate(zip(types, columns))})
    frame.columns = header
    if kind == "VECT":
        return frame.iloc[:, 0].rename(None)
    if kind == "FRMR":
        names, frame = frame.iloc[:, 0], frame.iloc[:, 1:]
        if names.is_unique and set(names) == {str(i) for i in range(1, len(frame) + 1)}:
            frame = frame.set_axis(names.astype(int) - 1, axis=0).sort_index()
    return frame.reset_index(drop=True)


# ---- the process ----------------------------------------------------------------------------

def _header(kind: str, size: int) -> bytes:
    return f"{kind}{size:012d}".encode("ascii")


class _Session:
    """One running ``Rscript ... serve``: its pipes, the thread logging its output, its last lines."""

    def __init__(self, crate_path: Path):
        global _starts
        response_read, response_write = os.pipe()
        try:
            self.popen = subprocess.Popen(
                [rscript(), "--vanilla", _server_script(), "serve", str(crate_path), str(response_write)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                pass_fds=(response_write,), env=_child_env())
        except BaseException:
            os.close(response_read)
            raise
        finally:
            os.close(response_write)
        self.owner = os.getpid()
        self.label = f"R[{self.popen.pid}] {crate_path.name}"
        self.answers = os.fdopen(response_read, "rb")
        self.tail: deque[str] = deque(maxlen=30)
        self.drain = threading.Thread(target=self._log_output, name=f"{self.label} output", daemon=True)
        self.drain.start()
        with _starts_lock:
            _starts += 1
        _logger.debug("Started %s", self.label)

    def _log_output(self) -> None:
        for raw in iter(self.popen.stdout.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip()
            self.tail.append(line)
            if line.startswith("R warning: "):
                _logger.warning("%s: %s", self.label, line[11:])
            else:
                _logger.info("%s: %s", self.label, line)

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None and self.owner == os.getpid()

    def exchange(self, *messages: tuple[str, bytes]) -> tuple[str, bytes] | None:
        """Send ``messages``; the answer, or None when the process has gone."""
        try:
            for kind, payload in messages:
                self.popen.stdin.write(_header(kind, len(payload)))
                self.popen.stdin.write(payload)
            self.popen.stdin.flush()
        except (BrokenPipeError, OSError):
            return None
        return self.receive()

    def receive(self) -> tuple[str, bytes] | None:
        header = self.answers.read(16)
        if len(header) < 16:
            return None
        size = int(header[4:])
        payload = self.answers.read(size)
        return (header[:4].decode("ascii"), payload) if len(payload) == size else None

    def death(self) -> str:
        """How the process ended, with its last output."""
        code = self.stop()
        self.drain.join(timeout=2)
        output = "\n".join(self.tail) or "(no output)"
        return f"exited with code {code}; its last output:\n{output}"

    def stop(self, timeout: float = 5.0) -> int | None:
        """Stop and reap the process (a forked child leaves its parent's process alone)."""
        if self.owner != os.getpid():
            return None
        if self.popen.poll() is None:
            try:
                self.popen.stdin.write(_header("STOP", 0))
                self.popen.stdin.close()
            except OSError:
                pass
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        for stream in (self.popen.stdin, self.answers):
            try:
                stream.close()
            except OSError:
                pass
        return self.popen.returncode


class RProcess:
    """The R process of one crate file: :meth:`predict` sends a frame and returns R's answer."""

    def __init__(self, crate_path: str | os.PathLike):
        self.crate_path = Path(crate_path)
        self._lock = threading.Lock()
        self._session: _Session | None = None
        self._finalizer: weakref.finalize | None = None
        self.r_version = ""
        with self._lock:
            self._start()

    def _start(self) -> _Session:
        if self._finalizer is not None:
            self._finalizer()  # the old session, if any, is stopped and reaped
        session = _Session(self.crate_path)
        self._session, self._finalizer = session, weakref.finalize(self, session.stop)
        answer = session.receive()
        if answer is None or answer[0] != "REDY":
            detail = answer[1].decode("utf-8", "replace") if answer else session.death()
            self._finalizer()
            self._session = None
            raise MalformedModelError(f"R could not load the crate {str(self.crate_path)!r}: {detail}")
        self.r_version = answer[1].decode("ascii", "replace")
        return session

    @property
    def pid(self) -> int | None:
        """The running R process's id (None when none runs)."""
        session = self._session
        return session.popen.pid if session is not None and session.alive else None

    def predict(self, frame: pd.DataFrame, params: Mapping[str, Any] | None = None) -> pd.Series | pd.DataFrame:
        """The crate's result on ``frame`` (and ``params`` as named arguments)."""
        messages = [("PARM", encode_params(params))] if params else []
        messages.append(("PRED", encode_frame(frame)))
        with self._lock:
            session = self._session if self._session is not None and self._session.alive else self._start()
            try:
                answer = session.exchange(*messages)
            except BaseException:  # e.g. KeyboardInterrupt mid-message: the stream is out of step
                session.stop()
                self._session = None
                raise
            if answer is None:
                how = session.death()
                self._session = None
                raise RFunctionError(f"The R process scoring {str(self.crate_path)!r} (pid {session.popen.pid}) "
                                     f"{how}\nThe next call starts a new one.")
        kind, payload = answer
        if kind == "FAIL":
            raise RFunctionError(f"The R function in {str(self.crate_path)!r} failed: "
                                 f"{payload.decode('utf-8', 'replace')}")
        return decode_result(kind, payload)

    def close(self) -> None:
        """Stop the R process now (a later :meth:`predict` starts another)."""
        with self._lock:
            if self._finalizer is not None:
                self._finalizer()
            self._session = None


def r_process(crate_path: str | os.PathLike) -> RProcess:
    """The R process serving ``crate_path`` in this Python process: shared by every model loaded
    from the same file while one of them is alive, else started now."""
    path = Path(crate_path).resolve()
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns, os.getpid())
    process = _processes.get(key)
    if process is None:
        process = _processes[key] = RProcess(path)
    return process
