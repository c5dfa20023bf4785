"""Which device a tensor model runs on: one rule for every flavor (pytorch, onnx, tensorflow).

Spark hands GPUs to tasks: with ``spark.executor.resource.gpu.amount`` and
``spark.task.resource.gpu.amount`` set, each task sees the addresses it was given in
``TaskContext.get().resources()["gpu"].addresses`` (strings such as ``"0"``, ``"1"``), and two
tasks on one executor get different ones. The rule, in order:

1. ``model_config={"device": "cpu"}`` or ``"cuda:N"``: exactly that;
2. ``model_config={"device": "cuda"}`` (no index): inside a Spark task with GPUs, the task's first
   GPU (``cuda:<address>``); elsewhere ``cuda`` (the library's current device);
3. no ``device``: inside a Spark task with GPUs, its first GPU; otherwise ``cpu``.

A worker process can serve tasks given different GPUs, so ``spark_udf`` keys its per-worker
model cache by :func:`task_gpus` as well as by the model.
"""

from __future__ import annotations

import sys
from typing import Any, Mapping, Sequence

from spark_models.exceptions import InvalidArgumentError

CONFIG_KEY = "device"
GPU_RESOURCE = "gpu"


def task_gpus(resources: Mapping[str, Any] | None = None) -> tuple[str, ...]:
    """The GPU addresses Spark gave the running task (``()`` outside a task or without GPUs).

    ``resources`` stands in for ``TaskContext.get().resources()`` (name → object with
    ``addresses``), for callers that already hold it.
    """
    if resources is None:
        if "pyspark" not in sys.modules:  # no Spark in this process: no task either
            return ()
        from pyspark import TaskContext

        task = TaskContext.get()
        if task is None:
            return ()
        resources = task.resources()
    gpu = resources.get(GPU_RESOURCE)
    return tuple(str(a) for a in getattr(gpu, "addresses", None) or ()) if gpu is not None else ()


def _checked(device: Any) -> str:
    text = str(device).strip().lower()
    kind, _, index = text.partition(":")
    if kind not in ("cpu", "cuda", "mps") or (index and not index.isdigit()) or (kind == "cpu" and index):
        raise InvalidArgumentError(
            f"model_config[{CONFIG_KEY!r}] must be 'cpu', 'cuda', 'cuda:N' or 'mps', got {device!r}")
    return text


def resolve_device(model_config: Mapping[str, Any] | None = None, *,
                   gpus: Sequence[str] | None = None) -> str:
    """The device to load and run on (see the module docstring); ``gpus`` defaults to
    :func:`task_gpus`."""
    requested = (model_config or {}).get(CONFIG_KEY)
    if requested is not None:
        device = _checked(requested)
        if device != "cuda":
            return device
    available = task_gpus() if gpus is None else tuple(gpus)
    if available:
        return f"cuda:{available[0]}"
    return "cpu" if requested is None else "cuda"


def cuda_index(device: str) -> int:
    """The CUDA device number of ``cuda``/``cuda:N`` (0 for a bare ``cuda``)."""
    _, _, index = device.partition(":")
    return int(index) if index else 0
