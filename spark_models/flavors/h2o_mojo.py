"""Scoring H2O MOJOs without an H2O cluster: the genmodel classes in the h2o wheel's ``h2o.jar``.

Two ways to run them, both through genmodel's own ``hex.genmodel.tools.PredictCsv`` (what
``h2o.mojo_predict_pandas`` runs), so their output is that function's, column for column:

- ``"process"`` (default): one JVM per Python process, started on first use and kept; each
  MOJO is loaded into it once, and every ``predict`` hands it a CSV file. The JVM is a py4j
  ``GatewayServer`` on an ephemeral 127.0.0.1 port with a random auth token (so concurrent
  workers never share or fight over a port, and other local users cannot drive it); it exits
  when this process does (``--die-on-broken-pipe``). Needs py4j and its jar (PySpark ships both).
- ``"call"``: one ``java -cp h2o.jar ... PredictCsv`` process per ``predict`` call, as
  ``h2o.mojo_predict_pandas`` does (used when py4j's jar cannot be found).

Each batch goes through two new files in the temporary directory (``mkstemp``: unique names,
created exclusively, readable only by this user), deleted when the call returns. Nothing here
imports ``h2o`` or starts an H2O cluster.
The jar is always the installed wheel's, never a jar from the model directory (that would
run the model's code); a MOJO is data its reader (chosen by name from genmodel's classpath) reads.
"""

from __future__ import annotations

import atexit
import collections
import glob
import importlib.util
import logging
import os
import shlex
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from spark_models.exceptions import InvalidArgumentError, MissingDependencyError

_logger = logging.getLogger(__name__)

JVM_MODES = ("process", "call")
JAVA_OPTIONS_ENV = "SPARK_MODELS_H2O_JAVA_OPTIONS"
DEFAULT_JAVA_OPTIONS = ("-Xmx4g", "-XX:ReservedCodeCacheSize=256m")  # h2o.mojo_predict_csv's
PREDICT_CSV = "hex.genmodel.tools.PredictCsv"


def h2o_jar() -> Path:
    """The installed h2o wheel's ``h2o.jar`` (it holds genmodel), found without importing h2o."""
    spec = importlib.util.find_spec("h2o")
    if spec is None or not spec.origin:
        raise MissingDependencyError("Scoring an H2O MOJO needs the h2o package (its h2o.jar): pip install h2o")
    jar = Path(spec.origin).parent / "backend" / "bin" / "h2o.jar"
    if not jar.is_file():
        raise MissingDependencyError(
            f"The installed h2o package has no {jar} (the h2o_client distribution does not ship it): pip install h2o")
    return jar


def java_executable() -> str:
    """``$JAVA_HOME/bin/java``, else ``java`` on PATH."""
    home = os.environ.get("JAVA_HOME")
    candidate = Path(home) / "bin" / "java" if home else None
    if candidate is not None and candidate.is_file():
        return str(candidate)
    found = shutil.which("java")
    if found is None:
        raise MissingDependencyError("Scoring an H2O MOJO needs Java 8 or later: install a JRE or set JAVA_HOME")
    return found


def java_options(model_config: Mapping[str, Any]) -> tuple[str, ...]:
    """``model_config["java_options"]`` (a string or a list), else ``$SPARK_MODELS_H2O_JAVA_OPTIONS``,
    else h2o's defaults for PredictCsv."""
    raw = model_config.get("java_options")
    if raw is None:
        raw = os.environ.get(JAVA_OPTIONS_ENV) or None
    if raw is None:
        return DEFAULT_JAVA_OPTIONS
    if isinstance(raw, str):
        return tuple(shlex.split(raw))
    if isinstance(raw, (list, tuple)) and all(isinstance(o, str) for o in raw):
        return tuple(raw)
    raise InvalidArgumentError(f"java_options must be a string or a list of strings, got {raw!r}")


def py4j_jar() -> str | None:
    """py4j's jar of the installed py4j version (its own share dir, else PySpark's jars)."""
    try:
        import py4j
        from py4j.java_gateway import find_jar_path
    except ImportError:
        return None
    found = find_jar_path()
    if found and os.path.isfile(found):
        return found
    spec = importlib.util.find_spec("pyspark")
    if spec is not None and spec.origin:
        matches = glob.glob(str(Path(spec.origin).parent / "jars" / f"py4j-{py4j.__version__}.jar"))
        return matches[0] if matches else None
    return None


def _batch_files() -> tuple[Path, Path]:
    """Two new files only this user can read (``mkstemp``: unique, created exclusively, 0600)."""
    paths = []
    for suffix in ("-in.csv", "-out.csv"):
        fd, name = tempfile.mkstemp(prefix="spark-models-h2o-", suffix=suffix)
        os.close(fd)
        paths.append(Path(name))
    return paths[0], paths[1]


class _Gateway:
    """One py4j JVM with genmodel on its classpath, and the MOJOs loaded into it."""

    def __init__(self, java: str, options: Sequence[str]):
        from py4j.java_gateway import GatewayParameters, JavaGateway, launch_gateway

        jar = py4j_jar()
        self.stderr: collections.deque = collections.deque(maxlen=200)
        port, token, self.proc = launch_gateway(
            jarpath=jar, classpath=str(h2o_jar()), javaopts=list(options), java_path=java, die_on_exit=True,
            enable_auth=True, redirect_stderr=self.stderr, return_proc=True)
        self.gateway = JavaGateway(gateway_parameters=GatewayParameters(port=port, auth_token=token, auto_convert=True))
        self.models: dict[tuple, Any] = {}
        self.pid = os.getpid()
        _logger.info("Started a JVM (pid %s) to score H2O MOJOs", self.proc.pid)

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None and self.pid == os.getpid()

    def model(self, mojo: Path) -> Any:
        stat = mojo.stat()
        key = (str(mojo), stat.st_mtime_ns, stat.st_size)
        if key not in self.models:
            self.models[key] = self.gateway.jvm.hex.genmodel.MojoModel.load(str(mojo))
        return self.models[key]

    def predict_csv(self, mojo: Path, source: Path, target: Path) -> None:
        jvm = self.gateway.jvm
        args = ["--embedded", "--input", str(source), "--output", str(target), "--decimal"]
        array = self.gateway.new_array(jvm.java.lang.String, len(args))
        for i, arg in enumerate(args):
            array[i] = arg
        jvm.hex.genmodel.tools.PredictCsv.make(array, self.model(mojo)).run()

    def close(self) -> None:
        from py4j.protocol import Py4JError

        try:
            self.gateway.shutdown()
        except (Py4JError, OSError) as e:  # the JVM may already be gone
            _logger.debug("Shutting down the MOJO scoring JVM: %s", e)
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


_lock = threading.Lock()
_state: dict[str, Any] = {}


def _gateway(java: str, options: Sequence[str]) -> _Gateway:
    with _lock:
        gw = _state.get("gateway")
        if gw is not None and not gw.alive:
            if gw.pid == os.getpid():
                _logger.warning("The MOJO scoring JVM exited (%s); starting another", _tail(gw.stderr))
            gw = None
        if gw is None:
            gw = _state["gateway"] = _Gateway(java, options)
        return gw


def scoring_jvm_pid() -> int | None:
    """The pid of this process's MOJO scoring JVM (None when none is running)."""
    gw = _state.get("gateway")
    return gw.proc.pid if gw is not None and gw.alive else None


@atexit.register
def _shutdown() -> None:
    gw = _state.pop("gateway", None)
    if gw is not None and gw.pid == os.getpid():
        gw.close()


def _tail(lines: Any) -> str:
    text = "\n".join(str(line).rstrip() for line in list(lines)[-20:])
    return text or "no output"


def write_input(df: pd.DataFrame, path: Path) -> None:
    """The batch as PredictCsv reads it: a header of column names, missing values as empty cells."""
    frame = df.set_axis([str(c) for c in df.columns], axis=1)
    frame.to_csv(path, index=False)


class MojoScorer:
    """Scores one MOJO file; ``predict(df)`` returns PredictCsv's columns with ``df``'s index."""

    def __init__(self, mojo: Path, model_config: Mapping[str, Any] | None = None):
        config = dict(model_config or {})
        self.mojo = Path(mojo)
        self.mode = config.get("mojo_jvm", "process")
        if self.mode not in JVM_MODES:
            raise InvalidArgumentError(f"model_config['mojo_jvm'] must be one of {JVM_MODES}, got {self.mode!r}")
        self.java = java_executable()
        self.options = java_options(config)
        self.jar = h2o_jar()
        if self.mode == "process" and py4j_jar() is None:
            _logger.info("py4j's jar was not found: scoring the H2O MOJO with one JVM per predict call")
            self.mode = "call"

    def predict(self, df: pd.DataFrame) -> pd.DataFrame:
        source, target = _batch_files()
        try:
            write_input(df, source)
            if self.mode == "process":
                self._run_in_gateway(source, target)
            else:
                self._run_in_subprocess(source, target)
            out = pd.read_csv(target)
        finally:
            source.unlink(missing_ok=True)
            target.unlink(missing_ok=True)
        out.index = df.index
        return out

    def _run_in_gateway(self, source: Path, target: Path) -> None:
        from py4j.protocol import Py4JError, Py4JJavaError

        gw = _gateway(self.java, self.options)
        try:
            gw.predict_csv(self.mojo, source, target)
        except Py4JJavaError as e:
            raise InvalidArgumentError(
                f"The H2O MOJO {str(self.mojo)!r} could not score the batch: {_java_cause(e)}") from None
        except Py4JError as e:  # the JVM died during the call
            raise InvalidArgumentError(
                f"The MOJO scoring JVM failed on {str(self.mojo)!r}: {e}; its stderr: {_tail(gw.stderr)}") from None

    def _run_in_subprocess(self, source: Path, target: Path) -> None:
        command = [self.java, *self.options, "-cp", str(self.jar), PREDICT_CSV, "--mojo", str(self.mojo),
                   "--input", str(source), "--output", str(target), "--decimal"]
        proc = subprocess.run(command, check=False, capture_output=True, text=True)
        if proc.returncode != 0:
            lines = (proc.stdout + proc.stderr).strip().splitlines()
            detail = [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith(("at ", "..."))]
            raise InvalidArgumentError(f"The H2O MOJO {str(self.mojo)!r} could not score the batch: "
                                       f"{' | '.join(detail[-6:]) or f'PredictCsv exited with {proc.returncode}'}")


def _java_cause(error: Any) -> str:
    """The innermost Java exception's message (PredictCsv wraps it in 'Prediction failed on line n')."""
    throwable = error.java_exception
    messages = []
    while throwable is not None:
        messages.append(str(throwable.toString()))
        throwable = throwable.getCause()
    return "; caused by ".join(messages)
