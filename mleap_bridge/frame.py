"""The runtime's column store: numpy arrays by column name, plus the rows still kept.

Scalars are 1-D arrays (float64 with NaN for nulls, or object for strings with None);
vectors are 2-D float64 arrays (one row per record). ``handle_invalid="skip"`` ops drop
rows by narrowing ``keep``; output frames are filtered once at the end.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from spark_models.exceptions import SchemaEnforcementError


class Frame:
    def __init__(self, data: dict[str, np.ndarray], n: int):
        self.data = data
        self.n = n
        self.keep: np.ndarray | None = None

    def column(self, name: str, node: str) -> np.ndarray:
        try:
            return self.data[name]
        except KeyError:
            raise SchemaEnforcementError(
                f"MLeap node {node!r} needs input column {name!r}; the frame has {sorted(self.data)}"
            ) from None

    def drop(self, mask: np.ndarray) -> None:
        """Mark rows where ``mask`` is True as skipped."""
        self.keep = ~mask if self.keep is None else self.keep & ~mask


def _numeric_items(values: Any) -> bool:
    if isinstance(values, np.ndarray):
        return values.dtype.kind in "iufb"
    return all(isinstance(v, (int, float, np.number)) and not isinstance(v, bool) for v in values)


def _to_array(series: pd.Series) -> np.ndarray:
    if series.dtype == object and len(series):
        first = next((v for v in series if v is not None), None)
        if isinstance(first, (list, tuple, np.ndarray)) and _numeric_items(first):
            return np.stack([np.asarray(v, dtype=np.float64) for v in series])
    if hasattr(series.array, "_mask"):  # pandas' nullable Int64/boolean/Float64: NA becomes NaN
        return series.to_numpy(dtype=np.float64, na_value=np.nan)
    if series.dtype.kind in "iufb":
        return series.to_numpy()
    return series.to_numpy(dtype=object)


def from_pandas(df: pd.DataFrame) -> Frame:
    return Frame({str(c): _to_array(df[c]) for c in df.columns}, len(df))


def output_arrays(frame: Frame, columns: list[str]) -> dict[str, np.ndarray]:
    """1-D arrays per column (vectors as object arrays of row vectors), skipped rows removed."""
    out = {}
    for name in columns:
        values = frame.data[name]
        if frame.keep is not None:
            values = values[frame.keep]
        if values.ndim == 2:
            rows = np.empty(len(values), dtype=object)
            for i in range(len(values)):
                rows[i] = values[i]
            values = rows
        out[name] = values
    return out


def as_float(values: Any) -> np.ndarray:
    return np.asarray(values, dtype=np.float64)
