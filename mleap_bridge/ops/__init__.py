"""Op registry: bundle op name → :class:`OpSpec` (numpy kernel, Spark → node, node → Spark).

Each op module registers its ops with :func:`register`; an op that is not registered is an
error naming the op and the node.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable

from spark_models.exceptions import NotSupportedError

_MODULES = ("mleap_bridge.ops.feature", "mleap_bridge.ops.linear", "mleap_bridge.ops.scaling", "mleap_bridge.ops.discrete", "mleap_bridge.ops.trees", "mleap_bridge.ops.models", "mleap_bridge.ops.text")


@dataclass
class OpSpec:
    op: str
    compile: Callable[[Any], Callable[[Any], None]]  # node → kernel(frame)
    spark_classes: tuple[str, ...] = ()  # pyspark class names this op exports
    from_spark: Callable[..., Any] | None = None  # (stage, shapes) → Node
    to_spark: Callable[[Any], Any] | None = None  # node → pyspark stage


_OPS: dict[str, OpSpec] = {}
_BY_SPARK_CLASS: dict[str, OpSpec] = {}
_loaded = False


def register(spec: OpSpec) -> OpSpec:
    _OPS[spec.op] = spec
    for cls in spec.spark_classes:
        _BY_SPARK_CLASS[cls] = spec
    return spec


def _load() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        for module in _MODULES:
            importlib.import_module(module)


def op_spec(op: str, node_name: str) -> OpSpec:
    _load()
    spec = _OPS.get(op)
    if spec is None:
        raise NotSupportedError(f"MLeap op {op!r} (node {node_name!r}) is not supported by mleap_bridge; supported: {sorted(_OPS)}")
    return spec


def spec_for_spark(stage: Any) -> OpSpec:
    _load()
    name = type(stage).__name__
    spec = _BY_SPARK_CLASS.get(name)
    if spec is None or spec.from_spark is None:
        supported = sorted(k for k, v in _BY_SPARK_CLASS.items() if v.from_spark)
        raise NotSupportedError(f"Spark stage {name} ({stage.uid}) cannot be exported to MLeap; supported: {supported}")
    return spec


def supported_ops() -> list[str]:
    _load()
    return sorted(_OPS)
