"""Feature ops: vector_assembler, string_indexer, one_hot_encoder, standard_scaler."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from spark_models.exceptions import MalformedModelError, SchemaEnforcementError

from mleap_bridge import attributes as A
from mleap_bridge.bundle import Node
from mleap_bridge.frame import Frame, as_float
from mleap_bridge.ops import OpSpec, register

Kernel = Callable[[Frame], None]


def numbered_ports(sockets: list[tuple[str, str]], prefix: str) -> list[str]:
    """Columns of ports ``prefix0, prefix1, …`` in numeric order."""
    numbered = [(int(p[len(prefix):]), c) for p, c in sockets if p.startswith(prefix) and p[len(prefix):].isdigit()]
    return [c for _, c in sorted(numbered)]


def _ports(node: Node, side: str) -> list[str]:
    """Multi-column ops use input0.. / output0..; single-column ones input / output."""
    sockets = node.inputs if side == "input" else node.outputs
    cols = numbered_ports(sockets, side)
    return cols or [c for p, c in sockets if p == side]


# ---- vector_assembler -------------------------------------------------------------------

_ASSEMBLER_DEFAULT = "error"  # Spark's default; MLeap's own bundles carry no handle_invalid and MLeap fails on nulls


def _declared_width(node: Node) -> int:
    """The output width ``input_shapes`` declares (scalars count 1), each size and the sum within the limit."""
    total = 0
    for i, shape in enumerate(node.attr("input_shapes", "list", [])):
        tensor = shape.get("tensorShape") if isinstance(shape, dict) else None
        dims = tensor.get("dimensions") if isinstance(tensor, dict) else None
        if not isinstance(dims, list):
            total += 1
            continue
        for d in dims:
            size = d.get("size", -1) if isinstance(d, dict) else d
            if not (isinstance(size, int) and size < 0):  # MLeap writes -1 for a size it does not know
                total += node.checked(f"input_shapes[{i}] size", size)
    return node.checked("input_shapes (total width)", total)


def _assembler(node: Node) -> Kernel:
    inputs, output = numbered_ports(node.inputs, "input"), node.output()
    _declared_width(node)
    invalid = node.attr("handle_invalid", "string", _ASSEMBLER_DEFAULT)

    def run(frame: Frame) -> None:
        parts = [as_float(frame.column(c, node.name)) for c in inputs]
        matrix = np.column_stack([p if p.ndim == 2 else p[:, None] for p in parts]) if parts else np.empty((frame.n, 0))
        scalars = [p for p in parts if p.ndim == 1]
        if invalid != "keep" and scalars and np.isnan(matrix).any():  # only null/NaN scalars are invalid, not NaN in vectors
            bad = np.isnan(np.column_stack(scalars)).any(axis=1)
            if frame.keep is not None:
                bad &= frame.keep  # rows an earlier op skipped do not count
            if invalid == "error" and bad.any():
                row = int(np.argmax(bad))
                columns = [c for c, p in zip(inputs, parts) if p.ndim == 1 and np.isnan(p[row])]
                raise SchemaEnforcementError(
                    f"MLeap node {node.name!r} (vector_assembler): null/NaN in column(s) {columns} at row {row} "
                    "(handle_invalid='error')"
                )
            if invalid == "skip":
                frame.drop(bad)
        frame.data[output] = matrix

    return run


def _assembler_from_spark(stage: Any, shapes: dict[str, int | None]) -> Node:
    inputs = stage.getInputCols()
    data_shapes = []
    for c in inputs:
        size = shapes.get(c)
        if size is None:
            data_shapes.append({"base": "scalar", "isNullable": True})
        else:
            data_shapes.append({"base": "tensor", "isNullable": True,
                                "tensorShape": {"dimensions": [{"size": size, "name": ""}]}})
    shapes[stage.getOutputCol()] = sum(shapes.get(c) or 1 for c in inputs)
    return Node(stage.uid, "vector_assembler",
                {"input_shapes": {"type": "list", "data_shape": data_shapes},
                 "handle_invalid": A.scalar("string", stage.getHandleInvalid())},
                [(f"input{i}", c) for i, c in enumerate(inputs)], [("output", stage.getOutputCol())])


def _assembler_to_spark(node: Node) -> Any:
    from pyspark.ml.feature import VectorAssembler

    return VectorAssembler(inputCols=numbered_ports(node.inputs, "input"), outputCol=node.output(),
                           handleInvalid=node.attr("handle_invalid", "string", _ASSEMBLER_DEFAULT))


register(OpSpec("vector_assembler", _assembler, ("VectorAssembler",), _assembler_from_spark, _assembler_to_spark))


# ---- string_indexer ---------------------------------------------------------------------

def _as_strings(values: np.ndarray) -> np.ndarray:
    if values.dtype == object:
        return values
    out = values.astype(object)
    if values.dtype.kind == "f":
        out[np.isnan(values)] = None
    return np.array([v if v is None else str(v) for v in out], dtype=object)


def _label_lists(node: Node) -> list[list[str]]:
    if "labels_length" in node.attributes:
        count = node.size("labels_length", "int")
        missing = next((i for i in range(count) if f"labels_array_{i}" not in node.attributes), None)
        if missing is not None:  # found before count runs far past the attributes there are
            raise MalformedModelError(f"MLeap node {node.name!r} (string_indexer): labels_length is {count} but "
                                      f"there is no attribute 'labels_array_{missing}'")
        return [node.attr(f"labels_array_{i}", "list", []) for i in range(count)]
    return [node.attr("labels", "list", [])]


def _indexer(node: Node) -> Kernel:
    inputs, outputs = _ports(node, "input"), _ports(node, "output")
    lookups = [{label: float(i) for i, label in enumerate(labels)} for labels in _label_lists(node)]
    invalid = node.attr("handle_invalid", "string", "error")

    def run(frame: Frame) -> None:
        for column, output, lookup in zip(inputs, outputs, lookups):
            values = _as_strings(frame.column(column, node.name))
            index = np.fromiter((lookup.get(v, -1.0) if v is not None else -1.0 for v in values), np.float64, len(values))
            bad = index < 0
            if bad.any():
                if invalid == "error":
                    raise SchemaEnforcementError(
                        f"MLeap node {node.name!r}: unseen or null value {values[bad][0]!r} in column {column!r} "
                        "(handle_invalid='error')"
                    )
                if invalid == "skip":
                    frame.drop(bad)  # a valid placeholder keeps later ops quiet on rows already dropped
                index[bad] = 0.0 if invalid == "skip" else float(len(lookup))
            frame.data[output] = index

    return run


def _indexer_from_spark(stage: Any, shapes: dict[str, int | None]) -> Node:
    labels = [list(x) for x in stage.labelsArray]
    inputs = stage.getInputCols() if stage.isSet(stage.inputCols) else [stage.getInputCol()]
    outputs = stage.getOutputCols() if stage.isSet(stage.outputCols) else [stage.getOutputCol()]
    attributes = {"handle_invalid": A.scalar("string", stage.getHandleInvalid()),
                  "labels_length": A.scalar("int", len(labels))}
    for i, ls in enumerate(labels):
        attributes[f"labels_array_{i}"] = A.listed("string", ls)
    for c in outputs:
        shapes[c] = None
    return Node(stage.uid, "string_indexer", attributes,
                [(f"input{i}", c) for i, c in enumerate(inputs)], [(f"output{i}", c) for i, c in enumerate(outputs)])


def _indexer_to_spark(node: Node) -> Any:
    from pyspark.ml.feature import StringIndexerModel

    invalid = node.attr("handle_invalid", "string", "error")
    labels, inputs, outputs = _label_lists(node), _ports(node, "input"), _ports(node, "output")
    if len(inputs) == 1:
        return StringIndexerModel.from_labels(labels[0], inputs[0], outputs[0], handleInvalid=invalid)
    from mleap_bridge import jvm

    return jvm.new_model("org.apache.spark.ml.feature.StringIndexerModel", StringIndexerModel, node.name,
                         jvm.string_arrays(labels), inputCols=inputs, outputCols=outputs, handleInvalid=invalid)


register(OpSpec("string_indexer", _indexer, ("StringIndexerModel",), _indexer_from_spark, _indexer_to_spark))


# ---- one_hot_encoder --------------------------------------------------------------------

_TABLE_LIMIT = 1 << 20  # one-hot lookup tables up to this many cells; bigger encoders scatter


def _one_hot(index: np.ndarray, width: int, categories: int, keep_invalid: bool, table: np.ndarray | None,
             where: Callable[[], str]) -> np.ndarray:
    """Spark's OneHotEncoderModel: index ≥ width (the dropped last slot, or invalid) → all zeros."""
    idx = as_float(index)
    valid = (idx >= 0) & (idx < categories)
    whole = idx.astype(np.int64) if valid.all() else np.where(valid, idx, 0).astype(np.int64)
    valid &= whole == idx
    if not valid.all():
        if not keep_invalid:
            raise SchemaEnforcementError(f"{where()}: invalid category index {idx[~valid][0]!r} (handle_invalid='error')")
        whole = np.where(valid, whole, categories)
    if table is not None:
        return table[whole]  # row i of an identity matrix; rows ≥ width are zeros
    out = np.zeros((len(whole), width))
    hot = whole < width
    out[np.nonzero(hot)[0], whole[hot]] = 1.0
    return out


def _category_sizes(node: Node) -> list[int] | None:
    """``category_sizes`` (current multi-column form), each checked; None in the old form."""
    sizes = node.attr("category_sizes", "list", None)
    return None if sizes is None else [node.checked(f"category_sizes[{i}]", s) for i, s in enumerate(sizes)]


def _encoder_specs(node: Node) -> list[tuple[int, int, bool]]:
    """(output width, categories, keep invalid) per column, every width within the vector-size limit."""
    drop_last = node.attr("drop_last", "boolean")
    sizes = _category_sizes(node)
    if sizes is None:  # MLeap's old single-column form: `size` is the output width
        width = node.size("size", "long")
        return [(width, width + 1 if drop_last else width, False)]
    keep = node.attr("handle_invalid", "string", "error") == "keep"
    return [(node.checked(f"output width of category_sizes[{i}]", s + int(keep) - int(drop_last)), s, keep)
            for i, s in enumerate(sizes)]


def _encoder(node: Node) -> Kernel:
    inputs, outputs = _ports(node, "input"), _ports(node, "output")
    specs = _encoder_specs(node)
    tables = [np.eye(c + 1, w) if (c + 1) * w <= _TABLE_LIMIT else None for w, c, _ in specs]

    def run(frame: Frame) -> None:
        for column, output, (width, categories, keep_invalid), table in zip(inputs, outputs, specs, tables):
            frame.data[output] = _one_hot(frame.column(column, node.name), width, categories, keep_invalid, table,
                                          lambda: f"MLeap node {node.name!r}, column {column!r}")

    return run


def _encoder_from_spark(stage: Any, shapes: dict[str, int | None]) -> Node:
    sizes = list(stage.categorySizes)
    keep, drop_last = stage.getHandleInvalid() == "keep", stage.getDropLast()
    inputs = stage.getInputCols() if stage.isSet(stage.inputCols) else [stage.getInputCol()]
    outputs = stage.getOutputCols() if stage.isSet(stage.outputCols) else [stage.getOutputCol()]
    for c, s in zip(outputs, sizes):
        shapes[c] = s + int(keep) - int(drop_last)
    return Node(stage.uid, "one_hot_encoder",
                {"category_sizes": A.listed("int", sizes), "drop_last": A.scalar("boolean", drop_last),
                 "handle_invalid": A.scalar("string", stage.getHandleInvalid())},
                [(f"input{i}", c) for i, c in enumerate(inputs)], [(f"output{i}", c) for i, c in enumerate(outputs)])


def _encoder_to_spark(node: Node) -> Any:
    from pyspark.ml.feature import OneHotEncoderModel

    from mleap_bridge import jvm

    drop_last = bool(node.attr("drop_last", "boolean"))
    sizes = _category_sizes(node)
    invalid = node.attr("handle_invalid", "string", "error")
    if sizes is None:  # old form: `size` is the output width
        sizes, invalid = [node.size("size", "long") + int(drop_last)], "error"
    return jvm.new_model("org.apache.spark.ml.feature.OneHotEncoderModel", OneHotEncoderModel, node.name,
                         jvm.int_array(sizes), inputCols=_ports(node, "input"), outputCols=_ports(node, "output"),
                         dropLast=drop_last, handleInvalid=invalid)


register(OpSpec("one_hot_encoder", _encoder, ("OneHotEncoderModel",), _encoder_from_spark, _encoder_to_spark))


# ---- standard_scaler --------------------------------------------------------------------

def _scaler(node: Node) -> Kernel:
    mean = node.attr("mean", "tensor", None)
    std = node.attr("std", "tensor", None)
    factor = None if std is None else np.divide(1.0, std, out=np.zeros_like(std, dtype=np.float64), where=std != 0)
    if mean is not None and std is not None and np.shape(mean) != np.shape(std):
        raise MalformedModelError(f"MLeap node {node.name!r} (standard_scaler): attribute 'mean' has shape "
                                  f"{np.shape(mean)} but 'std' has {np.shape(std)}")
    column, output = node.input(), node.output()

    def run(frame: Frame) -> None:
        x = as_float(frame.column(column, node.name))
        if mean is not None:
            x = x - mean
        if factor is not None:
            x = x * factor
        frame.data[output] = x

    return run


def _scaler_from_spark(stage: Any, shapes: dict[str, int | None]) -> Node:
    attributes = {}
    if stage.getWithMean():
        attributes["mean"] = A.tensor(stage.mean.toArray())
    if stage.getWithStd():
        attributes["std"] = A.tensor(stage.std.toArray())
    shapes[stage.getOutputCol()] = len(stage.std)
    return Node(stage.uid, "standard_scaler", attributes, [("input", stage.getInputCol())], [("output", stage.getOutputCol())])


def _scaler_to_spark(node: Node) -> Any:
    from pyspark.ml.feature import StandardScalerModel

    from mleap_bridge import jvm

    mean, std = node.attr("mean", "tensor", None), node.attr("std", "tensor", None)
    width = len(mean if mean is not None else std)
    return jvm.new_model(
        "org.apache.spark.ml.feature.StandardScalerModel", StandardScalerModel, node.name,
        jvm.dense_vector(std if std is not None else np.ones(width)),
        jvm.dense_vector(mean if mean is not None else np.zeros(width)),
        inputCol=node.input(), outputCol=node.output(), withMean=mean is not None, withStd=std is not None,
    )


register(OpSpec("standard_scaler", _scaler, ("StandardScalerModel",), _scaler_from_spark, _scaler_to_spark))
