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


_TOKENS = "list<string>"
# op → (input type, output type) of its plain input/output ports; None where it depends
_PORT_TYPES: dict[str, tuple[str | None, str | None]] = {
    "string_indexer": ("string", "double"), "reverse_string_indexer": ("double", "string"),
    "one_hot_encoder": ("double", "vector"), "vector_assembler": (None, "vector"), "bucketizer": ("double", "double"),
    "imputer": ("double", "double"), "binarizer": (None, None), "tokenizer": ("string", _TOKENS),
    "regex_tokenizer": ("string", _TOKENS), "stopwords_remover": (_TOKENS, _TOKENS), "ngram": (_TOKENS, _TOKENS),
    "hashing_term_frequency": (_TOKENS, "vector"), "count_vectorizer": (_TOKENS, "vector"),
}
_PREDICTOR_PORTS = {"features": "vector", "prediction": "double", "probability": "vector", "raw_prediction": "vector"}


def _types(node: Node, known: dict[str, str]) -> dict[str, str]:
    """Column → type name (double, string, vector, list<string>) for the sockets of ``node``."""
    default_in, default_out = _PORT_TYPES.get(node.op, ("vector", "vector"))
    types: dict[str, str] = {}
    shapes = node.attr("input_shapes", "list", []) if node.op == "vector_assembler" else []
    for i, (port, column) in enumerate(node.inputs):
        shape = shapes[i] if i < len(shapes) and isinstance(shapes[i], dict) else {}
        kind = _PREDICTOR_PORTS.get(port) or ({"scalar": "double", "tensor": "vector"}.get(shape.get("base", "")))
        types[column] = kind or default_in or known.get(column, "double")
    for port, column in node.outputs:
        source = known.get(node.inputs[0][1]) if node.inputs else None
        types[column] = _PREDICTOR_PORTS.get(port) or default_out or source or "double"
    return types


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
    def schema(self) -> dict[str, Any]:
        """``inputs``: columns the pipeline reads but does not produce; ``outputs``: what it adds;
        ``types``: each of those columns' type — double, string, vector or list<string>."""
        produced: list[str] = []
        needed: list[str] = []
        types: dict[str, str] = {}
        for node in self.nodes:
            needed += [c for _, c in node.inputs if c not in produced and c not in needed]
            produced += [c for _, c in node.outputs if c not in produced]
            outputs = {c for _, c in node.outputs}
            for column, kind in _types(node, types).items():
                if column in outputs or column not in types:  # a producer's output type wins
                    types[column] = kind
        return {"inputs": needed, "outputs": produced, "types": {c: types[c] for c in needed + produced}}

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

