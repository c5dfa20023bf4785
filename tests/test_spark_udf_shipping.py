"""Shipping the model to the workers: archives, safe extraction, and which copy a worker loads."""

import io
import shutil
import tarfile
import tempfile
import uuid
from pathlib import Path

import pandas as pd
import pytest

import spark_models.pyfunc
from spark_models.exceptions import MalformedModelError
from udf.shipping import _archive_root, build_archive, content_hash, extracted_model_dir, private_dir, safe_extract


def _tar(path: Path, *members: tarfile.TarInfo) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        good = tarfile.TarInfo("MLmodel")
        good.size = 3
        tar.addfile(good, io.BytesIO(b"abc"))
        for member in members:
            tar.addfile(member, io.BytesIO(b"x" * member.size) if member.isfile() else None)
    return path


def _entry(name: str, kind: bytes = tarfile.REGTYPE, target: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    info.size = 1 if kind == tarfile.REGTYPE else 0
    return info


@pytest.mark.parametrize(
    "member, message",
    [
        (_entry("../escaped"), "unsafe archive entry '../escaped'"),
        (_entry("data/../../escaped"), "unsafe archive entry"),
        (_entry("/etc/escaped"), "unsafe archive entry '/etc/escaped'"),
        (_entry("link", tarfile.SYMTYPE, "/etc/passwd"), "link entry 'link'"),
        (_entry("inside", tarfile.SYMTYPE, "MLmodel"), "link entry 'inside'"),
        (_entry("hard", tarfile.LNKTYPE, "MLmodel"), "link entry 'hard'"),
        (_entry("pipe", tarfile.FIFOTYPE), "special file entry 'pipe'"),
    ],
)
def test_safe_extract_refuses_entries_that_leave_the_directory(tmp_path, member, message):
    archive = _tar(tmp_path / "bad.tar.gz", member)
    dest = tmp_path / "out"
    dest.mkdir()
    with pytest.raises(MalformedModelError, match=message):
        safe_extract(archive, dest)
    assert list(dest.iterdir()) == []  # checked before anything is written
    assert not (tmp_path / "escaped").exists()


def test_safe_extract_extracts_a_plain_archive(tmp_path):
    archive = _tar(tmp_path / "ok.tar.gz", _entry("data/model.bin"))
    safe_extract(archive, tmp_path / "out")
    assert (tmp_path / "out" / "MLmodel").read_bytes() == b"abc"
    assert (tmp_path / "out" / "data" / "model.bin").read_bytes() == b"x"


def test_build_archive_is_keyed_by_content_and_reused(tmp_path):
    model = tmp_path / "m"
    (model / "data").mkdir(parents=True)
    (model / "MLmodel").write_text(f"id: {uuid.uuid4()}\n")
    (model / "data" / "w.bin").write_bytes(b"123")
    key = content_hash(model)
    first = build_archive(model, key)
    stamp = first.stat().st_mtime_ns
    assert build_archive(model, key) == first and first.stat().st_mtime_ns == stamp  # not rebuilt
    assert not [p for p in first.parent.iterdir() if p.name.startswith(f".{key}")]  # no temp files left
    safe_extract(first, tmp_path / "out")
    assert content_hash(tmp_path / "out") == key
    first.unlink()


def _spark_models_entries() -> dict[str, set[str]]:
    """Top-level spark-models entries of the temporary directory, and what each holds."""
    return {p.name: {c.name for c in p.iterdir()} for p in Path(tempfile.gettempdir()).glob("spark-models-*") if p.is_dir()}


@pytest.mark.spark
def test_spark_udf_leaves_no_temporary_directory_per_shipment(spark, tmp_path):
    class Double(spark_models.pyfunc.PythonModel):
        def __init__(self, token):
            self.token = token

        def predict(self, context, model_input):
            return model_input["x"] * 2.0

    before = _spark_models_entries()
    keys = []
    for i in range(2):
        spark_models.pyfunc.save_model(tmp_path / f"m{i}", python_model=Double(str(uuid.uuid4())))
        keys.append(content_hash(tmp_path / f"m{i}"))
        u = spark_models.pyfunc.spark_udf(spark, str(tmp_path / f"m{i}"))
        assert spark.range(3).selectExpr("cast(id as double) x").withColumn("p", u("x")).count() == 3
    after = _spark_models_entries()
    archives = _archive_root().name
    assert set(after) - set(before) <= {archives}  # no new directory per shipment
    added = {name: after[name] - before.get(name, set()) for name in after}
    # one archive per model and no temporary files (other sessions may add their own archives meanwhile)
    assert {f"spark-models-{k}.tar.gz" for k in keys} <= added[archives]
    assert not [name for name in added[archives] if not name.endswith(".tar.gz")]
    assert all(not [n for n in new if n.startswith(".")] for name, new in added.items() if name != archives)


def test_refused_archive_leaves_no_temporary_directory(tmp_path):
    archive = _tar(tmp_path / "bad.tar.gz", _entry("../escaped"))
    key = uuid.uuid4().hex[:20]
    root = private_dir("extracted")
    with pytest.raises(MalformedModelError, match="unsafe archive entry"):
        extracted_model_dir(archive, key)
    assert not [p for p in root.iterdir() if key in p.name]


class Constant(spark_models.pyfunc.PythonModel):
    def __init__(self, value, token):
        self.value, self.token = value, token

    def predict(self, context, model_input):
        return pd.Series([self.value] * len(model_input), dtype="float64")


@pytest.mark.spark
def test_local_mode_serves_the_model_the_udf_was_made_from(spark, tmp_path):
    path = tmp_path / "m"
    token = str(uuid.uuid4())  # a model no worker process has cached yet
    spark_models.pyfunc.save_model(path, python_model=Constant(1.0, token))
    u = spark_models.pyfunc.spark_udf(spark, str(path))
    shutil.rmtree(path)
    spark_models.pyfunc.save_model(path, python_model=Constant(2.0, token))  # overwritten in place
    df = spark.range(0, 20, numPartitions=2).selectExpr("cast(id as double) x")
    assert {r.p for r in df.withColumn("p", u("x")).collect()} == {1.0}
    fresh = spark_models.pyfunc.spark_udf(spark, str(path))
    assert {r.p for r in df.withColumn("p", fresh("x")).collect()} == {2.0}
