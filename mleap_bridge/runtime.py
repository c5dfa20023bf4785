"""Scoring a bundle with numpy: no Spark, no JVM.

``load_bundle(path)`` compiles every node once into a kernel; ``transform(df)`` runs them
in order on a column store and returns the input columns plus every column the pipeline
produced, like Spark's ``transform``. Vector columns hold one 1-D numpy array per row.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from spark_models.exceptions import SchemaEnforcementError

from mleap_bridge.bundle import Bundle, Node, read_bundle
from mleap_bridge.frame import Frame, from_pandas, output_arrays
from mleap_bridge.ops import op_spec


def _leaves(node: Node) -> list[Node]:
    if node.op == "pipeline":
        return [leaf for child in node.children for leaf in _leaves(child)]
    return [node]


class BundleModel:
    """A loaded bundle: ``transform(pandas_df) -> pandas_df`` and its ``schema``."""

    def __init__(self, bundle: Bundle):
        self.bundle = bundle
        self.nodes = _leaves(bundle.root)
        self._kernels: list[Callable[[Frame], None]] = [op_spec(n.op, n.name).compile(n) for n in self.nodes]

    @property
    def schema(self) -> dict[str, list[str]]:
        """``inputs``: columns the pipeline reads but does not produce; ``outputs``: what it adds."""
        produced: list[str] = []
        needed: list[str] = []
        for node in self.nodes:
            needed += [c for _, c in node.inputs if c not in produced and c not in needed]
            produced += [c for _, c in node.outputs if c not in produced]
        return {"inputs": needed, "outputs": produced}

    def transform_frame(self, frame: Frame) -> Frame:
        for kernel in self._kernels:
            kernel(frame)
        return frame

    def transform_row(self, row: dict[str, Any]) -> dict[str, Any]:
        """One record in, ``row`` plus the outputs out (vectors as 1-D arrays); no pandas.

        The low-latency path for online scoring. A row ``handle_invalid='skip'`` drops
        raises instead, since there is no row to return.
        """
        data = {k: np.array([v], dtype=object if isinstance(v, str) or v is None else None) for k, v in row.items()}
        frame = self.transform_frame(Frame(data, 1))
        if frame.keep is not None and not frame.keep[0]:
            raise SchemaEnforcementError("The pipeline skipped this row (handle_invalid='skip')")
        out = dict(row)
        for name, values in frame.data.items():
            if name not in row:
                value = values[0]
                out[name] = value.item() if hasattr(value, "item") and values.ndim == 1 else value
        return out

    def transform(self, df: pd.DataFrame) -> pd.DataFrame:
        """``df`` plus the pipeline's output columns (rows skipped by ``handle_invalid='skip'`` dropped)."""
        frame = self.transform_frame(from_pandas(df))
        added = [c for c in frame.data if c not in df.columns]
        base = df if frame.keep is None else df[frame.keep]
        columns: dict[Any, Any] = {c: base[c].array for c in base.columns}
        columns.update(output_arrays(frame, added))
        return pd.DataFrame(columns, index=base.index, copy=False)


def load_bundle(path: str | Path) -> BundleModel:
    """Read a bundle (directory or zip) and compile it for numpy scoring."""
    return BundleModel(read_bundle(path))

