"""Reading a fitted Spark tree model's nodes as ``tree.json`` lines (used by :mod:`mleap_bridge.ops.trees`).

Spark ML's node tables (``data/``: a row per node, ``treeID`` in ensembles; ``treesMetadata``:
weights) are read with pyarrow; without a usable saved copy every node is read through py4j.
Both emit the same tree.json lines.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from spark_models.exceptions import MalformedModelError, NotSupportedError

_logger = logging.getLogger(__name__)


_PY4J_MAX_NODES = 2000  # below this, without a saved copy, py4j is faster than a Spark save


class _LayoutError(Exception):
    """The persisted stage is not laid out as this exporter expects (the caller falls back)."""


def _line(value: dict[str, Any]) -> str:
    try:
        return json.dumps(value, allow_nan=False)
    except ValueError:
        raise MalformedModelError(f"a tree node holds a non-finite number, which tree.json cannot store: {value}") from None


def _leaf(values: Any) -> str:
    return _line({"type": "leaf", "values": [float(v) for v in values]})


def _internal(feature: int, threshold: float | None, categories: Any = None, count: int = 0) -> str:
    if threshold is not None:
        spec = {"type": "continuous", "featureIndex": feature, "threshold": threshold}
    else:
        spec = {"type": "categorical", "featureIndex": feature, "numCategories": count,
                "categories": [float(c) for c in categories], "isLeft": True}
    return _line({"type": "internal", "split": spec})


def _export_node(java_node: Any, classification: bool, out: list[str]) -> None:
    if java_node.getClass().getSimpleName() == "LeafNode":
        out.append(_leaf(java_node.impurityStats().stats() if classification else [java_node.prediction()]))
        return
    split = java_node.split()
    if split.getClass().getSimpleName() == "ContinuousSplit":
        out.append(_internal(split.featureIndex(), split.threshold()))
    else:
        out.append(_internal(split.featureIndex(), None, split.leftCategories(), split.numCategories()))
    _export_node(java_node.leftChild(), classification, out)
    _export_node(java_node.rightChild(), classification, out)


def _tree_text(java_tree: Any, classification: bool) -> str:
    lines: list[str] = []
    _export_node(java_tree.rootNode(), classification, lines)
    return "\n".join(lines) + "\n"


def _jvm_trees(stage: Any, ensemble: bool, classification: bool) -> tuple[list[str], list[float] | None]:
    """The fallback: tree.json texts (and ensemble weights) read node by node through py4j."""
    from spark_models.sessions import active_session, is_connect

    if is_connect(active_session(create=False)):
        raise NotSupportedError(
            f"{type(stage).__name__} ({stage.uid}): under Spark Connect its trees can only be read from Spark ML's "
            "own save of the model, and the directory the Connect server wrote is not readable here (the server "
            "must share this machine's disk; spark_models.spark.save_model reads the model directory it saves)")
    if not ensemble:
        return [_tree_text(stage._java_obj, classification)], None
    return [_tree_text(t, classification) for t in stage._java_obj.trees()], [float(w) for w in stage.treeWeights]


def _metadata(stage_dir: Path) -> dict[str, Any]:
    parts = sorted((stage_dir / "metadata").glob("part-*"))
    if not parts:
        raise _LayoutError(f"no metadata/part-* file in {stage_dir}")
    return json.loads(parts[0].read_text().splitlines()[0])


def _column(table: Any, name: str, source: Path) -> Any:
    if name not in table.column_names:
        raise _LayoutError(f"{source} has no column {name!r} (columns: {table.column_names})")
    return table.column(name).combine_chunks()


def _fields(struct: Any, names: tuple[str, ...], where: str) -> dict[str, Any]:
    fields = dict(zip((f.name for f in struct.type), struct.flatten()))
    missing = [n for n in names if n not in fields]
    if missing:
        raise _LayoutError(f"{where} has no field(s) {missing}")
    return {n: fields[n] for n in names}


def _node_table(stage_dir: Path, ensemble: bool) -> tuple[dict[str, list], np.ndarray]:
    """The node columns of ``data/`` as Python lists, and every node's tree index."""
    import pyarrow.parquet as pq

    source = stage_dir / "data"
    table = pq.read_table(str(source))
    names = ("id", "prediction", "impurityStats", "leftChild", "rightChild", "split")
    if ensemble:
        columns = _fields(_column(table, "nodeData", source), names, f"{source} nodeData")
    else:
        columns = {n: _column(table, n, source) for n in names}
    columns.update(_fields(columns.pop("split"), ("featureIndex", "leftCategoriesOrThreshold", "numCategories"),
                           f"{source} split"))
    tree_ids = np.asarray(_column(table, "treeID", source)) if ensemble else np.zeros(table.num_rows, np.int64)
    return {name: values.to_pylist() for name, values in columns.items()}, tree_ids


def _emit(rows: list[int], c: dict[str, Any], classification: bool, where: str) -> str:
    """Pre-order tree.json text of one tree's rows, following the child ids from node 0."""
    at = {c["id"][r]: r for r in rows}
    if len(at) != len(rows) or 0 not in at:
        raise _LayoutError(f"{where}: node ids are not unique or there is no root node 0")
    lines: list[str] = []
    stack = [0]
    while stack:
        node_id = stack.pop()
        r = at.get(node_id)
        if r is None or len(lines) == len(rows):
            raise _LayoutError(f"{where}: node {node_id} is missing or reached twice")
        if c["leftChild"][r] == -1:
            lines.append(_leaf(c["impurityStats"][r] if classification else [c["prediction"][r]]))
            continue
        count, values = c["numCategories"][r], c["leftCategoriesOrThreshold"][r]
        threshold = values[0] if count == -1 else None
        lines.append(_internal(c["featureIndex"][r], threshold, None if count == -1 else sorted(set(values)), count))
        stack += [c["rightChild"][r], c["leftChild"][r]]
    if len(lines) != len(rows):
        raise _LayoutError(f"{where}: {len(rows) - len(lines)} node(s) are not reachable from the root")
    return "\n".join(lines) + "\n"


def _weights(stage_dir: Path, count: int) -> list[float]:
    import pyarrow.parquet as pq

    source = stage_dir / "treesMetadata"
    table = pq.read_table(str(source))
    ids, weights = _column(table, "_1", source).to_pylist(), _column(table, "_3", source).to_pylist()
    if sorted(ids) != list(range(count)):
        raise _LayoutError(f"{source} lists trees {sorted(ids)}, expected 0..{count - 1}")
    return [float(w) for _, w in sorted(zip(ids, weights))]


def _saved_trees(stage_dir: Path, stage: Any, ensemble: bool, classification: bool) -> tuple[list[str], list[float] | None]:
    """tree.json texts (and ensemble weights) from Spark ML's save of ``stage`` at ``stage_dir``."""
    meta = _metadata(stage_dir)
    java_class = str(meta.get("class", ""))
    if meta.get("uid") != stage.uid or java_class.rsplit(".", 1)[-1] != type(stage).__name__:
        raise _LayoutError(f"{stage_dir} holds {java_class} {meta.get('uid')!r}, not {type(stage).__name__} {stage.uid!r}")
    columns, tree_ids = _node_table(stage_dir, ensemble)
    if len(tree_ids) != _node_count(stage):  # e.g. a save of another fit of the same Pipeline (same uids)
        raise _LayoutError(f"{stage_dir} holds {len(tree_ids)} nodes, {stage.uid} has {_node_count(stage)}")
    order = np.argsort(tree_ids, kind="stable")
    bounds = np.searchsorted(tree_ids[order], np.arange(int(tree_ids.max(initial=-1)) + 2))
    if ensemble and int(meta.get("numTrees", len(bounds) - 1)) != len(bounds) - 1:
        raise _LayoutError(f"{stage_dir}: metadata says {meta.get('numTrees')} trees, data/ holds {len(bounds) - 1}")
    texts = [_emit(order[a:b].tolist(), columns, classification, f"{stage_dir / 'data'} tree {i}")
             for i, (a, b) in enumerate(zip(bounds[:-1], bounds[1:]))]
    if not texts:
        raise _LayoutError(f"{stage_dir / 'data'} holds no tree nodes")
    return texts, (_weights(stage_dir, len(texts)) if ensemble else None)


def _node_count(stage: Any) -> int:
    return int(stage.totalNumNodes if hasattr(stage, "totalNumNodes") else stage.numNodes)


def _py4j_is_cheaper(stage: Any) -> bool:
    """A small tree under a classic session: reading its nodes through py4j (~0.5 ms each) beats
    a Spark save of it (~1 s)."""
    from spark_models.sessions import active_session, is_connect

    return not is_connect(active_session(create=False)) and _node_count(stage) <= _PY4J_MAX_NODES


def trees_of(stage: Any, ensemble: bool, classification: bool) -> tuple[list[str], list[float] | None]:
    """tree.json texts and ensemble weights: from Spark ML's persistence of the stage (the
    export's ``spark_data_dir``, else a temporary save unless py4j is cheaper), else through py4j."""
    from mleap_bridge.spark import persisted_stage

    started = time.perf_counter()
    with persisted_stage(stage, save=not _py4j_is_cheaper(stage)) as stage_dir:
        if stage_dir is not None:
            try:
                texts, weights = _saved_trees(stage_dir, stage, ensemble, classification)
                _logger.debug("Read %d tree(s) of %s from %s in %.2fs", len(texts), stage.uid, stage_dir,
                              time.perf_counter() - started)
                return texts, weights
            except (_LayoutError, OSError, ValueError) as e:  # pyarrow's errors are OSError/ValueError kinds
                if isinstance(e, MalformedModelError):
                    raise
                _logger.warning("Reading the trees of %s from %s failed (%s); reading them through py4j instead",
                                stage.uid, stage_dir, e)
    texts, weights = _jvm_trees(stage, ensemble, classification)
    _logger.debug("Read %d tree(s) of %s through py4j in %.2fs", len(texts), stage.uid, time.perf_counter() - started)
    return texts, weights
