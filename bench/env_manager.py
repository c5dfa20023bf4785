"""Benchmark: spark_udf(env_manager="uv") against env_manager="local" and MLflow's env-managed spark_udf.

Run:  python bench/env_manager.py [--rows 1000000] [--repeats 3]

Workload: local[2], N rows x 8 double columns (cached), sklearn RandomForest (50 trees, depth 8),
every job writes to Spark's ``noop`` sink. Prints:

- ours ``env_manager="local"`` and ``"uv"`` (environment already built): warm throughput, best of
  N, interleaved in one process; first job in a fresh process (UDF creation included, session
  start not), median of ``--first-repeats`` processes;
- ours ``"uv"`` with a cold cache (a fresh ``SPARK_MODELS_ENV_CACHE``: the first job builds the
  environment; uv's own wheel cache is warm, primed by the first of those runs);
- MLflow's ``spark_udf(env_manager="virtualenv" | "uv")`` on the same forest saved by
  ``mlflow.sklearn``: first job (its environment build included) and warm jobs at ``--mlflow-rows``,
  then one job at N rows; every job has ``--mlflow-timeout`` seconds;
- ratios against the baselines measured in the same run. Times are never asserted.
"""

import argparse
import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.spark_udf import FEATURES, _input_frame, _run_job, _session, _training_data  # noqa: E402

VENV_BIN = Path(sys.executable).parent
PYENV_BIN = Path("/root/.pyenv/bin")
MLFLOW_MANAGERS = ("virtualenv", "uv")


def _save_models(root: Path) -> dict[str, str]:
    """The same fitted forest saved by us (for ours) and by ``mlflow.sklearn`` (so MLflow can rebuild its env)."""
    from sklearn.ensemble import RandomForestClassifier

    import spark_models.sklearn
    from spark_models.models import infer_signature

    X, y = _training_data()
    model = RandomForestClassifier(n_estimators=50, max_depth=8, random_state=0).fit(X, y)
    paths = {"ours": str(root / "ours"), "mlflow": str(root / "mlflow")}
    spark_models.sklearn.save_model(model, paths["ours"], signature=infer_signature(X, model.predict(X)))
    try:
        import mlflow.models
        import mlflow.sklearn
    except ImportError:
        del paths["mlflow"]
        return paths
    mlflow.sklearn.save_model(model, paths["mlflow"], signature=mlflow.models.infer_signature(X, model.predict(X)),
                              serialization_format="cloudpickle")
    return paths


# ---- inside a child process ------------------------------------------------------------

def _emit(**result) -> None:
    print(json.dumps(result), flush=True)


def _ours(spark, path: str, manager: str):
    import spark_models.pyfunc

    u = spark_models.pyfunc.spark_udf(spark, path, result_type="double", env_manager=manager)
    return u()


def _child_first(spec: dict) -> None:
    spark = _session()
    df = _input_frame(spark, spec["rows"])
    start = time.perf_counter()
    _run_job(df, _ours(spark, spec["path"], spec["method"]))
    first = time.perf_counter() - start
    from spark_models.envs.build import builds_of
    from spark_models.envs.spec import env_spec

    builds = builds_of(env_spec(spec["path"]).key) if spec["method"] == "uv" else []
    _emit(first=first, build=sum(b["seconds"] for b in builds))  # the cache's builds so far: 0 when warm


def _child_warm(spec: dict) -> None:
    from bench.spark_udf import _no_model_udf

    spark = _session()
    frames = {"full": _input_frame(spark, spec["rows"]), "small": _input_frame(spark, spec["small_rows"])}
    columns = {"no-model": _no_model_udf()(), **{m: _ours(spark, spec["path"], m) for m in ("local", "uv")}}
    for column in columns.values():
        _run_job(frames["full"], column)  # warm-up: workers and scorer children started, model loaded
    times = {size: {m: [] for m in columns} for size in frames}
    for _ in range(spec["repeats"]):  # interleaved, so drift on a noisy machine hits every method alike
        for size, df in frames.items():
            for method, column in columns.items():
                times[size][method].append(_run_job(df, column))
    _emit(**{size: {m: min(t) for m, t in by.items()} for size, by in times.items()})


def _child_mlflow(spec: dict) -> None:
    """One line per finished job, so the parent keeps what finished when a later job times out."""
    import mlflow.pyfunc

    spark = _session()
    small = _input_frame(spark, spec["small_rows"])
    start = time.perf_counter()
    u = mlflow.pyfunc.spark_udf(spark, spec["path"], result_type="double", env_manager=spec["manager"])
    _emit(udf=time.perf_counter() - start)
    _run_job(small, u(*FEATURES))
    _emit(first=time.perf_counter() - start)
    for _ in range(spec["repeats"]):
        _emit(warm=_run_job(small, u(*FEATURES)))
    if spec["rows"] != spec["small_rows"]:
        small.unpersist()
        _emit(full=_run_job(_input_frame(spark, spec["rows"]), u(*FEATURES)))


# ---- orchestration ---------------------------------------------------------------------

def _env(cache: str) -> dict[str, str]:
    path = os.pathsep.join([str(VENV_BIN), str(PYENV_BIN), os.environ.get("PATH", "")])
    return dict(os.environ, PYTHONWARNINGS="ignore", PATH=path, SPARK_MODELS_ENV_CACHE=cache)


def _child(spec: dict, env: dict, timeout: float) -> tuple[list[dict], str | None]:
    """Run a child; its JSON lines, and why it stopped early (None when it finished).

    ``timeout`` applies to each line: a job that takes longer kills the child's whole process group
    (Spark's JVM, Python workers and any scoring servers with it)."""
    proc = subprocess.Popen([sys.executable, __file__, "--child", json.dumps(spec)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)
    lines: queue.Queue = queue.Queue()
    err: list[str] = []  # stderr, and stdout lines that are not results (tools the child ran)
    threading.Thread(target=lambda: err.extend(proc.stderr), daemon=True).start()
    threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout] + [lines.put(None)], daemon=True).start()
    results, problem = [], None
    while True:
        try:
            line = lines.get(timeout=timeout)
        except queue.Empty:
            problem = f"did not finish in {timeout:.0f} s"
            os.killpg(proc.pid, signal.SIGKILL)
            break
        if line is None:
            break
        if line.startswith("{"):
            try:
                results.append(json.loads(line))
            except json.JSONDecodeError:
                err.append(line)
        else:
            err.append(line)
    proc.wait()
    if problem is None and proc.returncode != 0:
        problem = f"failed (exit {proc.returncode}): {_why(''.join(err))}"
    return results, problem


def _first_jobs(spec: dict, caches: list[str], timeout: float) -> list[dict]:
    """One fresh process per cache: {"first": seconds, "build": seconds of environment builds in that cache}."""
    out = []
    for cache in caches:
        results, problem = _child({"kind": "first", **spec}, _env(cache), timeout)
        if problem:
            raise RuntimeError(f"first job {spec['method']}: {problem}")
        out.append(results[-1])
    return out


def _why(text: str) -> str:
    """The line of a failed child's output that says why: a download error, else the last line."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    causes = [line for line in lines if "Could not resolve host" in line or line.startswith("curl: (")]
    return (causes or lines or ["no output"])[-1]


def _mlflow(path: str, manager: str, ns, cache: str) -> dict:
    spec = {"kind": "mlflow", "manager": manager, "path": path, "rows": ns.rows,
            "small_rows": min(ns.mlflow_rows, ns.rows), "repeats": ns.repeats}
    results, problem = _child(spec, _env(cache), ns.mlflow_timeout)
    merged: dict = {"problem": problem, "warm": min([r["warm"] for r in results if "warm" in r], default=None)}
    for r in results:
        merged.update({k: v for k, v in r.items() if k != "warm"})
    return merged


def _rate(rows: int, seconds: float | None) -> str:
    return f"{rows / seconds:>12,.0f}" if seconds else f"{'-':>12}"


def _secs(seconds: float | None) -> str:
    return f"{seconds:>9.2f}" if seconds is not None else f"{'-':>9}"


def _report(ns, warm: dict, first: dict, cold_builds: tuple[list, list], mlflow: dict) -> None:
    rows, small = ns.rows, min(ns.mlflow_rows, ns.rows)
    w, ws = warm["full"], warm["small"]
    cold, builds = cold_builds
    print(f"\n== RF 50 trees x depth 8, {rows:,} rows, local[{2}]; Spark's Arrow round trip without a model "
          f"{w['no-model']:.2f}s")
    print(f"{'method':<34}{'warm s':>9}{'rows/s':>12}{'first s':>9}")
    print(f"{'ours local':<34}{_secs(w['local'])}{_rate(rows, w['local'])}{_secs(first['local'])}")
    print(f"{'ours uv, warm cache':<34}{_secs(w['uv'])}{_rate(rows, w['uv'])}{_secs(first['uv'])}")
    print(f"{'ours uv, cold cache (uv wheels warm)':<34}{_secs(None)}{_rate(rows, None)}{_secs(float(np.median(cold)))}"
          f"   (each: {', '.join(f'{t:.1f}' for t in cold)}; env build {', '.join(f'{b:.1f}' for b in builds)})")
    for manager, m in mlflow.items():
        print(f"{'MLflow ' + manager:<34}{_secs(m.get('full'))}{_rate(rows, m.get('full'))}{_secs(None)}"
              f"   {m['problem'] or ''}")
    print(f"\n-- at {small:,} rows (MLflow's first job includes building its environment, "
          f"afresh in every session; uv's wheel cache warm)")
    print(f"{'method':<34}{'warm s':>9}{'rows/s':>12}{'first s':>9}")
    print(f"{'ours local':<34}{_secs(ws['local'])}{_rate(small, ws['local'])}{_secs(None)}")
    print(f"{'ours uv, warm cache':<34}{_secs(ws['uv'])}{_rate(small, ws['uv'])}{_secs(None)}")
    for manager, m in mlflow.items():
        print(f"{'MLflow ' + manager:<34}{_secs(m.get('warm'))}{_rate(small, m.get('warm'))}{_secs(m.get('first'))}"
              f"   {m['problem'] or ''}")
    print("\nratios:")
    print(f"  warm uv / local throughput: {w['local'] / w['uv']:.2f} (target >= 0.8)")
    print(f"  first job, warm cache - local: {first['uv'] - first['local']:+.2f} s (target <= 2 s)")
    for manager, m in mlflow.items():
        for label, n, ours_s, theirs in (("", rows, w["uv"], m.get("full")), (" ", small, ws["uv"], m.get("warm"))):
            if theirs:
                print(f"  ours uv vs MLflow {manager} at {n:,} rows: {theirs / ours_s:.2f}x the throughput (target >= 3x)")
            else:
                print(f"  ours uv vs MLflow {manager} at {n:,} rows: no MLflow number ({m['problem']})")


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--first-repeats", type=int, default=3, help="fresh processes per method (median)")
    parser.add_argument("--mlflow-rows", type=int, default=100_000, help="rows of MLflow's first and warm jobs")
    parser.add_argument("--mlflow-timeout", type=float, default=900.0, help="seconds per MLflow job")
    parser.add_argument("--mlflow-managers", default=",".join(MLFLOW_MANAGERS))
    parser.add_argument("--child")
    return parser.parse_args()


def main() -> None:
    import warnings

    warnings.filterwarnings("ignore", message="X does not have valid feature names")
    ns = _parse()
    if ns.child is not None:
        spec = json.loads(ns.child)
        {"first": _child_first, "warm": _child_warm, "mlflow": _child_mlflow}[spec.pop("kind")](spec)
        return
    import platform

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, Python "
          f"{platform.python_version()}; load average {os.getloadavg()[0]:.2f} at the start")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        paths = _save_models(root)
        cold_caches = [str(root / f"cold-{i}") for i in range(ns.first_repeats)]
        spec = {"path": paths["ours"], "rows": ns.rows}
        cold = _first_jobs({**spec, "method": "uv"}, cold_caches, ns.mlflow_timeout)
        builds, cold = [c["build"] for c in cold], [c["first"] for c in cold]
        warm_cache = cold_caches[-1]  # the environment is built there now
        first = {m: [] for m in ("local", "uv")}
        for _ in range(ns.first_repeats):
            for method in first:
                first[method] += [r["first"] for r in _first_jobs({**spec, "method": method}, [warm_cache],
                                                                   ns.mlflow_timeout)]
        first = {m: float(np.median(t)) for m, t in first.items()}
        results, problem = _child({"kind": "warm", **spec, "small_rows": min(ns.mlflow_rows, ns.rows),
                                   "repeats": ns.repeats}, _env(warm_cache), ns.mlflow_timeout)
        if problem:
            raise RuntimeError(f"warm jobs: {problem}")
        managers = [m for m in ns.mlflow_managers.split(",") if m] if "mlflow" in paths else []
        print(f"# ours: cold first jobs {cold} (builds {builds} s), first jobs {first}, warm {results[-1]}", flush=True)
        mlflow = {}
        for manager in managers:
            mlflow[manager] = _mlflow(paths["mlflow"], manager, ns, warm_cache)
            print(f"# MLflow {manager}: {mlflow[manager]}", flush=True)
        _report(ns, results[-1], first, (cold, builds), mlflow)
    print(f"load average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
