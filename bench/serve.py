"""Benchmark: ``spark-models serve`` against MLflow's scoring server on the same model.

Run:  python bench/serve.py [--requests 1000] [--concurrency 8] [--workers 1]

Two scikit-learn models (LogisticRegression; RandomForest, 50 trees, depth 8; 8 features) saved with
``mlflow.sklearn`` so both servers load the same directory. For 1-row and 100-row
``dataframe_split`` requests it prints throughput and p50/p99 latency of

- the floor: the same requests scored in this process (parse JSON, predict, write JSON), serially;
- ``spark-models serve`` (uvicorn + Starlette);
- ``mlflow models serve --env-manager local`` (uvicorn + FastAPI), if the mlflow CLI is installed;

with ratios measured in the same run. The load client runs on the same machine (threads,
bounded concurrency), so absolute numbers understate a server with its own cores.
"""

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from spark_models.serving.client import ScoringClient, run_load  # noqa: E402

FEATURES = [f"f{i}" for i in range(8)]


def _save_model(root: Path, kind: str) -> str:
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.random((5000, 8)), columns=FEATURES)
    y = (X.f0 + X.f1 * X.f2 - X.f3 > 0.3).astype(int)
    estimator = RandomForestClassifier(n_estimators=50, max_depth=8, random_state=0) if kind == "rf" else LogisticRegression()
    clf = estimator.fit(X, y)
    path = str(root / kind)
    mlflow.sklearn.save_model(clf, path, signature=infer_signature(X, clf.predict(X)),
                              serialization_format="cloudpickle")
    return path


def _bodies(n: int, rows: int) -> list[bytes]:
    rng = np.random.default_rng(1)
    frames = [pd.DataFrame(rng.random((rows, 8)), columns=FEATURES) for _ in range(min(n, 50))]
    docs = [json.dumps({"dataframe_split": json.loads(f.to_json(orient="split", index=False))}).encode() for f in frames]
    return [docs[i % len(docs)] for i in range(n)]


def _floor(path: str, bodies: list[bytes]) -> tuple[float, float]:
    """(requests/s, median seconds) scoring serially in-process: parse, predict, serialize."""
    import spark_models.pyfunc
    from spark_models.serving.parsing import parse_request
    from spark_models.serving.responses import predictions_json

    model = spark_models.pyfunc.load_model(path)
    latencies = []
    start = time.perf_counter()
    for body in bodies:
        t = time.perf_counter()
        data, params = parse_request(body, "application/json", model.signature)
        predictions_json(model.predict(data, params=params))
        latencies.append(time.perf_counter() - t)
    return len(bodies) / (time.perf_counter() - start), float(np.median(latencies))


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(kind: str, path: str, workers: int) -> tuple[subprocess.Popen, ScoringClient]:
    port = _port()
    if kind == "ours":
        args = [sys.executable, "-m", "spark_models.cli", "serve", "-m", path, "-p", str(port), "-w", str(workers)]
    else:
        mlflow = shutil.which("mlflow") or str(Path(sys.executable).with_name("mlflow"))
        args = [mlflow, "models", "serve", "-m", path, "-p", str(port), "-w", str(workers), "--env-manager", "local"]
    # MLflow runs `uvicorn` from PATH: put this interpreter's bin directory first.
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, env=env)
    client = ScoringClient(f"http://127.0.0.1:{port}")
    client.wait_until_ready(timeout=180)
    return proc, client


def _stop(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


def _measure(kind: str, path: str, workers: int, bodies: dict[int, list[bytes]], concurrency: int) -> dict:
    proc, client = _start(kind, path, workers)
    try:
        out = {}
        for rows, batch in bodies.items():
            run_load(client, batch[:50], concurrency)  # warm-up
            result = run_load(client, batch, concurrency)
            if result.errors:
                raise RuntimeError(f"{kind}: {len(result.errors)} errors, e.g. {result.errors[0]}")
            out[rows] = (result.throughput, result.percentile(50), result.percentile(99))
        return out
    finally:
        _stop(proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    bodies = {rows: _bodies(args.requests, rows) for rows in (1, 100)}
    kinds = ["ours"] + (["mlflow"] if shutil.which("mlflow") or Path(sys.executable).with_name("mlflow").exists() else [])
    print(f"{args.requests} requests, concurrency {args.concurrency}, {args.workers} server worker(s)")
    for model in ("lr", "rf"):
        path = _save_model(root, model)
        results = {kind: _measure(kind, path, args.workers, bodies, args.concurrency) for kind in kinds}
        for rows in bodies:
            _report(model, rows, _floor(path, bodies[rows]), results)
    shutil.rmtree(root, ignore_errors=True)


def _report(model: str, rows: int, floor: tuple[float, float], results: dict) -> None:
    floor_rps, floor_p50 = floor
    print(f"\n{model}, {rows}-row requests: floor (in-process, serial) {floor_rps:.0f} req/s, median {floor_p50 * 1e3:.2f} ms")
    print(f"{'server':<8} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'÷ floor':>8} {'÷ mlflow':>9}")
    for kind, by_rows in results.items():
        rps, p50, p99 = by_rows[rows]
        vs_mlflow = f"{rps / results['mlflow'][rows][0]:.2f}x" if "mlflow" in results else "-"
        print(f"{kind:<8} {rps:8.0f} {p50 * 1e3:8.2f} {p99 * 1e3:8.2f} {rps / floor_rps:7.2f}x {vs_mlflow:>9}")


if __name__ == "__main__":
    main()
