"""Spark ``PipelineModel`` → bundle, reading fitted parameters from the pyspark objects.

No MLeap jars are needed: each op module knows how to describe its Spark stage as a node.
Vector widths (for ``vector_assembler.input_shapes``) are tracked through the stages, seeded
from ``sample_df``'s vector columns when one is given. With ``sample_df``, stages that need
the data's metadata (an ``IndexToString`` without labels reads them from its input column's
ML attributes, as Spark does) see ``sample_df`` transformed by the stages before them —
lazily: only the schema is computed, no Spark job runs.

Ops that read a stage's data in bulk (tree models: their node tables) take it from Spark ML's
own persistence of the stage, through :func:`persisted_stage`: from ``spark_data_dir`` (the
directory ``pipeline_model.write().save`` wrote, e.g. a spark-flavor model's ``sparkml/``)
when given, else from a temporary save of the stage.
"""

from __future__ import annotations

import json
import logging
import re
import tempfile
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Iterator

from spark_models.exceptions import InvalidArgumentError

from mleap_bridge.bundle import Bundle, Node, write_bundle
from mleap_bridge.ops import spec_for_spark

_logger = logging.getLogger(__name__)
_STAGE_DIR = re.compile(r"^\d+_(.+)$")  # PipelineModel's stages/<index>_<uid>


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


def _stage_uid(directory: Path) -> str | None:
    """The uid in a Spark ML save's ``metadata/part-*``, or None when there is none."""
    parts = sorted((directory / "metadata").glob("part-*"))
    try:
        return json.loads(parts[0].read_text().splitlines()[0]).get("uid") if parts else None
    except (OSError, ValueError, IndexError, AttributeError):
        return None


def _saved_stages(root: Path) -> dict[str, Path]:
    """uid → directory of every stage in a Spark ML save (``root`` itself, nested pipelines too)."""
    found: dict[str, Path] = {}
    uid = _stage_uid(root)
    if uid:
        found[uid] = root
    stages = root / "stages"
    for child in sorted(stages.iterdir()) if stages.is_dir() else ():
        match = _STAGE_DIR.match(child.name)
        if match and child.is_dir():
            found.update(_saved_stages(child))
            found.setdefault(match.group(1), child)
    return found


class _Export:
    """State carried through the stages: vector widths, the sample data seen so far, and
    where Spark ML's persistence of each stage can be read."""

    def __init__(self, sample_df: Any, spark_data_dir: str | Path | None = None):
        self.widths = _vector_widths(sample_df)
        self.original = self.sample_df = sample_df
        self.before: list[Any] = []  # stages already exported (applied to sample_df on demand)
        self.saved = _saved_stages(Path(spark_data_dir)) if spark_data_dir is not None else {}
        if spark_data_dir is not None and not self.saved:
            _logger.warning("spark_data_dir %s holds no Spark ML save; stages will be saved again as needed",
                            spark_data_dir)

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


_EXPORT: ContextVar[_Export | None] = ContextVar("mleap_bridge_export", default=None)


def _write_stage(stage: Any, target: Path) -> Path | None:
    """``stage`` saved by Spark ML persistence into ``target`` (staged through the cluster's file
    system when executors do not share this disk); None when that fails or is not readable here."""
    from spark_models import staging
    from spark_models.sessions import active_session

    spark = active_session(create=False)
    if spark is None:
        return None
    try:
        staging.write_model(spark, stage, target, None)
    except Exception as e:  # the caller falls back to reading the stage through py4j
        _logger.warning("Could not save %s (%s) to read its data in bulk: %s", type(stage).__name__, stage.uid, e)
        return None
    if not (target / "metadata").is_dir():  # a Spark Connect server on another machine wrote it there
        _logger.warning("The Spark Connect server saved %s to %s, which is not readable here", stage.uid, target)
        return None
    return target


@contextmanager
def persisted_stage(stage: Any, save: bool = True) -> Iterator[Path | None]:
    """A directory holding Spark ML's save of ``stage`` (as ``stage.write().save`` writes it):
    from the current :func:`to_bundle`'s ``spark_data_dir`` when it holds the stage, else (when
    ``save``) a temporary save deleted on exit; None when neither can be read on this machine."""
    export = _EXPORT.get()
    saved = export.saved.get(stage.uid) if export is not None else None
    if saved is not None or not save:
        yield saved
        return
    with tempfile.TemporaryDirectory(prefix="mleap-bridge-stage-", ignore_cleanup_errors=True) as tmp:
        yield _write_stage(stage, Path(tmp) / "stage")


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


def to_bundle(pipeline_model: Any, path: str | Path, sample_df: Any = None,
              spark_data_dir: str | Path | None = None) -> Path:
    """Write a fitted Spark ``PipelineModel`` (or single model) as a JSON bundle at ``path``.

    ``path`` ending in ``.zip`` writes a zip file, else a directory. An unsupported stage is
    an error naming the stage and the supported ones. ``spark_data_dir``: a local directory
    where ``pipeline_model.write().save`` wrote this model (a spark-flavor model's
    ``sparkml/``); tree models read their nodes from it instead of saving themselves again.
    """
    from pyspark.ml import PipelineModel

    model = pipeline_model if isinstance(pipeline_model, PipelineModel) else PipelineModel([pipeline_model])
    export = _Export(sample_df, spark_data_dir)
    token = _EXPORT.set(export)
    try:
        root = _node(model, export)
    finally:
        _EXPORT.reset(token)
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
