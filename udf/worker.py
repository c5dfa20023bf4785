"""What runs inside a Spark Python worker. Imports stay light: no MLflow, no Spark session.

The model is loaded once per worker process and cached by content hash, never per batch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd

from spark_models.exceptions import SparkModelsError, describe
from udf.input_casts import MASK_SUFFIX
from udf.plan import UNNAMED_TENSOR, ScoringPlan
from udf.tensors import reshape_tensors
from udf.vectors import dense_rows, is_vector

_MODELS: dict[tuple[str, bool, str, tuple[str, ...]], Any] = {}


def _model_dir(key: str, archive: str, local_dir: str | None) -> Path:
    from udf.shipping import content_hash, extracted_model_dir

    # Same machine as the driver (local mode): use the directory itself, but only while it
    # still holds the model the UDF was made from (it may have been overwritten since).
    if local_dir and Path(local_dir, "MLmodel").is_file() and content_hash(Path(local_dir)) == key:
        return Path(local_dir)
    from pyspark import SparkFiles

    return extracted_model_dir(Path(SparkFiles.get(archive)), key)


def cached_model(plan: ScoringPlan) -> Any:
    """The plan's model, loaded once per worker process (and per trust mode)."""
    from spark_models.flavors.devices import task_gpus

    # The task's GPUs are part of the key: the loader places the model on them (flavors.devices).
    cache_key = (plan.model_key, plan.allow_code, repr(sorted((plan.model_config or {}).items())), task_gpus(),
                 plan.env.key if plan.env is not None else None)
    model = _MODELS.get(cache_key)
    if model is None and plan.env is not None:
        from udf.environments import env_scorer

        model = _MODELS[cache_key] = env_scorer(plan, _model_dir(plan.model_key, plan.archive, plan.local_dir))
    if model is None:
        from spark_models.pyfunc.loading import load_model

        model_dir = _model_dir(plan.model_key, plan.archive, plan.local_dir)
        model = _MODELS[cache_key] = load_model(model_dir, suppress_warnings=True, allow_code=plan.allow_code,
                                                model_config=dict(plan.model_config) if plan.model_config else None)
    return model


def _values(part: pd.Series | pd.DataFrame) -> Any:
    """One UDF argument as the values of one model column (a struct: one dict per row)."""
    return part.array if isinstance(part, pd.Series) else part.to_dict("records")


def _with_nulls(values: Any, mask: pd.Series) -> Any:
    """Integers sent with nulls as 0 plus their null mask → pandas' nullable Int32/Int64 (exact)."""
    nulls = mask.to_numpy(dtype=bool)
    if not nulls.any():
        return values
    ints = np.asarray(values)
    return pd.arrays.IntegerArray(ints.astype(np.int32 if ints.dtype.itemsize <= 4 else np.int64, copy=False), nulls)


def _vector_frame(frame: pd.DataFrame, plan: ScoringPlan) -> pd.DataFrame:
    """One ML vector argument as the model's n float columns (sparse vectors densify)."""
    names = list(plan.vector_columns)
    dense, _ = dense_rows(frame, len(names), "An ML vector argument", f"the model takes {len(names)} columns {names}")
    return pd.DataFrame(dense, columns=names)


def _vector_tensor(frame: pd.DataFrame, name: str, plan: ScoringPlan) -> list:
    """An ML vector argument of a tensor input: one dense row per vector (None for a null)."""
    shape = next((t.shape for t in plan.tensors if t.column in (name, UNNAMED_TENSOR)), ())
    width = shape[1] if len(shape) == 2 and shape[1] > 0 else None
    needed = f"the signature's tensor takes {width}" if width else ""
    dense, missing = dense_rows(frame, width, f"spark_udf: the ML vector column {name!r}", needed)
    return [None if null else row for row, null in zip(dense, missing)]


class ScoringFunction:
    """The pandas UDF body for one :class:`~udf.plan.ScoringPlan`: batches in, coerced
    predictions out, rows and order kept."""

    def __init__(self, plan: ScoringPlan):
        self.plan = plan

    def _frame(self, batch: Any) -> pd.DataFrame:
        if isinstance(batch, pd.DataFrame):
            if self.plan.flatten and not (self.plan.tensors and is_vector(batch)):
                # one struct argument: its fields are the model's columns
                return _vector_frame(batch, self.plan) if is_vector(batch) and self.plan.vector_columns else batch
            batch = (batch,)
        parts = batch if isinstance(batch, tuple) else (batch,)
        columns: dict[str, Any] = {}
        for name, part in zip(self.plan.column_names, parts):
            if name.endswith(MASK_SUFFIX):  # the null mask of the integer column before it
                base = name[:-len(MASK_SUFFIX)]
                columns[base] = _with_nulls(columns[base], part)
            elif isinstance(part, pd.DataFrame) and self.plan.tensors and is_vector(part):
                columns[name] = _vector_tensor(part, name, self.plan)
            else:
                columns[name] = _values(part)
        return pd.DataFrame(columns, copy=False)

    def _fail(self, frame: pd.DataFrame, what: str, e: Exception) -> SparkModelsError:
        return SparkModelsError(
            f"Model {self.plan.model_uri!r} {what} on a batch of {len(frame)} rows with columns {list(frame.columns)}: "
            f"{describe(e)}"
        )

    def _score(self, model: Any, frame: pd.DataFrame) -> pd.Series | pd.DataFrame:
        from udf.outputs import coerce_output

        plan = self.plan
        try:
            data = reshape_tensors(frame, plan.tensors) if plan.tensors else frame
            output = model.predict(data, params=dict(plan.params) if plan.params is not None else None)
        except Exception as e:
            raise self._fail(frame, "failed", e) from e
        try:
            return coerce_output(output, plan.result_type, len(frame), plan.declared_outputs)
        except Exception as e:
            raise self._fail(frame, f"output does not convert to {plan.result_type.simpleString()}", e) from e

    def __call__(self, batches: Iterator[Any]) -> Iterator[pd.Series | pd.DataFrame]:
        from udf.batching import model_batches

        plan = self.plan
        model = cached_model(plan)
        for frame in model_batches(map(self._frame, batches), plan.batch_size):
            yield self._score(model, frame)
