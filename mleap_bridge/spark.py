"""Spark ``PipelineModel`` → bundle, reading fitted parameters from the pyspark objects.

No MLeap jars are needed: each op module knows how to describe its Spark stage as a node.
Vector widths (for ``vector_assembler.input_shapes``) are tracked through the stages, seeded
from ``sample_df``'s vector columns when one is given.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

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


def _node(stage: Any, widths: dict[str, int | None]) -> Node:
    from pyspark.ml import PipelineModel

    if isinstance(stage, PipelineModel):
        return Node(stage.uid, "pipeline", children=[_node(s, widths) for s in stage.stages])
    return spec_for_spark(stage).from_spark(stage, widths)


def to_bundle(pipeline_model: Any, path: str | Path, sample_df: Any = None) -> Path:
    """Write a fitted Spark ``PipelineModel`` (or single model) as a JSON bundle at ``path``.

    ``path`` ending in ``.zip`` writes a zip file, else a directory. An unsupported stage is
    an error naming the stage and the supported ones.
    """
    from pyspark.ml import PipelineModel

    model = pipeline_model if isinstance(pipeline_model, PipelineModel) else PipelineModel([pipeline_model])
    root = _node(model, _vector_widths(sample_df))
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
