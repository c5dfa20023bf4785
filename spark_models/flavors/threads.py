"""How many threads a model library may use per call: one knob for every flavor.

Gradient-boosting libraries (xgboost, lightgbm, catboost) use every core of the machine per
``predict`` by default. Inside Spark that oversubscribes: each executor core runs its own Python
worker, so two workers on two cores would each start two threads. The rule, in order:

1. ``model_config={"num_threads": n}`` (``pyfunc.load_model``, ``spark_udf``);
2. ``$SPARK_MODELS_NUM_THREADS``;
3. inside a Spark task: the task's CPUs (``spark.task.cpus``, 1 by default);
4. otherwise None: the library's own default (all cores, for a single process).
"""

from __future__ import annotations

import os
import sys
from typing import Any, Mapping

from spark_models.exceptions import InvalidArgumentError

NUM_THREADS_ENV = "SPARK_MODELS_NUM_THREADS"
CONFIG_KEY = "num_threads"


def _positive(value: Any, where: str) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = 0
    if number < 1 or isinstance(value, bool):
        raise InvalidArgumentError(f"{where} must be a positive number of threads, got {value!r}")
    return number


def num_threads(model_config: Mapping[str, Any] | None = None) -> int | None:
    """The thread count a flavor should pass to its library (None: the library's default)."""
    if model_config and model_config.get(CONFIG_KEY) is not None:
        return _positive(model_config[CONFIG_KEY], f"model_config[{CONFIG_KEY!r}]")
    raw = os.environ.get(NUM_THREADS_ENV, "").strip()
    if raw:
        return _positive(raw, NUM_THREADS_ENV)
    if "pyspark" not in sys.modules:  # no Spark in this process: no task either
        return None
    from pyspark import TaskContext

    task = TaskContext.get()
    return int(task.cpus()) if task is not None else None
