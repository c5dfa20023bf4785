"""``predict --provenance`` / ``--provenance-columns``: which model produced a scored table.

``--provenance`` writes the model's provenance (``ModelSource.as_dict()``: uri, version, run id,
registered name, alias, ...) as one JSON document into the key-value metadata of every Parquet
file written, under :data:`METADATA_KEY`. CSV and JSON have no metadata: ``--provenance`` with them
is an error pointing at ``--provenance-columns``, which adds one string column per field to any format.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

from spark_models.exceptions import InvalidArgumentError

METADATA_KEY = "spark_models.provenance"
COLUMNS = {"_model_uri": "uri", "_model_version": "version", "_model_run_id": "run_id", "_model_name": "registered_name"}


def check_provenance_format(out_fmt: str, target: str, *, metadata: bool) -> None:
    """Fail before scoring when ``--provenance`` cannot be written to this output."""
    if not metadata:
        return
    if out_fmt != "parquet":
        raise InvalidArgumentError(
            f"--provenance writes Parquet key-value metadata; {out_fmt.upper()} output has none. "
            "Use --provenance-columns to add _model_uri, _model_version, _model_run_id and _model_name columns")
    from spark_models.commands.save_modes import local_path

    if target != "-" and local_path(target) is None:
        raise InvalidArgumentError(
            f"--provenance needs a local output path (the Parquet footers are written after Spark), got {target!r}; "
            "use --provenance-columns for remote outputs")


def provenance_json(info: Mapping[str, str]) -> str:
    return json.dumps(dict(info), sort_keys=True)


def announce(verb: str, info: Mapping[str, str]) -> None:
    """Log the provenance, and tell the operator on stderr what a tracking URI resolved to."""
    import logging

    import click

    line = f"{verb} {info.get('uri')}: " + ", ".join(f"{k}={v}" for k, v in info.items() if k != "uri")
    logging.getLogger(__name__).info("%s", line)
    if "version" in info or "run_id" in info or "model_id" in info:
        click.echo(line, err=True)


def _check_free(columns: list[str]) -> None:
    taken = [c for c in COLUMNS if c in columns]
    if taken:
        raise InvalidArgumentError(f"--provenance-columns: the scored data already has column(s) {taken}")


def with_columns_spark(df: Any, info: Mapping[str, str]) -> Any:
    """``df`` plus the provenance columns (null where a field is unknown)."""
    from pyspark.sql import functions as F

    _check_free(df.columns)
    return df.select("*", *[F.lit(info.get(field)).cast("string").alias(name) for name, field in COLUMNS.items()])


def with_columns_pandas(frame: Any, info: Mapping[str, str]) -> Any:
    _check_free(list(frame.columns))
    return frame.assign(**{name: [info.get(field)] * len(frame) for name, field in COLUMNS.items()}).astype(
        {name: "object" for name in COLUMNS})


def write_parquet_with_metadata(frame: Any, path: str, info: Mapping[str, str]) -> None:
    """``frame`` as one Parquet file whose footer carries the provenance."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame, preserve_index=False)
    pq.write_table(_tagged(table, info), path)


def tag_parquet_parts(folder: Path, info: Mapping[str, str]) -> int:
    """Add the provenance to the footer of every Parquet part Spark wrote under ``folder``
    (each part is rewritten once, atomically); returns how many parts were tagged."""
    import os

    import pyarrow.parquet as pq

    parts = sorted(p for p in folder.rglob("*.parquet") if not p.name.startswith(("_", ".")))
    for part in parts:
        table = pq.read_table(part)
        tmp = part.with_name(f".{part.name}.tagging")
        pq.write_table(_tagged(table, info), tmp, compression="snappy", coerce_timestamps="us",
                       allow_truncated_timestamps=True)  # Spark reads microsecond timestamps
        os.replace(tmp, part)
        crc = part.with_name(f".{part.name}.crc")
        crc.unlink(missing_ok=True)  # Hadoop's checksum of the old bytes would fail reads
    return len(parts)


def _tagged(table: Any, info: Mapping[str, str]) -> Any:
    metadata = dict(table.schema.metadata or {})
    metadata[METADATA_KEY.encode()] = provenance_json(info).encode()
    return table.replace_schema_metadata(metadata)


def read_provenance(path: str | Path) -> dict[str, str] | None:
    """The provenance in a Parquet file's footer (None without one)."""
    import pyarrow.parquet as pq

    raw = (pq.read_schema(path).metadata or {}).get(METADATA_KEY.encode())
    return json.loads(raw) if raw is not None else None
