"""What runs inside a Spark Python worker. Imports stay light: no MLflow, no Spark session.

The model is loaded once per worker process and cached by content hash, never per batch.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd

from spark_models.exceptions import SparkModelsError

_MODELS: dict[str, Any] = {}


def _model_dir(key: str, archive: str, local_dir: str | None) -> Path:
    from udf.shipping import content_hash, extracted_model_dir

    # Same machine as the driver (local mode): use the directory itself, but only while it
    # still holds the model the UDF was made from (it may have been overwritten since).
    if local_dir and Path(local_dir, "MLmodel").is_file() and content_hash(Path(local_dir)) == key:
        return Path(local_dir)
    from pyspark import SparkFiles

    return extracted_model_dir(Path(SparkFiles.get(archive)), key)


def cached_model(key: str, archive: str, local_dir: str | None) -> Any:
    model = _MODELS.get(key)
    if model is None:
        from spark_models.pyfunc import load_model

        model = _MODELS[key] = load_model(_model_dir(key, archive, local_dir), suppress_warnings=True)
    return model


def reshape_tensors(frame: pd.DataFrame, tensor_specs: list[tuple[str, str, tuple[int, ...]]]) -> Any:
    """Array columns → ndarrays shaped per the TensorSpec (C order) and cast to its dtype."""
    arrays = {}
    for name, dtype, shape in tensor_specs:
        column = frame.iloc[:, 0] if name == "_tensor_" else frame[name]
        stacked = np.stack([np.asarray(v) for v in column]) if len(column) else np.empty((0,))
        arrays[name] = stacked.reshape((len(column), *shape[1:])).astype(dtype, copy=False)
    if len(arrays) == 1 and tensor_specs[0][0] == "_tensor_":
        return arrays["_tensor_"]
    return arrays


def _values(part: pd.Series | pd.DataFrame) -> Any:
    """One UDF argument as the values of one model column (a struct: one dict per row)."""
    return part.array if isinstance(part, pd.Series) else part.to_dict("records")


class ScoringFunction:
    """The pandas UDF body: batches in, coerced predictions out, rows and order kept."""

    def __init__(self, key: str, archive: str, local_dir: str | None, model_uri: str, result_type: Any,
                 params: dict[str, Any] | None, batch_size: int | None, tensor_specs: list | None,
                 declared: dict | None = None):
        self.key, self.archive, self.local_dir = key, archive, local_dir
        self.model_uri = model_uri
        self.result_type = result_type
        self.params = params
        self.batch_size = batch_size
        self.tensor_specs = tensor_specs
        self.declared = declared
        self.names: list[str] | None = None
        self.flatten = True

    def named(self, names: list[str] | None, flatten: bool = False) -> "ScoringFunction":
        """A copy that names the UDF's argument columns (None: one struct argument).

        ``flatten``: a single argument that arrives as a struct hands the model its fields.
        """
        clone = copy.copy(self)
        clone.names, clone.flatten = names, flatten or names is None
        return clone

    def _frame(self, batch: Any) -> pd.DataFrame:
        if isinstance(batch, pd.DataFrame):
            if self.flatten:
                return batch  # one struct argument: its fields are the model's columns
            batch = (batch,)
        parts = batch if isinstance(batch, tuple) else (batch,)
        return pd.DataFrame({name: _values(p) for name, p in zip(self.names, parts)}, copy=False)

    def _fail(self, frame: pd.DataFrame, what: str, e: Exception) -> SparkModelsError:
        return SparkModelsError(
            f"Model {self.model_uri!r} {what} on a batch of {len(frame)} rows with columns {list(frame.columns)}: "
            f"{type(e).__name__}: {e}"
        )

    def _score(self, model: Any, frame: pd.DataFrame) -> pd.Series | pd.DataFrame:
        from udf.coercion import coerce_output

        try:
            data = reshape_tensors(frame, self.tensor_specs) if self.tensor_specs else frame
            output = model.predict(data, params=self.params)
        except Exception as e:
            raise self._fail(frame, "failed", e) from e
        try:
            return coerce_output(output, self.result_type, len(frame), self.declared)
        except Exception as e:
            raise self._fail(frame, f"output does not convert to {self.result_type.simpleString()}", e) from e

    def __call__(self, batches: Iterator[Any]) -> Iterator[pd.Series | pd.DataFrame]:
        from udf.batching import model_batches

        model = cached_model(self.key, self.archive, self.local_dir)
        for frame in model_batches(map(self._frame, batches), self.batch_size):
            yield self._score(model, frame)
