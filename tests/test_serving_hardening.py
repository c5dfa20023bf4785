"""The scoring server under bad input, bad models, slow models and hostile connections.

App-level cases use Starlette's TestClient; timing and socket cases run ``spark-models serve``
as a real process on 127.0.0.1. Names only the new code has are imported inside the tests
that use them, so each test fails on its own against the code before these changes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from starlette.testclient import TestClient

import spark_models
import spark_models.pyfunc
from spark_models.exceptions import InvalidArgumentError, SchemaEnforcementError
from spark_models.schema.signature import ModelSignature
from spark_models.serving import create_app
from spark_models.serving.client import ScoringClient, ScoringServerError
from spark_models.types import ColSpec, Schema, TensorSpec

_logger = logging.getLogger(__name__)
_logger.info("spark_models imported from %s", spark_models.__file__)

SPLIT = "application/json"
RECORDS = "application/json; format=pandas-records"
LONG_X = ModelSignature(Schema([ColSpec("long", "n"), ColSpec("double", "x")]))


def _model_class(behaviour: str, delay: float = 0.0):
    """A PythonModel class made in a function, so cloudpickle saves it by value (a server process can load it)."""

    class Behaving(spark_models.pyfunc.PythonModel):
        def predict(self, context, model_input, params=None):
            if delay:
                time.sleep(delay)
            if behaviour == "double":
                return model_input["x"] * 2
            if behaviour == "sorted":
                return model_input["x"].sort_values() * 2
            if behaviour == "sorted_frame":
                return model_input.sort_values("x").assign(y=lambda d: d["x"] * 10)[["y"]]
            if behaviour == "short":
                return model_input["x"].iloc[:-1]
            if behaviour == "long":
                return list(model_input["x"]) + [0.0]
            if behaviour == "short_dict":
                return {"a": np.arange(len(model_input)), "b": np.arange(len(model_input) - 1)}
            if behaviour == "on_loop":
                try:
                    asyncio.get_running_loop()
                    return [True] * len(model_input)
                except RuntimeError:
                    return [False] * len(model_input)
            if behaviour == "raises_schema":
                raise SchemaEnforcementError("the model's own check failed")
            if behaviour == "raises_argument":
                raise InvalidArgumentError("the model's own argument check failed")
            raise AssertionError(behaviour)

    return Behaving


def _save(path, behaviour: str, signature=LONG_X, delay: float = 0.0):
    spark_models.pyfunc.save_model(path, python_model=_model_class(behaviour, delay)(), signature=signature)
    return path


def _client(tmp_path, behaviour: str = "double", signature=LONG_X, delay: float = 0.0) -> TestClient:
    path = _save(tmp_path / behaviour, behaviour, signature, delay)
    return TestClient(create_app(spark_models.pyfunc.load_model(str(path))), raise_server_exceptions=False)


def _post(client, body, content_type=SPLIT):
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return client.post("/invocations", content=data, headers={"Content-Type": content_type})


@pytest.fixture(scope="module")
def doubling(tmp_path_factory):
    return _client(tmp_path_factory.mktemp("doubling"))


# 1. Client data errors are 400 and say where --------------------------------------------------

_DEEP = "[" * 100_000


@pytest.mark.parametrize(
    "body, content_type, words",
    [
        ('{"columns": ["n", "x"], "data": [[1, NaN]]}', SPLIT, ["NaN", "'x'", "row 0"]),
        ('{"columns": ["n", "x"], "data": [[1, 1.0], [Infinity, 2.0]]}', SPLIT, ["Infinity", "'n'", "row 1"]),
        ('{"dataframe_records": [{"n": 1, "x": -Infinity}]}', SPLIT, ["-Infinity", "'x'", "row 0"]),
        ('{"inputs": {"n": [1, 2], "x": [1.0, NaN]}}', SPLIT, ["NaN", "'x'", "row 1"]),
        ('[{"n": 1, "x": 1.0}, {"x": 2.0}]', RECORDS, ["'n'", "record 1"]),
        ('{"dataframe_records": [{"n": 1, "x": 1.0}, {"n": 2}]}', SPLIT, ["'x'", "record 1"]),
        ('{"instances": [{"x": 1.0}, {"n": 2, "x": 2.0}]}', SPLIT, ["'n'", "record 0"]),
        (_DEEP, SPLIT, ["nested too deeply"]),
        ('{"inputs": ' + "[" * 100_000 + "]" * 100_000 + "}", SPLIT, ["nested too deeply"]),
        ('{"columns": ["n", "n", "x"], "data": [[1, 2, 3.0]]}', SPLIT, ["'n'"]),
    ],
    ids=["nan-double", "inf-long", "neg-inf-records", "nan-inputs",
         "records-missing-key", "dataframe-records-missing-key", "instances-missing-key", "deep-open",
         "deep-balanced", "duplicate-columns"],
)
def test_client_data_errors_are_400_naming_column_and_row(doubling, body, content_type, words):
    response = _post(doubling, body, content_type)
    assert response.status_code == 400, response.text
    payload = response.json()
    assert payload["error_code"] == "BAD_REQUEST"
    for word in words:
        assert word in payload["message"], payload["message"]


@pytest.mark.parametrize("body", ['{"inputs": [[1, Infinity]]}', '{"inputs": [[1, 99999999999999999999999]]}'],
                         ids=["infinity", "overflow"])
def test_out_of_range_tensor_values_are_400(tmp_path, body):
    client = _client(tmp_path, "double", ModelSignature(Schema([TensorSpec(np.dtype("int64"), (-1, 2), "t")])))
    response = _post(client, body)
    assert response.status_code == 400, response.text
    assert "row 0" in response.json()["message"] or "int64" in response.json()["message"]


def test_strict_json_still_scores_null_in_double_columns(doubling):
    response = _post(doubling, {"columns": ["n", "x"], "data": [[1, None], [2, 1.5]]})
    assert response.status_code == 200, response.text
    assert response.json() == {"predictions": [None, 3.0]}


@pytest.mark.parametrize("behaviour, words", [("raises_schema", "the model's own check failed"),
                                              ("raises_argument", "the model's own argument check failed")])
def test_errors_raised_inside_the_model_are_500_even_if_they_look_like_input_errors(tmp_path, behaviour, words):
    client = _client(tmp_path, behaviour)
    response = _post(client, {"columns": ["n", "x"], "data": [[1, 1.0]]})
    assert response.status_code == 500, response.text
    assert response.json()["error_code"] == "INTERNAL_ERROR" and words in response.json()["message"]


# 4. One row per input row ----------------------------------------------------------------------

@pytest.mark.parametrize("behaviour, words", [("short", ["2 rows", "3 input rows"]),
                                              ("long", ["4 rows", "3 input rows"]),
                                              ("short_dict", ["'b': 2", "3 input rows"])])
def test_a_model_returning_the_wrong_number_of_rows_is_500_naming_both_counts(tmp_path, behaviour, words):
    client = _client(tmp_path, behaviour)
    response = _post(client, {"columns": ["n", "x"], "data": [[1, 1.0], [2, 2.0], [3, 3.0]]})
    assert response.status_code == 500, response.text
    assert response.json()["error_code"] == "INTERNAL_ERROR"
    for word in words:
        assert word in response.json()["message"], response.json()["message"]


# 5. Output alignment ---------------------------------------------------------------------------

def test_a_sorted_series_comes_back_in_input_order(tmp_path):
    client = _client(tmp_path, "sorted")
    response = _post(client, {"columns": ["n", "x"], "data": [[1, 3.0], [2, 1.0], [3, 2.0]]})
    assert response.status_code == 200, response.text
    assert response.json() == {"predictions": [6.0, 2.0, 4.0]}


def test_a_sorted_frame_comes_back_in_input_order(tmp_path):
    client = _client(tmp_path, "sorted_frame")
    response = _post(client, [{"n": 1, "x": 3.0}, {"n": 2, "x": 1.0}, {"n": 3, "x": 2.0}], RECORDS)
    assert response.status_code == 200, response.text
    assert response.json() == {"predictions": [{"y": 30.0}, {"y": 10.0}, {"y": 20.0}]}


# 2. Where requests run: the event loop for fast models only ------------------------------------

def _ran_on_loop(client, times: int) -> list[bool]:
    answers = [_post(client, {"columns": ["n", "x"], "data": [[1, 1.0]]}) for _ in range(times)]
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
    return [a.json()["predictions"][0] for a in answers]


def test_a_fast_model_is_scored_on_the_event_loop_once_measured(tmp_path):
    # a threshold far above this model's time, so a busy machine cannot make it look slow
    path = _save(tmp_path / "on_loop", "on_loop")
    client = TestClient(create_app(spark_models.pyfunc.load_model(str(path)), inline_seconds=0.5),
                        raise_server_exceptions=False)
    on_loop = _ran_on_loop(client, 8)
    assert on_loop[0] is False and on_loop[-3:] == [True, True, True], on_loop  # unknown first: the pool


def test_a_slow_model_is_never_scored_on_the_event_loop(tmp_path):
    assert _ran_on_loop(_client(tmp_path, "on_loop", delay=0.05), 4) == [False] * 4


def test_inline_policy_probes_a_model_that_only_looks_slow_in_the_thread_pool():
    from spark_models.serving.scoring import INLINE_BODY_BYTES, InlinePolicy

    policy = InlinePolicy(threshold=0.002, probe_below=0.025, probe_every=60.0)
    assert not policy.inline(100)  # nothing measured yet
    policy.record(0.010, inline=False, body_bytes=100)  # 10 ms in the pool (GIL waits included)
    assert policy.inline(100) and not policy.inline(100)  # one probe, then the pool until probe_every
    policy.record(0.0005, inline=True, body_bytes=100)  # the probe was fast: trust it
    assert policy.inline(100) and policy.inline(100)
    assert not policy.inline(INLINE_BODY_BYTES + 1)
    policy.record(1.0, inline=True, body_bytes=100)  # it got slow: back to the pool, no probes
    assert policy.average > policy.threshold and not policy.inline(100)
    policy.record(5.0, inline=False, body_bytes=INLINE_BODY_BYTES + 1)  # large bodies do not count
    assert policy.average < 1.0


# Real server processes ---------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Server:
    """``spark-models serve`` in a subprocess (environment inherited, PYTHONPATH included)."""

    def __init__(self, model_path, env: dict[str, str] | None = None, options: tuple[str, ...] = ()):
        self.port = _free_port()
        args = [sys.executable, "-m", "spark_models.cli", "serve", "-m", str(model_path), "-p", str(self.port),
                *options]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
                                     env={**os.environ, **(env or {})})
        self.client = ScoringClient(f"http://127.0.0.1:{self.port}", timeout=30)

    def __enter__(self) -> "_Server":
        deadline = time.monotonic() + 120
        while not self.client.ping():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the server did not start:\n{self.stop()}")
            time.sleep(0.2)
        return self

    def __exit__(self, *exc) -> None:
        self.log = self.stop()

    def stop(self) -> str:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        return self.proc.stdout.read().decode(errors="replace")

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=10)


def _score(client: ScoringClient, x: float) -> list:
    return client.post(json.dumps({"columns": ["n", "x"], "data": [[1, x]]}).encode())["predictions"]


def _timed_ping(port: int) -> float:
    start = time.perf_counter()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=30) as response:
        assert response.status == 200
    return time.perf_counter() - start


@pytest.mark.slow
def test_ping_answers_quickly_while_a_slow_model_is_busy(tmp_path):
    path = _save(tmp_path / "slow", "double", delay=1.0)
    with _Server(path) as server:
        for round_ in range(2):  # first before anything is measured, then once the model is known slow
            with ThreadPoolExecutor(max_workers=5) as pool:
                answers = [pool.submit(_score, server.client, float(i)) for i in range(5)]
                time.sleep(0.3)  # the five are in the server
                waited = _timed_ping(server.port)
                assert [a.result() for a in answers] == [[2.0 * i] for i in range(5)]
            assert waited < 1.0, f"round {round_}: /ping took {waited:.2f} s behind five 1 s requests"


def _send_partial(server: "_Server", kind: int) -> socket.socket:
    sock = server.connect()
    head = f"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nContent-Type: application/json\r\n"
    body = b'{"columns": ["n", "x"], "data": [[1, 2.0]]}'
    if kind == 1:
        sock.sendall(b"POST /invocations HT")
    elif kind == 2:
        sock.sendall(head.encode())  # headers without the blank line ending them
    elif kind == 3:
        sock.sendall(f"{head}Content-Length: 100\r\n\r\n".encode() + body[:20])
    elif kind == 4:  # a whole request, then half of the next one on the same keep-alive connection
        sock.sendall(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body + b"POST /invo")
    return sock


def _read_until_closed(sock: socket.socket, deadline: float) -> tuple[bool, bytes]:
    """(closed by the server before ``deadline``, everything received)."""
    received = b""
    while True:
        sock.settimeout(max(deadline - time.monotonic(), 0.01))
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            return True, received
        except socket.timeout:
            return False, received
        if not chunk:
            return True, received
        received += chunk


@pytest.mark.slow
def test_half_sent_and_idle_connections_are_closed_after_the_timeout(tmp_path):
    path = _save(tmp_path / "fast", "double")
    timeout = 2.0
    with _Server(path, {"SPARK_MODELS_SERVE_TIMEOUT": str(timeout)}) as server:
        sockets = [(i % 5, _send_partial(server, i % 5)) for i in range(50)]
        opened = time.monotonic()
        try:
            assert _score(server.client, 1.5) == [3.0]  # 50 stalled connections do not stop real requests
            time.sleep(0.3)
            for kind, sock in sockets[:4]:  # not closed at once: it is the timeout that closes them
                sock.setblocking(False)
                with pytest.raises(BlockingIOError):
                    sock.recv(1)
            deadline = opened + timeout + 6.0
            results = [(kind, *_read_until_closed(sock, deadline)) for kind, sock in sockets]
        finally:
            for _, sock in sockets:
                sock.close()
        still_open = [kind for kind, closed, _ in results if not closed]
        assert still_open == [], f"connections of kinds {sorted(set(still_open))} were never closed"
        assert all(data.startswith(b"HTTP/1.1 408") for kind, _, data in results if kind == 3)
        assert all(data.startswith(b"HTTP/1.1 200") for kind, _, data in results if kind == 4)
        assert _score(server.client, 2.0) == [4.0]


@pytest.mark.slow
def test_connections_beyond_the_limit_get_503(tmp_path):
    path = _save(tmp_path / "fast", "double")
    with _Server(path, {"SPARK_MODELS_SERVE_MAX_CONNECTIONS": "3"}) as server:
        idle = [server.connect() for _ in range(3)]
        time.sleep(0.5)  # accepted by the server
        try:
            with pytest.raises(ScoringServerError) as refused:
                _score(server.client, 1.0)
            assert refused.value.status == 503
        finally:
            for sock in idle:
                sock.close()
        time.sleep(0.5)
        assert _score(server.client, 1.0) == [2.0]


@pytest.mark.slow
def test_the_cli_options_reach_the_server(tmp_path):
    path = _save(tmp_path / "fast", "double")
    options = ("--timeout", "1.5", "--max-connections", "2", "--workers", "2")  # each worker reads them
    with _Server(path, options=options) as server:
        idle = server.connect()
        start = time.monotonic()
        closed, _ = _read_until_closed(idle, start + 8.0)
        waited = time.monotonic() - start
        idle.close()
        assert closed and 1.0 < waited < 8.0, waited
        assert _score(server.client, 1.0) == [2.0]


def test_serve_help_documents_timeout_and_max_connections():
    from click.testing import CliRunner

    from spark_models.cli import cli

    out = CliRunner().invoke(cli, ["serve", "--help"])
    assert out.exit_code == 0, out.output
    for words in ("--timeout", "SPARK_MODELS_SERVE_TIMEOUT", "--max-connections", "SPARK_MODELS_SERVE_MAX_CONNECTIONS",
                  "503", "408"):
        assert words in out.output, words


def test_serve_refuses_a_non_positive_timeout(tmp_path):
    from click.testing import CliRunner

    from spark_models.cli import cli

    out = CliRunner().invoke(cli, ["serve", "-m", str(tmp_path), "--timeout", "0"])
    assert out.exit_code == 2 and "--timeout" in out.output and "is not in the range" in out.output, out.output
