"""Frames between a scorer and its child process, over a pair of pipes.

A frame is a 1-byte tag, an 8-byte little-endian payload length and the payload. A message is
one head frame (its tag is the message kind, its payload a pickled dict whose ``"frames"`` says
how many value frames follow) and the frames of its value (see :func:`encode`).

Values: pandas DataFrames and Series and numpy arrays travel as Arrow IPC streams (the index
stays out); a dict of arrays as a key frame followed by one frame per array; anything else, or
anything Arrow refuses, as cloudpickle.
"""

from __future__ import annotations

import json
import os
import pickle
import select
import struct
import time
from typing import Any, Sequence

import cloudpickle
import numpy as np
import pandas as pd
import pyarrow as pa

from spark_models.exceptions import ScorerProcessError, ScorerTimeoutError

HEADER = struct.Struct("<cQ")

# Message kinds.
CONFIG, READY, REQUEST, OUTPUT, ERROR = b"C", b"R", b"Q", b"O", b"E"
# Value frames.
FRAME, SERIES, ARRAY, TENSORS, PICKLE = b"F", b"S", b"N", b"T", b"P"

_NAMES_KEY = b"spark_models.names"  # pickled column names, when they are not unique strings
_ARRAY_KEY = b"spark_models.ndarray"  # {"shape": [...], "dtype": "<f8"}
_ARROW_ARRAY_KINDS = set("biufUSMm")

Frame = tuple  # (tag: bytes, payload: bytes-like)


class Pipe:
    """Frames over a read fd and a write fd. With ``deadline`` (a ``time.monotonic()`` value) set,
    every read and write waits on the fd until then, then raises ScorerTimeoutError; the fds
    should be non-blocking for that. A closed peer raises ScorerProcessError."""

    def __init__(self, read_fd: int, write_fd: int):
        self.read_fd = read_fd
        self.write_fd = write_fd
        self.deadline: float | None = None

    def _wait(self, fd: int, writing: bool) -> None:
        if self.deadline is None:
            return
        remaining = self.deadline - time.monotonic()
        ready = select.select([], [fd], [], max(remaining, 0)) if writing else select.select([fd], [], [], max(remaining, 0))
        if not any(ready):
            raise ScorerTimeoutError("timed out waiting for the scorer process")

    def write(self, buffers: Sequence[Any]) -> None:
        views = [memoryview(b).cast("B") for b in buffers if len(memoryview(b).cast("B"))]
        while views:
            self._wait(self.write_fd, writing=True)
            try:
                written = os.writev(self.write_fd, views[:64])
            except (BlockingIOError, InterruptedError):
                continue
            except OSError as e:  # EPIPE: the peer is gone
                raise ScorerProcessError(f"the scorer process closed its input ({e})") from None
            while written and views:
                if written >= len(views[0]):
                    written -= len(views.pop(0))
                else:
                    views[0] = views[0][written:]
                    written = 0

    def read_exact(self, size: int, *, eof_ok: bool = False) -> bytearray | None:
        """``size`` bytes; None on end-of-file before the first byte when ``eof_ok``."""
        data = bytearray(size)
        view, got = memoryview(data), 0
        while got < size:
            self._wait(self.read_fd, writing=False)
            try:
                n = os.readv(self.read_fd, [view[got:]])
            except (BlockingIOError, InterruptedError):
                continue
            if n == 0:
                if eof_ok and got == 0:
                    return None
                raise ScorerProcessError("the scorer process closed its output (it exited or crashed)")
            got += n
        return data

    def send(self, kind: bytes, head: dict[str, Any], frames: Sequence[Frame] = ()) -> None:
        """One message: ``head`` (pickled) and the value ``frames`` from :func:`encode`."""
        payload = pickle.dumps({**head, "frames": len(frames)}, protocol=pickle.HIGHEST_PROTOCOL)
        buffers: list[Any] = [HEADER.pack(kind, len(payload)), payload]
        for tag, body in frames:
            buffers += [HEADER.pack(tag, memoryview(body).nbytes), body]
        self.write(buffers)

    def receive(self, *, eof_ok: bool = False) -> tuple[bytes, dict[str, Any], list[Frame]] | None:
        """``(kind, head, value frames)``; None on a clean end-of-file when ``eof_ok``."""
        first = self._frame(eof_ok=eof_ok)
        if first is None:
            return None
        kind, payload = first
        try:
            head = pickle.loads(payload)
            count = int(head["frames"])
        except Exception as e:
            raise ScorerProcessError(f"the scorer protocol broke: unreadable {kind!r} message ({e})") from None
        return kind, head, [self._frame() for _ in range(count)]

    def _frame(self, *, eof_ok: bool = False) -> Frame | None:
        header = self.read_exact(HEADER.size, eof_ok=eof_ok)
        if header is None:
            return None
        tag, size = HEADER.unpack(header)
        return tag, self.read_exact(size)


def encode(obj: Any) -> list[Frame]:
    """The frames of a value (see the module docstring)."""
    if isinstance(obj, dict) and obj and all(isinstance(k, str) and isinstance(v, np.ndarray) for k, v in obj.items()):
        keys = pickle.dumps(list(obj), protocol=pickle.HIGHEST_PROTOCOL)
        return [(TENSORS, keys)] + [_encode_one(v) for v in obj.values()]
    return [_encode_one(obj)]


def decode(frames: Sequence[Frame]) -> Any:
    """The value :func:`encode` turned into ``frames``."""
    tag, payload = frames[0]
    if tag == TENSORS:
        keys = pickle.loads(payload)
        if len(keys) != len(frames) - 1:
            raise ScorerProcessError(f"the scorer protocol broke: {len(keys)} tensor names, {len(frames) - 1} tensors")
        return {key: _decode_one(frame) for key, frame in zip(keys, frames[1:])}
    if len(frames) != 1:
        raise ScorerProcessError(f"the scorer protocol broke: {len(frames)} frames for one {tag!r} value")
    return _decode_one(frames[0])


def _encode_one(obj: Any) -> Frame:
    try:
        if isinstance(obj, pd.DataFrame) and _arrow_friendly(obj):
            return FRAME, _frame_stream(obj, list(obj.columns))
        if isinstance(obj, pd.Series) and _arrow_friendly(obj.to_frame(name="s")):
            return SERIES, _frame_stream(obj.to_frame(name="s"), [obj.name], keep=False)
        if isinstance(obj, np.ndarray) and obj.dtype.kind in _ARROW_ARRAY_KINDS and obj.dtype != np.float16:
            return ARRAY, _array_stream(obj)
    except (pa.ArrowException, ValueError, TypeError):
        pass  # e.g. a column of mixed types: pickle it
    return PICKLE, cloudpickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)


def _arrow_friendly(frame: pd.DataFrame) -> bool:
    """Arrow would bring these columns back as they are: no nested Python lists/dicts (they
    would return as arrays), at least one column (else the row count is lost)."""
    if frame.shape[1] == 0:
        return False
    for _, column in frame.items():
        if column.dtype == object:
            sample = column.dropna().head(1)
            if len(sample) and not isinstance(sample.iloc[0], (str, bytes, np.ndarray)):
                return False
    return True


def _stream(table: pa.Table) -> pa.Buffer:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def _frame_stream(frame: pd.DataFrame, names: list[Any], *, keep: bool = True) -> pa.Buffer:
    """``frame`` as a stream; ``names`` go in the metadata unless ``keep`` and they are unique strings."""
    simple = keep and all(type(n) is str for n in names) and len(set(names)) == len(names)
    if not simple:
        frame = frame.set_axis([f"c{i}" for i in range(len(names))], axis=1)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    if not simple:
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), _NAMES_KEY: pickle.dumps(names)})
    return _stream(table)


def _array_stream(array: np.ndarray) -> pa.Buffer:
    flat = np.ascontiguousarray(array).reshape(-1)
    meta = json.dumps({"shape": list(array.shape), "dtype": array.dtype.str}).encode()
    table = pa.Table.from_arrays([pa.array(flat)], names=["a"]).replace_schema_metadata({_ARRAY_KEY: meta})
    return _stream(table)


def _decode_one(frame: Frame) -> Any:
    tag, payload = frame
    if tag == PICKLE:
        return pickle.loads(payload)
    if tag not in (FRAME, SERIES, ARRAY):
        raise ScorerProcessError(f"the scorer protocol broke: unknown value frame {tag!r}")
    table = pa.ipc.open_stream(pa.py_buffer(payload)).read_all()
    meta = table.schema.metadata or {}
    if tag == ARRAY:
        return _table_array(table, json.loads(meta[_ARRAY_KEY]))
    frame_ = table.to_pandas()
    names = pickle.loads(meta[_NAMES_KEY]) if _NAMES_KEY in meta else None
    if tag == SERIES:
        return frame_.iloc[:, 0].rename(names[0])
    if names is not None:
        frame_.columns = pd.Index(names, tupleize_cols=False)
    return frame_


def _table_array(table: pa.Table, meta: dict[str, Any]) -> np.ndarray:
    dtype, shape = np.dtype(meta["dtype"]), tuple(meta["shape"])
    column = table.column(0).combine_chunks()
    if dtype.kind in "iuf" and column.null_count == 0 and column.type.bit_width == dtype.itemsize * 8:
        # A view of the received buffer (ours, so writable), not a copy.
        values = np.frombuffer(column.buffers()[1], dtype=column.type.to_pandas_dtype(), count=len(column),
                               offset=column.offset * dtype.itemsize)
        flat = values.astype(dtype, copy=False)
    else:
        flat = np.asarray(column.to_numpy(zero_copy_only=False)).astype(dtype, copy=False)
        if not flat.flags.writeable:
            flat = flat.copy()
    return flat.reshape(shape)


def error_head(error: BaseException) -> dict[str, Any]:
    """An ERROR message's head: the exception's class, module, message (with its notes) and traceback."""
    import traceback

    notes = getattr(error, "__notes__", None) or []
    return {"class": type(error).__name__, "module": type(error).__module__,
            "message": str(error) + "".join(f" ({note})" for note in notes),
            "traceback": "".join(traceback.format_exception(type(error), error, error.__traceback__))}
