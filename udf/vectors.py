"""Spark ML vectors as they reach a pandas UDF (a struct of ``type``, ``size``, ``indices``,
``values``) → dense numpy rows: for a model's n double columns and for tensor inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd

from spark_models.exceptions import SchemaEnforcementError

VECTOR_FIELDS = ["type", "size", "indices", "values"]
_DENSE = 1  # VectorUDT's type code of a DenseVector (0: sparse)


def is_vector(frame: pd.DataFrame) -> bool:
    """Whether a struct argument is a Spark ML vector (PySpark hands its storage fields)."""
    return list(frame.columns) == VECTOR_FIELDS


def dense_rows(frame: pd.DataFrame, width: int | None, what: str, needed: str = "") -> tuple[np.ndarray, np.ndarray]:
    """The vectors as a (rows, width) float64 array (sparse ones densified) and the null-row mask.

    ``width`` None takes the vectors' own size, which must then be one size; a vector of another
    width is a SchemaEnforcementError: "<what> has k values in row r, but <needed>"."""
    values = frame["values"].to_numpy()
    kinds = frame["type"].to_numpy()
    missing = np.array([v is None for v in values], dtype=bool)
    widths = [len(v) if k == _DENSE else int(s) for k, s, v in zip(kinds, frame["size"], values) if v is not None]
    if width is None:
        width = widths[0] if widths else 0
    if len(frame) and not missing.any() and (kinds == _DENSE).all() and set(widths) == {width}:
        return np.stack(values).astype(np.float64, copy=False), missing  # all dense and of the width: one copy
    dense = np.zeros((len(frame), width), dtype=np.float64)
    for row, (kind, size, indices, vals) in enumerate(frame.itertuples(index=False, name=None)):
        if vals is None:
            continue
        got = len(vals) if kind == _DENSE else int(size)
        if got != width:
            raise SchemaEnforcementError(f"{what} has {got} values in row {row}, but {needed or f'row 0 has {width}'}")
        if kind == _DENSE:
            dense[row] = vals
        else:
            dense[row, np.asarray(indices, dtype=np.int64)] = vals
    dense[missing] = np.nan
    return dense, missing
