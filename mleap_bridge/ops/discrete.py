"""Discrete transforms: reverse_string_indexer (IndexToString), bucketizer, imputer."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from spark_models.exceptions import InvalidArgumentError, MalformedModelError, SchemaEnforcementError

from mleap_bridge import attributes as A
from mleap_bridge.bundle import Node
from mleap_bridge.frame import Frame, as_float
from mleap_bridge.ops import OpSpec, register

Kernel = Callable[[Frame], None]


def _pipeline_of(uid: str, nodes: list[Node]) -> Node:
    return nodes[0] if len(nodes) == 1 else Node(uid, "pipeline", children=nodes)


def _columns(stage: Any) -> list[tuple[str, str]]:
    if stage.hasParam("inputCols") and stage.isSet(stage.inputCols):
        return list(zip(stage.getInputCols(), stage.getOutputCols()))
    return [(stage.getInputCol(), stage.getOutputCol())]


# ---- reverse_string_indexer -------------------------------------------------------------

def _reverse(node: Node) -> Kernel:
    labels = np.asarray(node.attr("labels", "list"), dtype=object)
    column, output = node.input(), node.output()

    def run(frame: Frame) -> None:
        idx = as_float(frame.column(column, node.name))
        bad = ~((idx >= 0) & (idx < len(labels)) & (idx == np.floor(idx)))
        if frame.keep is not None:
            bad &= frame.keep
        if bad.any():
            raise SchemaEnforcementError(f"MLeap node {node.name!r}: index {idx[bad][0]!r} in {column!r} has no label")
        frame.data[output] = labels[np.where(bad, 0, idx).astype(np.int64)]

    return run


def _reverse_from_spark(stage: Any, shapes: dict) -> Node:
    """Labels must be set; :mod:`mleap_bridge.spark` sets them from the input column's
    metadata (where Spark's IndexToString reads them when none are given) if it can."""
    labels = stage.getOrDefault(stage.labels) if stage.isDefined(stage.labels) else None
    if not labels:
        raise InvalidArgumentError(
            f"IndexToString {stage.uid}: no labels set, so Spark takes them from the metadata of input column "
            f"{stage.getInputCol()!r}; pass sample_df= (a DataFrame the pipeline can transform) so they can be read")
    shapes[stage.getOutputCol()] = None
    return Node(stage.uid, "reverse_string_indexer",
                {"labels": A.listed("string", labels),
                 "input_shape": {"data_shape": {"base": "scalar", "isNullable": False}}},
                [("input", stage.getInputCol())], [("output", stage.getOutputCol())])


def _reverse_to_spark(node: Node) -> Any:
    from pyspark.ml.feature import IndexToString

    return IndexToString(inputCol=node.input(), outputCol=node.output(), labels=list(node.attr("labels", "list")))


register(OpSpec("reverse_string_indexer", _reverse, ("IndexToString",), _reverse_from_spark, _reverse_to_spark))


# ---- bucketizer -------------------------------------------------------------------------

def _splits(node: Node) -> np.ndarray:
    """The splits, with MLeap's ``null`` (read as NaN) outer splits restored to ∓infinity."""
    splits = as_float(node.attr("splits", "list"))
    if len(splits) and np.isnan(splits[0]):
        splits[0] = -np.inf
    if len(splits) and np.isnan(splits[-1]):
        splits[-1] = np.inf
    if len(splits) < 2 or np.isnan(splits).any() or (np.diff(splits) <= 0).any():
        raise MalformedModelError(f"bucketizer node {node.name!r}: splits {splits.tolist()} must be at least two "
                                  "strictly increasing numbers")
    return splits


def _bucketizer(node: Node) -> Kernel:
    splits = _splits(node)
    invalid = node.attr("handle_invalid", "string", "error")
    column, output = node.input(), node.output()
    buckets = len(splits) - 1

    def run(frame: Frame) -> None:
        x = as_float(frame.column(column, node.name))
        index = np.searchsorted(splits, x, side="right") - 1.0
        index[x == splits[-1]] = buckets - 1  # the last bucket includes its upper bound
        nan = np.isnan(x)
        outside = ~nan & ((x < splits[0]) | (x > splits[-1]))
        if outside.any():
            raise SchemaEnforcementError(f"MLeap node {node.name!r}: value {x[outside][0]!r} in {column!r} is outside the splits")
        # pandas cannot tell null from NaN; Spark gives null for a null input whatever
        # handle_invalid says, and "skip" drops it, so NaN is treated as null here.
        if nan.any() and invalid == "skip":
            frame.drop(nan)
        index[nan] = np.nan
        frame.data[output] = index

    return run


def _bucketizer_from_spark(stage: Any, shapes: dict) -> Node:
    multi = stage.isSet(stage.splitsArray) if stage.hasParam("splitsArray") else False
    splits = stage.getSplitsArray() if multi else [stage.getSplits()]
    nodes = []
    for i, ((source, target), s) in enumerate(zip(_columns(stage), splits)):
        shapes[target] = None
        nodes.append(Node(f"{stage.uid}_{i}" if multi else stage.uid, "bucketizer",
                          {"splits": A.listed("double", s), "handle_invalid": A.scalar("string", stage.getHandleInvalid())},
                          [("input", source)], [("output", target)]))
    return _pipeline_of(stage.uid, nodes)


def _bucketizer_to_spark(node: Node) -> Any:
    from pyspark.ml.feature import Bucketizer

    return Bucketizer(splits=[float(s) for s in _splits(node)], inputCol=node.input(),
                      outputCol=node.output(), handleInvalid=node.attr("handle_invalid", "string", "error"))


register(OpSpec("bucketizer", _bucketizer, ("Bucketizer",), _bucketizer_from_spark, _bucketizer_to_spark))


# ---- imputer ----------------------------------------------------------------------------

def _imputer(node: Node) -> Kernel:
    surrogate = float(node.attr("surrogate_value", "double"))
    missing = float(node.attr("missing_value", "double", float("nan")))
    column, output = node.input(), node.output()

    def run(frame: Frame) -> None:
        x = as_float(frame.column(column, node.name))
        hole = np.isnan(x) if np.isnan(missing) else (np.isnan(x) | (x == missing))
        frame.data[output] = np.where(hole, surrogate, x)

    return run


def _imputer_from_spark(stage: Any, shapes: dict) -> Node:
    surrogates = stage.surrogateDF.first().asDict()
    nodes = []
    for i, (source, target) in enumerate(_columns(stage)):
        shapes[target] = None
        nodes.append(Node(f"{stage.uid}_{i}", "imputer", {
            "surrogate_value": A.scalar("double", float(surrogates[source])),
            "missing_value": A.scalar("double", float(stage.getMissingValue())),
            "strategy": A.scalar("string", stage.getStrategy()),
            "nullable_input": A.scalar("boolean", True),
        }, [("input", source)], [("output", target)]))
    return _pipeline_of(stage.uid, nodes)


def _imputer_to_spark(node: Node) -> Any:
    """Spark 4 builds ImputerModel from (uid, columns, surrogates); Spark 3 from a surrogate DataFrame."""
    from pyspark.ml.feature import ImputerModel

    from mleap_bridge import jvm

    column, surrogate = node.input(), float(node.attr("surrogate_value", "double"))
    params = {"inputCols": [column], "outputCols": [node.output()],
              "missingValue": float(node.attr("missing_value", "double", float("nan")))}
    try:
        gw = jvm.gateway()
        names = jvm.string_arrays([[column]])[0]
        values = gw.new_array(gw.jvm.double, 1)
        values[0] = surrogate
        return jvm.new_model("org.apache.spark.ml.feature.ImputerModel", ImputerModel, node.name, names, values, **params)
    except Exception:
        from spark_models.sessions import active_session

        frame = active_session().createDataFrame([(surrogate,)], f"`{column}` double")
        return jvm.new_model("org.apache.spark.ml.feature.ImputerModel", ImputerModel, node.name, frame._jdf, **params)


register(OpSpec("imputer", _imputer, ("ImputerModel",), _imputer_from_spark, _imputer_to_spark))
