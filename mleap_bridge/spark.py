"""Spark ``PipelineModel`` → bundle, reading fitted parameters from the pyspark objects.

No MLeap jars are needed: each op module knows how to describe its Spark stage as a node.
Vector widths (for ``vector_assembler.input_shapes``) are tracked through the stages, seeded
from ``sample_df``'s vector columns when one is given. With ``sample_df``, stages that need
the data's metadata (an ``IndexToString`` without labels reads them from its input column's
ML attributes, as Spark does) see ``sample_df`` transformed by the stages before them —
lazily: only the schema is computed, no Spark job runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from spark_models.exceptions import InvalidArgumentError

from mleap_bridge.bundle import Bundle, Node, write_bundle
from mleap_bridge.ops import spec_for_spark


def _vector_widths(sample_df: Any) -> dict[str, int | None]:
    from pyspark.ml.linalg import VectorUDT

    widths: dict[str, int | None] = {}
    if sample_df is None:
        return widths
    vectors = [f.name for f in sample_df.schema.fields if isinstance(f.dataType, VectorUDT)]
    first = sample_df.select(*vectors).first() if vectors else None
    for name in vectors:
        widths[name] = len(first[name]) if first is not None and first[name] is not None else None
    return widths


class _Export:
    """State carried through the stages: vector widths, and the sample data seen so far."""

    def __init__(self, sample_df: Any):
        self.widths = _vector_widths(sample_df)
        self.original = self.sample_df = sample_df
        self.before: list[Any] = []  # stages already exported (applied to sample_df on demand)

    def schema_for(self, column: str) -> Any:
        """A schema holding ``column``: sample_df's own (MLeap is given transformed data), else
        that of sample_df transformed by the stages before this one."""
        if column in self.original.schema.fieldNames():
            return self.original.schema
        df = self.sample_df
        for stage in self.before:
            df = stage.transform(df)
        self.sample_df, self.before = df, []
        return df.schema


def _labels_from_metadata(stage: Any, export: _Export) -> Any:
    """An IndexToString without labels, given the labels Spark would read from the column metadata."""
    if export.sample_df is None or (stage.isDefined(stage.labels) and stage.getOrDefault(stage.labels)):
        return stage
    column = stage.getInputCol()
    schema = export.schema_for(column)
    if column not in schema.fieldNames():
        raise InvalidArgumentError(f"IndexToString {stage.uid}: input column {column!r} is not in sample_df "
                                   f"(after the stages before it); it has {schema.fieldNames()}")
    attr = schema[column].metadata.get("ml_attr", {})
    labels = attr.get("vals") or attr.get("values")
    if not labels:
        raise InvalidArgumentError(f"IndexToString {stage.uid}: no labels set and input column {column!r} has no "
                                   "nominal ML attribute metadata (as a StringIndexer output has) to read them from")
    return stage.copy({stage.labels: [str(v) for v in labels]})


def _node(stage: Any, export: _Export) -> Node:
    from pyspark.ml import PipelineModel
    from pyspark.ml.feature import IndexToString

    if isinstance(stage, PipelineModel):
        return Node(stage.uid, "pipeline", children=[_node(s, export) for s in stage.stages])
    described = _labels_from_metadata(stage, export) if isinstance(stage, IndexToString) else stage
    node = spec_for_spark(described).from_spark(described, export.widths)
    export.before.append(stage)
    return node


def to_bundle(pipeline_model: Any, path: str | Path, sample_df: Any = None) -> Path:
    """Write a fitted Spark ``PipelineModel`` (or single model) as a JSON bundle at ``path``.

    ``path`` ending in ``.zip`` writes a zip file, else a directory. An unsupported stage is
    an error naming the stage and the supported ones.
    """
    from pyspark.ml import PipelineModel

    model = pipeline_model if isinstance(pipeline_model, PipelineModel) else PipelineModel([pipeline_model])
    root = _node(model, _Export(sample_df))
    return write_bundle(Bundle(root, name=model.uid), path)


def _stage(node: Node) -> Any:
    from pyspark.ml import PipelineModel

    from mleap_bridge.ops import op_spec

    if node.op == "pipeline":
        return PipelineModel([_stage(child) for child in node.children])
    spec = op_spec(node.op, node.name)
    if spec.to_spark is None:
        from spark_models.exceptions import NotSupportedError

        raise NotSupportedError(f"MLeap op {node.op!r} (node {node.name!r}) cannot be converted to a Spark stage")
    return spec.to_spark(node)


def to_spark(bundle_path: str | Path) -> Any:
    """A bundle (e.g. written by MLeap) as a Spark ``PipelineModel`` (needs a classic SparkSession)."""
    from pyspark.ml import PipelineModel

    from mleap_bridge.bundle import read_bundle

    stage = _stage(read_bundle(bundle_path).root)
    return stage if isinstance(stage, PipelineModel) else PipelineModel([stage])
