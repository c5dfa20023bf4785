"""Reading and writing CSV, JSON (split or records) and Parquet, with pandas or Spark."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from spark_models.exceptions import InvalidArgumentError

FORMATS = ("csv", "json", "parquet")


def infer_format(path: str, given: str | None) -> str:
    """``given``, else the file (or a folder's first data file) extension."""
    if given:
        if given not in FORMATS:
            raise InvalidArgumentError(f"Unknown format {given!r}; use one of {', '.join(FORMATS)}")
        return given
    if path == "-":
        return "csv"
    p = Path(path)
    if not p.exists():
        raise InvalidArgumentError(f"Input {path!r} does not exist")
    candidates = [p] if p.is_file() else sorted(f for f in p.glob("*") if f.is_file() and not f.name.startswith(("_", ".")))
    for f in candidates:
        suffix = f.suffix.lower().lstrip(".")
        if suffix in FORMATS:
            return suffix
        if suffix in ("jsonl", "ndjson"):
            return "json"
    raise InvalidArgumentError(f"Cannot tell the format of {path!r}; pass --input-format csv|json|parquet")


def _json_frame(text: str, source: str) -> pd.DataFrame:
    try:
        data = json.loads(text)
    except json.JSONDecodeError:  # JSON lines
        return pd.read_json(io.StringIO(text), lines=True)
    if isinstance(data, dict):
        data = data.get("dataframe_split", data.get("dataframe_records", data))
    if isinstance(data, list):
        return pd.DataFrame.from_records(data)
    if isinstance(data, dict) and "columns" in data and "data" in data:
        return pd.DataFrame(data["data"], columns=data["columns"], index=data.get("index"))
    raise InvalidArgumentError(f"{source}: JSON must be split-oriented ({{'columns', 'data'}}) or a list of records")


def read_pandas(path: str, fmt: str) -> pd.DataFrame:
    if path != "-" and not Path(path).exists():
        raise InvalidArgumentError(f"Input {path!r} does not exist")
    if fmt == "parquet":
        return pd.read_parquet(path)
    if path == "-":
        text = sys.stdin.read()
        return _json_frame(text, "stdin") if fmt == "json" else pd.read_csv(io.StringIO(text))
    files = [Path(path)] if Path(path).is_file() else sorted(Path(path).glob(f"*.{fmt}"))
    frames = [_json_frame(f.read_text(), str(f)) if fmt == "json" else pd.read_csv(f) for f in files]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def write_pandas(df: pd.DataFrame, path: str, fmt: str, orient: str = "split") -> None:
    if fmt == "parquet":
        if path == "-":
            raise InvalidArgumentError("Parquet cannot be written to stdout; pass -o FILE")
        df.to_parquet(path, index=False)
        return
    text = df.to_csv(index=False) if fmt == "csv" else df.to_json(orient=orient, index=False if orient == "split" else None, date_format="iso")
    if path == "-":
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    else:
        Path(path).write_text(text)


def read_spark(spark: Any, path: str, fmt: str) -> Any:
    if not Path(path).exists() and "://" not in path:
        raise InvalidArgumentError(f"Input {path!r} does not exist")
    if fmt == "csv":
        return spark.read.option("header", True).option("inferSchema", True).csv(path)
    if fmt == "parquet":
        return spark.read.parquet(path)
    local = Path(path)
    first = local if local.is_file() else next(iter(sorted(local.glob("*.json"))), None)
    if first is not None and first.read_text()[:1] in ("{", "[") and not _is_json_lines(first):
        return spark.createDataFrame(read_pandas(path, "json"))  # split/records documents: small by nature
    return spark.read.json(path)


def _is_json_lines(path: Path) -> bool:
    with open(path) as f:
        lines = [ln for ln in (f.readline(), f.readline()) if ln.strip()]
    try:
        return len(lines) == 2 and all(isinstance(json.loads(ln), dict) for ln in lines)
    except json.JSONDecodeError:
        return False


def write_spark(df: Any, path: str, fmt: str, mode: str = "errorifexists") -> None:
    """Spark's writer in save ``mode`` (see :mod:`spark_models.commands.save_modes`)."""
    writer = df.write.mode(mode)
    if fmt == "csv":
        writer.option("header", True).csv(path)
    elif fmt == "json":
        writer.json(path)
    else:
        writer.parquet(path)
