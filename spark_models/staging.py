"""Moving Spark ML model data between the driver's local disk and the cluster's file system.

Spark ML reads and writes through the executors, so on a cluster a path on the driver's
local disk is not where the data ends up. Saving writes to a DFS temporary directory and
copies the result to the local model directory; loading copies the local directory to
the DFS first. Temporary copies are always removed. In local mode (driver and executors
share one disk) paths are used directly unless a ``dfs_tmpdir`` (or ``$SPARK_MODELS_DFS_TMP``)
is given. On Spark Connect the server does the reading and writing, so paths are always
used directly and a ``dfs_tmpdir`` is ignored with a warning.
"""

from __future__ import annotations

import logging
import os
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from spark_models.sessions import is_connect, is_local_master

_logger = logging.getLogger(__name__)

DFS_TMP_ENV = "SPARK_MODELS_DFS_TMP"
_CLUSTER_DEFAULT = "/tmp/spark-models-dfs"  # schemeless: the cluster's default file system


def dfs_tmp_root(dfs_tmpdir: str | None) -> str:
    """``dfs_tmpdir``, else ``$SPARK_MODELS_DFS_TMP``, else ``/tmp/spark-models-dfs`` on the
    cluster's default file system (local mode stages only when one of the first two is set)."""
    return dfs_tmpdir or os.environ.get(DFS_TMP_ENV) or _CLUSTER_DEFAULT


def _needs_staging(spark: Any, dfs_tmpdir: str | None, local_dir: Path) -> bool:
    if is_connect(spark):
        if dfs_tmpdir:
            _logger.warning(
                "dfs_tmpdir=%r is ignored under Spark Connect: the Connect server reads and writes %s itself, "
                "so that path must be on a file system the server can reach", dfs_tmpdir, local_dir,
            )
        return False
    return bool(dfs_tmpdir or os.environ.get(DFS_TMP_ENV)) or not is_local_master(spark)


def _hadoop(spark: Any, path: str) -> tuple[Any, Any]:
    jvm = spark.sparkContext._jvm
    hpath = jvm.org.apache.hadoop.fs.Path(path)
    return hpath.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()), hpath


def _local_hpath(spark: Any, path: Path) -> Any:
    return spark.sparkContext._jvm.org.apache.hadoop.fs.Path(path.resolve().as_uri())


@contextmanager
def _temporary_dfs_dir(spark: Any, dfs_tmpdir: str | None) -> Iterator[str]:
    tmp = f"{dfs_tmp_root(dfs_tmpdir).rstrip('/')}/{uuid.uuid4().hex}"
    try:
        yield tmp
    finally:
        fs, hpath = _hadoop(spark, tmp)
        if fs.exists(hpath):
            fs.delete(hpath, True)


def write_model(spark: Any, model: Any, local_dir: Path, dfs_tmpdir: str | None) -> None:
    """``model.write().save`` into ``local_dir`` (which must not exist), staged when needed."""
    if not _needs_staging(spark, dfs_tmpdir, local_dir):
        model.write().save(str(local_dir))
        return
    with _temporary_dfs_dir(spark, dfs_tmpdir) as tmp:
        model.write().save(tmp)
        fs, hpath = _hadoop(spark, tmp)
        fs.copyToLocalFile(False, hpath, _local_hpath(spark, local_dir), True)
        _logger.info("Saved the Spark ML model through %s", tmp)


def read_model(spark: Any, reader: Any, local_dir: Path, dfs_tmpdir: str | None) -> Any:
    """``reader.load`` of the model data in ``local_dir``, staged through the DFS when needed."""
    if not _needs_staging(spark, dfs_tmpdir, local_dir):
        return reader.load(str(local_dir))
    with _temporary_dfs_dir(spark, dfs_tmpdir) as tmp:
        fs, hpath = _hadoop(spark, tmp)
        fs.copyFromLocalFile(False, True, _local_hpath(spark, local_dir), hpath)
        _logger.info("Loading the Spark ML model through %s", tmp)
        return reader.load(tmp)
