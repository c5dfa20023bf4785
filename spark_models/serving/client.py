"""A small client for a running scoring server, and a bounded concurrent load generator.

>>> client = ScoringClient("http://127.0.0.1:5000")  # doctest: +SKIP
>>> client.wait_until_ready(timeout=60)  # doctest: +SKIP
>>> client.predict(pd.DataFrame({"a": [0.1], "b": [0.2]}))  # doctest: +SKIP
[0]
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Sequence

import pandas as pd

from spark_models.exceptions import SparkModelsError


class ScoringServerError(SparkModelsError):
    """The server answered with an error status."""

    def __init__(self, status: int, body: str):
        super().__init__(f"HTTP {status}: {body[:500]}")
        self.status = status
        self.body = body


class ScoringClient:
    """Talks to ``spark-models serve`` (or MLflow's scoring server) at ``url``."""

    def __init__(self, url: str, timeout: float = 60.0):
        self.url = url.rstrip("/")
        self.timeout = timeout

    def ping(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/ping", timeout=self.timeout) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def wait_until_ready(self, timeout: float = 120.0) -> None:
        """Poll ``/ping`` until the server answers, or raise after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ping():
                return
            time.sleep(0.2)
        raise TimeoutError(f"No scoring server answered at {self.url}/ping within {timeout:.0f} s")

    def post(self, body: bytes, content_type: str = "application/json") -> Any:
        """POST a raw body to ``/invocations``; the decoded JSON response."""
        request = urllib.request.Request(
            f"{self.url}/invocations", data=body, headers={"Content-Type": content_type}, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as e:
            raise ScoringServerError(e.code, e.read().decode("utf-8", "replace")) from None

    def predict(self, frame: pd.DataFrame, params: dict | None = None) -> Any:
        """Score a DataFrame (sent as ``dataframe_split``); the ``predictions`` value."""
        doc: dict[str, Any] = {"dataframe_split": json.loads(frame.to_json(orient="split", index=False))}
        if params:
            doc["params"] = params
        return self.post(json.dumps(doc).encode())["predictions"]


@dataclass
class LoadResult:
    """What :func:`run_load` measured."""

    seconds: float
    latencies: list[float] = field(default_factory=list)
    responses: list[Any] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def throughput(self) -> float:
        """Requests per second."""
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        """A latency percentile in seconds (q in 0..100)."""
        import numpy as np

        return float(np.percentile(self.latencies, q)) if self.latencies else float("nan")


def run_load(client: ScoringClient, bodies: Sequence[bytes], concurrency: int = 8,
             content_type: str = "application/json") -> LoadResult:
    """Send every body once with at most ``concurrency`` requests in flight; responses keep body order."""

    def one(body: bytes) -> tuple[float, Any, str | None]:
        start = time.perf_counter()
        try:
            answer, error = client.post(body, content_type), None
        except (ScoringServerError, OSError) as e:
            answer, error = None, str(e)
        return time.perf_counter() - start, answer, error

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        outcomes = list(pool.map(one, bodies))
    result = LoadResult(seconds=time.perf_counter() - start)
    for latency, answer, error in outcomes:
        result.latencies.append(latency)
        result.responses.append(answer)
        if error is not None:
            result.errors.append(error)
    return result
