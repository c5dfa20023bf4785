"""The crate flavor (R functions): MLflow R's layout both ways, the Rscript process (started once,
reused, restarted, stopped on GC and at exit), CSV exchange of nulls and awkward strings, R
errors, safe mode, conformance, MLflow, and spark_udf with one R process per Python worker.

These tests run real R. They fail (never skip) without ``Rscript`` unless SPARK_MODELS_SKIP_R=1:
CI installs R with ``apt-get install -y r-base-core``.
"""

import gc
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import yaml

import spark_models.crate
import spark_models.pyfunc
from spark_models.environment import read_requirements
from spark_models.exceptions import (
    ArtifactNotFoundError,
    InvalidArgumentError,
    MissingDependencyError,
    ModelOutputError,
    SchemaEnforcementError,
    UnsafeModelError,
)
from spark_models.flavors import r_process
from spark_models.flavors.crate import CrateModel, RFunctionError
from spark_models.flavors.testing import check_flavor
from spark_models.mlmodel import Model
from tests.isolation import run_json

if os.environ.get("SPARK_MODELS_SKIP_R") == "1":
    pytest.skip("SPARK_MODELS_SKIP_R=1: the crate flavor's tests need R", allow_module_level=True)

RSCRIPT = shutil.which("Rscript")

# Each crate is an R function with class "crate", as carrier::crate() makes (carrier is on CRAN,
# which these machines cannot reach), saved with saveRDS as a user would.
CRATES = r'''
as_crate <- function(f) { class(f) <- c("crate", class(f)); f }
out <- commandArgs(trailingOnly = TRUE)[[1]]
save <- function(f, name) saveRDS(f, file.path(out, paste0(name, ".rds")))
save(as_crate(function(df) df$a * 2 + df$b), "linear")
save(as_crate(function(df, scale = 1) data.frame(
  y = df$a * scale, label = ifelse(is.na(df$s), NA, paste0(df$s, "!")), n = nchar(df$s),
  big = df$a > 1, stringsAsFactors = FALSE)), "frame")
save(as_crate(function(df) { if (any(df$a < 0, na.rm = TRUE)) stop("a must not be negative"); df$a }), "stopper")
save(as_crate(function(df) df), "identity")
save(as_crate(function(df) data.frame(y = df$a * 2, s = ifelse(is.na(df$s), NA, paste0(df$s, "!")),
  r_pid = Sys.getpid(), py_pid = as.integer(strsplit(readLines("/proc/self/stat"), " ")[[1]][4]))), "pids")
save(as_crate(function(df) head(df$a, 1)), "one_row")
save(as_crate(function(df) list(df$a)), "a_list")
save(as_crate(function(df) { o <- order(-df$a); data.frame(a = df$a[o], k = df$k[o], row.names = o) }), "sorted")
save(as_crate(function(df) { if (any(df$a > 100, na.rm = TRUE)) quit(save = "no", status = 7); df$a }), "quitter")
save(function(df) df$a, "plain_function")
save(list(a = 1), "not_a_function")
'''

# Scores a crate.bin the way MLflow R does (mlflow_load_flavor.mlflow_flavor_crate, mlflow_predict.crate),
# or (with "rds") the user's own saveRDS file.
MLFLOW_R_PREDICT = r'''
args <- commandArgs(trailingOnly = TRUE)
crate <- if (args[[4]] == "rds") readRDS(args[[1]]) else unserialize(readRDS(args[[1]]))
stopifnot(inherits(crate, "crate"))
data <- utils::read.csv(args[[2]])
writeLines(sprintf("%a", do.call(crate, list(data))), args[[3]])
'''


@pytest.fixture(scope="module", autouse=True)
def _needs_r():
    if RSCRIPT is None:
        pytest.fail("Rscript is not on PATH: install R (apt-get install -y r-base-core), or set SPARK_MODELS_SKIP_R=1")


@pytest.fixture(scope="module")
def crates(tmp_path_factory):
    root = tmp_path_factory.mktemp("crates")
    (root / "make.R").write_text(CRATES)
    subprocess.run([RSCRIPT, "--vanilla", str(root / "make.R"), str(root)], check=True, capture_output=True)
    return {p.stem: p for p in root.glob("*.rds")}


@pytest.fixture(scope="module")
def X():
    return pd.DataFrame({"a": [0.5, 1.25, -2.0, 3.0, 4.75, 0.0], "b": [1.0, 2.0, 3.0, -4.5, 5.0, 0.25]})


def linear(X):
    return X.a * 2 + X.b


def mlflow_r_predict(crate_bin, X, tmp_path, kind="crate.bin"):
    """The crate's prediction computed by R alone, as MLflow R loads and calls it."""
    (tmp_path / "predict.R").write_text(MLFLOW_R_PREDICT)
    X.to_csv(tmp_path / "input.csv", index=False)  # these values are exact in decimal
    subprocess.run([RSCRIPT, "--vanilla", str(tmp_path / "predict.R"), str(crate_bin), str(tmp_path / "input.csv"),
                    str(tmp_path / "output.txt"), kind], check=True, capture_output=True)
    return pd.Series([float.fromhex(v) for v in (tmp_path / "output.txt").read_text().split()])


def process_state(pid):
    """The process's state letter (R running/sleeping, Z zombie), None when it no longer exists."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return None


def wait_gone(pid, timeout=10.0):
    deadline = time.monotonic() + timeout
    while process_state(pid) is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    return process_state(pid)


# ---- layout -----------------------------------------------------------------------------------

def test_layout_is_mlflow_rs_and_r_loads_it_as_mlflow_r_does(crates, X, tmp_path):
    path = tmp_path / "model"
    spark_models.crate.save_model(crates["linear"], path)
    assert sorted(p.name for p in path.iterdir()) == sorted(
        ["MLmodel", "crate.bin", "conda.yaml", "requirements.txt", "python_env.yaml"])
    meta = Model.load(path)
    assert meta.flavors["crate"] == {"version": "0.1.0", "model": "crate.bin"}
    assert yaml.safe_load((path / "MLmodel").read_text())["flavors"]["crate"]["version"] == "0.1.0"
    pf = meta.flavors["python_function"]
    assert (pf["loader_module"], pf["data"]) == ("spark_models.crate", "crate.bin")
    assert [r.split("==")[0] for r in read_requirements(path)] == ["spark-models"]
    # crate.bin is saveRDS(serialize(crate, NULL)): R reads it with unserialize(readRDS()), a crate.
    pd.testing.assert_series_equal(mlflow_r_predict(path / "crate.bin", X, tmp_path), linear(X))
    model = spark_models.crate.load_model(path)
    assert isinstance(model, CrateModel) and model.r_version.split(".")[0] == "4"
    pd.testing.assert_series_equal(model.predict(X), linear(X))


MLFLOW_R_MLMODEL = """\
utc_time_created: '2024-05-01 10:11:12.123456'
run_id: 4c0b5b4d8f2e4a6c9d1e2f3a4b5c6d7e
artifact_path: model
flavors:
  crate:
    version: 0.1.0
    model: crate.bin
signature:
  inputs: '[{"name":"a","type":"double"},{"name":"b","type":"double"}]'
  outputs: '[{"name":"prediction","type":"double"}]'
"""


@pytest.mark.parametrize("mlmodel", [MLFLOW_R_MLMODEL, "flavors:\n  crate:\n    version: 0.1.0\n    model: crate.bin\n"],
                         ids=["mlflow_log_model", "mlflow_save_model"])
def test_mlflow_r_written_directory_loads_and_converts(mlmodel, crates, X, tmp_path):
    r_dir = tmp_path / "r_model"
    r_dir.mkdir()
    # What mlflow_save_model.crate does: saveRDS(serialize(model, NULL), "crate.bin") and its MLmodel.
    code = f'saveRDS(serialize(readRDS("{crates["linear"]}"), NULL), "{r_dir / "crate.bin"}")'
    subprocess.run([RSCRIPT, "--vanilla", "-e", code], check=True, capture_output=True)
    (r_dir / "MLmodel").write_text(mlmodel)
    pd.testing.assert_series_equal(spark_models.crate.load_model(r_dir).predict(X), linear(X))
    # MLflow R writes no python_function entry: the crate flavor implies one, in memory only.
    before = (r_dir / "MLmodel").read_text()
    np.testing.assert_array_equal(spark_models.pyfunc.load_model(r_dir).predict(X), linear(X))
    assert (r_dir / "MLmodel").read_text() == before
    # save_model converts the directory to one with the entry written out.
    spark_models.crate.save_model(r_dir, tmp_path / "converted")
    loaded = spark_models.pyfunc.load_model(tmp_path / "converted")
    np.testing.assert_array_equal(loaded.predict(X), linear(X))


def test_save_accepts_bytes_and_mlflows_crate_bin(crates, X, tmp_path):
    spark_models.crate.save_model(crates["linear"].read_bytes(), tmp_path / "from_bytes")
    spark_models.crate.save_model(tmp_path / "from_bytes" / "crate.bin", tmp_path / "from_bin")
    for name in ("from_bytes", "from_bin"):
        pd.testing.assert_series_equal(spark_models.crate.load_model(tmp_path / name).predict(X), linear(X))


def test_save_refuses_what_is_not_a_crate(crates, tmp_path):
    with pytest.raises(InvalidArgumentError, match=r'without the "crate" class.*carrier::crate'):
        spark_models.crate.save_model(crates["plain_function"], tmp_path / "a")
    with pytest.raises(InvalidArgumentError, match="holds a list, not an R function"):
        spark_models.crate.save_model(crates["not_a_function"], tmp_path / "b")
    with pytest.raises(InvalidArgumentError):
        spark_models.crate.save_model(b"not an RDS file", tmp_path / "c")
    with pytest.raises(ArtifactNotFoundError, match="does not exist"):
        spark_models.crate.save_model(tmp_path / "missing.rds", tmp_path / "d")
    with pytest.raises(InvalidArgumentError, match="got function"):
        spark_models.crate.save_model(lambda df: df, tmp_path / "e")
    assert not any((tmp_path / n).exists() for n in "abcde")
    spark_models.crate.save_model(crates["linear"], tmp_path / "f")
    with pytest.raises(InvalidArgumentError, match="already exists"):
        spark_models.crate.save_model(crates["linear"], tmp_path / "f")


# ---- scoring ----------------------------------------------------------------------------------

def test_data_frame_result_with_nulls_and_params(crates, tmp_path):
    spark_models.crate.save_model(crates["frame"], tmp_path / "m")
    model = spark_models.pyfunc.load_model(tmp_path / "m")
    frame = pd.DataFrame({"a": [0.5, np.nan, 2.0], "s": ["x", None, "é,\"q\""]}, index=[10, 11, 12])
    out = model.predict(frame)
    assert list(out.columns) == ["y", "label", "n", "big"] and list(out.index) == [10, 11, 12]
    np.testing.assert_array_equal(out.y.to_numpy(), [0.5, np.nan, 2.0])
    assert out.label.tolist() == ["x!", None, "é,\"q\"!"]
    assert out.n.tolist()[0::2] == [1, 5] and np.isnan(out.n[11])  # nchar(NA) is NA: integer → float NaN
    assert out.big.tolist() == [False, None, True]
    np.testing.assert_array_equal(model.predict(frame, params={"scale": 10}).y.to_numpy(), [5.0, np.nan, 20.0])
    with pytest.raises(InvalidArgumentError, match="Param 'scale' is not a scalar"):
        model.predict(frame, params={"scale": [1, 2]})


AWKWARD = ["a,b", 'say "hi"', "two\nlines", "cr\r\nlf\r", "", "NA", None, "é ü 漢字 🙂", " padded ", "back\\slash\\",
           "\\n literally", "tab\there"]


def test_strings_numbers_and_nulls_survive_both_ways(crates, tmp_path):
    spark_models.crate.save_model(crates["identity"], tmp_path / "m")
    model = spark_models.crate.load_model(tmp_path / "m")
    n = len(AWKWARD)
    frame = pd.DataFrame({
        'name, with "quotes"': AWKWARD,
        "x": [0.1 + 0.2, np.nan, np.inf, -np.inf, 5e-324, 1.7976931348623157e308, -0.0, 1 / 3, 1e-300, 2.0, 3.0, 4.0],
        "i": np.arange(n, dtype=np.int64) - 5,
        "flag": [True, False] * (n // 2),
        "maybe": pd.array([True, None, False] * (n // 3), dtype="boolean"),
        "when": pd.date_range("2024-02-29 23:59:59.123456", periods=n, freq="37min"),
    })
    frame.loc[3, "when"] = pd.NaT
    out = model.predict(frame)
    assert list(out.columns) == list(frame.columns)
    assert out.iloc[:, 0].tolist() == AWKWARD
    np.testing.assert_array_equal(out.x.to_numpy(), frame.x.to_numpy())  # bit for bit (NaN ↔ NA ↔ NaN)
    assert np.signbit(out.x[6])
    assert out.i.dtype == np.int64 and out.i.tolist() == frame.i.tolist()
    assert out.flag.dtype == bool and out.flag.tolist() == frame.flag.tolist()
    assert out.maybe.tolist() == [True, None, False] * (n // 3)
    pd.testing.assert_series_equal(out.when, frame.when)


def test_row_order_and_count(crates, tmp_path):
    spark_models.crate.save_model(crates["sorted"], tmp_path / "sorted")
    frame = pd.DataFrame({"a": [3.0, 1.0, 2.0, 5.0], "k": ["c", "a", "b", "e"]})
    # The crate sorts its rows; its row names say where each came from, so they go back in order.
    out = spark_models.crate.load_model(tmp_path / "sorted").predict(frame)
    pd.testing.assert_frame_equal(out, frame)
    spark_models.crate.save_model(crates["one_row"], tmp_path / "one_row")
    with pytest.raises(ModelOutputError, match="returned 1 rows for 4 input rows"):
        spark_models.crate.load_model(tmp_path / "one_row").predict(frame)
    with pytest.raises(ModelOutputError, match="returned 1 rows for 4 input rows"):
        spark_models.pyfunc.load_model(tmp_path / "one_row").predict(frame)


def test_r_errors_keep_the_process_and_a_dead_process_is_restarted(crates, tmp_path):
    spark_models.crate.save_model(crates["stopper"], tmp_path / "stopper")
    model = spark_models.pyfunc.load_model(tmp_path / "stopper")
    impl = model.get_raw_model()
    pid = impl.pid
    with pytest.raises(RFunctionError, match=r"failed: Error in crate\(data\): a must not be negative"):
        model.predict(pd.DataFrame({"a": [1.0, -1.0]}))
    assert model.predict(pd.DataFrame({"a": [1.0, 2.0]})).tolist() == [1.0, 2.0] and impl.pid == pid

    spark_models.crate.save_model(crates["quitter"], tmp_path / "quitter")
    quitter = spark_models.crate.load_model(tmp_path / "quitter")
    first, starts = quitter.pid, r_process.process_starts()
    with pytest.raises(RFunctionError, match="exited with code 7"):
        quitter.predict(pd.DataFrame({"a": [1.0, 500.0]}))
    assert process_state(first) is None  # reaped, not a zombie
    assert quitter.predict(pd.DataFrame({"a": [4.0]})).tolist() == [4.0]
    assert r_process.process_starts() == starts + 1 and quitter.pid not in (None, first)

    spark_models.crate.save_model(crates["a_list"], tmp_path / "a_list")
    with pytest.raises(RFunctionError, match="the crate returned a list; return a vector or a data.frame"):
        spark_models.crate.load_model(tmp_path / "a_list").predict(pd.DataFrame({"a": [1.0]}))
    with pytest.raises(SchemaEnforcementError, match="Column 'blob' holds bytes values"):
        quitter.predict(pd.DataFrame({"blob": [b"\x00"]}))


def test_one_r_process_reused_and_stopped_when_collected(crates, X, tmp_path):
    spark_models.crate.save_model(crates["pids"], tmp_path / "m")
    starts = r_process.process_starts()
    model = spark_models.pyfunc.load_model(tmp_path / "m")
    frame = pd.DataFrame({"a": [1.0, 2.0], "s": ["x", None]})
    batches = [model.predict(frame) for _ in range(5)]
    again = spark_models.crate.load_model(tmp_path / "m")  # the same crate: the same process
    assert r_process.process_starts() == starts + 1
    pid = again.pid
    assert {int(b.r_pid[0]) for b in batches} == {pid} and int(batches[0].py_pid[0]) == os.getpid()
    assert process_state(pid) in ("R", "S")
    del model, again, batches
    gc.collect()
    assert wait_gone(pid) is None  # stopped and reaped: no zombie left


EXITS = r"""
import json, os, sys, pandas as pd, spark_models.crate
model = spark_models.crate.load_model({path!r})
model.predict(pd.DataFrame({{"a": [1.0], "b": [2.0]}}))
print(json.dumps({{"r_pid": model.pid, "mlflow": any(m.split(".")[0] == "mlflow" for m in sys.modules),
                  "heavy": sorted(m for m in ("sklearn", "pyspark", "torch", "xgboost") if m in sys.modules)}}), flush=True)
{then}
"""


@pytest.mark.slow
def test_r_process_ends_with_its_python_process(crates, tmp_path):
    spark_models.crate.save_model(crates["linear"], tmp_path / "m")
    # A normal exit stops and reaps R (and scoring imported nothing heavy).
    got = run_json(EXITS.format(path=str(tmp_path / "m"), then=""))
    assert got["mlflow"] is False and got["heavy"] == []
    assert wait_gone(got["r_pid"]) is None
    # Killed outright, Python runs no cleanup: R sees its input close and exits by itself.
    proc = subprocess.Popen([sys.executable, "-c", EXITS.format(path=str(tmp_path / "m"), then="import time; time.sleep(60)")],
                            stdout=subprocess.PIPE, text=True)
    import json

    r_pid = json.loads(proc.stdout.readline())["r_pid"]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    # Orphaned, it is reaped by whichever process adopts it, which here may never reap it.
    assert wait_gone(r_pid) in (None, "Z")


def test_missing_rscript_says_to_install_r(crates, tmp_path, monkeypatch):
    spark_models.crate.save_model(crates["linear"], tmp_path / "m")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.delenv(r_process.RSCRIPT_ENV, raising=False)
    for call in (lambda: spark_models.crate.load_model(tmp_path / "m"),
                 lambda: spark_models.pyfunc.load_model(tmp_path / "m"),
                 lambda: spark_models.crate.save_model(crates["linear"], tmp_path / "n")):
        with pytest.raises(MissingDependencyError, match="Rscript is not on PATH.*r-base-core"):
            call()
    monkeypatch.setenv(r_process.RSCRIPT_ENV, str(tmp_path / "no-such-Rscript"))
    with pytest.raises(MissingDependencyError, match="SPARK_MODELS_RSCRIPT=.* is not an executable"):
        spark_models.crate.load_model(tmp_path / "m")
    monkeypatch.setenv(r_process.RSCRIPT_ENV, RSCRIPT)
    assert spark_models.crate.load_model(tmp_path / "m").predict(pd.DataFrame({"a": [1.0], "b": [1.0]})).tolist() == [3.0]


def test_safe_mode_refuses_a_crate(crates, tmp_path):
    spark_models.crate.save_model(crates["linear"], tmp_path / "m")
    with pytest.raises(UnsafeModelError, match="calls the R function"):
        spark_models.pyfunc.load_model(tmp_path / "m", allow_code=False)
    with pytest.raises(UnsafeModelError, match="calls the R function"):
        spark_models.crate.load_model(tmp_path / "m", allow_code=False)


# ---- conformance, MLflow, Spark ---------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.spark
def test_conformance_with_spark_udf(crates, X, tmp_path, spark):
    def native(model, data):
        if isinstance(model, CrateModel):
            return model.predict(data)
        return mlflow_r_predict(model, data, tmp_path, "rds")  # the .rds given to save_model, scored by R alone

    check_flavor(spark_models.crate.FLAVOR, crates["linear"], X, tmp_path / "conformance", native_predict=native,
                 spark=spark)


@pytest.mark.slow
def test_mlflow_loads_ours_but_not_mlflow_rs_own(crates, X, tmp_path):
    mlflow_pyfunc = pytest.importorskip("mlflow.pyfunc")
    from mlflow.exceptions import MlflowException

    spark_models.crate.save_model(crates["linear"], tmp_path / "ours", input_example=X.head(2))
    theirs = mlflow_pyfunc.load_model(str(tmp_path / "ours"))
    np.testing.assert_array_equal(np.ravel(theirs.predict(X)), linear(X))
    r_dir = tmp_path / "r_model"
    r_dir.mkdir()
    shutil.copy(tmp_path / "ours" / "crate.bin", r_dir / "crate.bin")
    (r_dir / "MLmodel").write_text(MLFLOW_R_MLMODEL)
    with pytest.raises(MlflowException, match="python_function"):
        mlflow_pyfunc.load_model(str(r_dir))


@pytest.mark.slow
@pytest.mark.spark
def test_spark_udf_nulls_strings_and_one_r_process_per_worker(crates, tmp_path, spark):
    spark_models.crate.save_model(crates["pids"], tmp_path / "m")
    n = 48
    rows = [(i, None if i % 5 == 0 else i / 4, None if i % 7 == 0 else AWKWARD[i % len(AWKWARD)]) for i in range(n)]
    df = spark.createDataFrame(rows, "id long, a double, s string").repartition(8)
    predict = spark_models.pyfunc.spark_udf(spark, str(tmp_path / "m"),
                                            result_type="struct<y:double,s:string,r_pid:int,py_pid:int>")
    out = df.withColumn("p", predict("a", "s")).select("id", "p.*").orderBy("id").toPandas()
    assert out.id.tolist() == list(range(n))
    expected_y = [np.nan if a is None else a * 2 for _, a, _ in rows]
    np.testing.assert_array_equal(out.y.to_numpy(), expected_y)
    assert out.s.tolist() == [None if s is None else s + "!" for _, _, s in rows]
    # Every Python worker scored all its batches with one R process of its own, started once.
    pairs = set(zip(out.py_pid, out.r_pid))
    assert len({py for py, _ in pairs}) == len(pairs) == len({r for _, r in pairs})
    assert len(pairs) <= 8 and all(py != os.getpid() for py, _ in pairs)


def test_spark_udf_scores_an_mlflow_r_written_directory_as_it_is(crates, X, tmp_path, spark):
    r_dir = tmp_path / "r_model"
    r_dir.mkdir()
    code = f'saveRDS(serialize(readRDS("{crates["linear"]}"), NULL), "{r_dir / "crate.bin"}")'
    subprocess.run([RSCRIPT, "--vanilla", "-e", code], check=True, capture_output=True)
    (r_dir / "MLmodel").write_text(MLFLOW_R_MLMODEL)
    predict = spark_models.pyfunc.spark_udf(spark, str(r_dir))
    rows = spark.createDataFrame(X.assign(row=range(len(X)))).withColumn("p", predict()).orderBy("row").collect()
    np.testing.assert_allclose([r.p for r in rows], linear(X).to_numpy())
