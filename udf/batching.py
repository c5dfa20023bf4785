"""How many rows each ``model.predict`` call sees, independent of Spark's Arrow batch size.

Spark hands the UDF Arrow batches of ``spark.sql.execution.arrow.maxRecordsPerBatch``
rows (10,000 by default). Per-call overhead in many models (a forest walks every tree
once per call) makes bigger calls cheaper per row, so by default consecutive batches are
merged up to :data:`DEFAULT_MAX_ROWS` rows or :data:`DEFAULT_MAX_BYTES` of input. With an
explicit ``batch_size`` every call gets exactly that many rows (the last one fewer).
Rows are never reordered; a scalar iterator UDF may emit fewer, larger outputs than it
received inputs, because Spark joins results to input rows one by one.

Tensor models are the exception: their cost per row grows with the batch once intermediate
activations outgrow the CPU caches and the allocator hands them back to the kernel after every
call (a small CNN runs 3× slower per row at 50,000 rows a call than at 1,024, see
``bench/tensors.py``). Without a ``batch_size`` they get fixed batches of about
:data:`TENSOR_BATCH_BYTES` of input, between :data:`TENSOR_MIN_ROWS` and :data:`TENSOR_MAX_ROWS`.
"""

from __future__ import annotations

import math
from typing import Any, Iterator, Sequence

import numpy as np
import pandas as pd

DEFAULT_MAX_ROWS = 100_000
DEFAULT_MAX_BYTES = 32 << 20
TENSOR_BATCH_BYTES = 1 << 20
TENSOR_MIN_ROWS = 64
TENSOR_MAX_ROWS = 4096


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    if len(frames) == 1:
        return frames[0]
    return pd.concat(frames, ignore_index=True)


def _frame_bytes(frame: pd.DataFrame) -> int:
    # deep=False: object columns count 8 bytes a row; good enough for a merge limit.
    return int(frame.memory_usage(index=False, deep=False).sum())


def merged_batches(batches: Iterator[pd.DataFrame], max_rows: int = DEFAULT_MAX_ROWS,
                   max_bytes: int = DEFAULT_MAX_BYTES) -> Iterator[pd.DataFrame]:
    """Consecutive batches concatenated until ``max_rows`` rows or ``max_bytes`` is reached."""
    pending: list[pd.DataFrame] = []
    rows = size = 0
    for batch in batches:
        if len(batch) == 0:
            continue
        pending.append(batch)
        rows += len(batch)
        size += _frame_bytes(batch)
        if rows >= max_rows or size >= max_bytes:
            yield _concat(pending)
            pending, rows, size = [], 0, 0
    if pending:
        yield _concat(pending)


def fixed_batches(batches: Iterator[pd.DataFrame], batch_size: int) -> Iterator[pd.DataFrame]:
    """Frames of exactly ``batch_size`` rows (the last may be shorter), whatever came in."""
    carry: pd.DataFrame | None = None
    for batch in batches:
        if len(batch) == 0:
            continue
        frame = batch if carry is None else _concat([carry, batch])
        full = len(frame) - len(frame) % batch_size
        for start in range(0, full, batch_size):
            yield frame.iloc[start:start + batch_size].reset_index(drop=True)
        carry = frame.iloc[full:].reset_index(drop=True) if full < len(frame) else None
    if carry is not None:
        yield carry


def model_batches(batches: Iterator[pd.DataFrame], batch_size: int | None) -> Iterator[pd.DataFrame]:
    """The frames handed to ``model.predict``: fixed-size when asked, else merged."""
    return fixed_batches(batches, batch_size) if batch_size else merged_batches(batches)


def tensor_batch_rows(tensors: Sequence[Any]) -> int:
    """Rows per call for tensor inputs (``TensorInput``: dtype and shape) without a batch_size:
    about :data:`TENSOR_BATCH_BYTES` of input; a dimension of unknown size counts as 1."""
    row_bytes = sum(np.dtype(t.dtype).itemsize * math.prod(max(d, 1) for d in t.shape[1:]) for t in tensors)
    return min(TENSOR_MAX_ROWS, max(TENSOR_MIN_ROWS, TENSOR_BATCH_BYTES // max(row_bytes, 1)))
