"""What runs inside a Spark Python worker. Imports stay light: no MLflow, no Spark session.

The model is loaded once per worker process and cached by content hash, never per batch.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd

_MODELS: dict[str, Any] = {}


def _model_dir(key: str, archive: str, local_dir: str | None) -> Path:
    if local_dir and Path(local_dir, "MLmodel").is_file():
        return Path(local_dir)  # same machine as the driver (local mode)
    from pyspark import SparkFiles

    from udf.shipping import extracted_model_dir

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


class ScoringFunction:
    """The pandas UDF body: batches in, coerced predictions out, rows and order kept."""

    def __init__(self, key: str, archive: str, local_dir: str | None, model_uri: str, result_type: Any,
                 params: dict[str, Any] | None, batch_size: int | None, tensor_specs: list | None):
        self.key, self.archive, self.local_dir = key, archive, local_dir
        self.model_uri = model_uri
        self.result_type = result_type
        self.params = params
        self.batch_size = batch_size
        self.tensor_specs = tensor_specs
        self.names: list[str] | None = None

    def named(self, names: list[str] | None) -> "ScoringFunction":
        """A copy that names the UDF's argument columns (None: one struct argument)."""
        clone = copy.copy(self)
        clone.names = names
        return clone

    def _frame(self, batch: Any) -> pd.DataFrame:
        if isinstance(batch, pd.DataFrame) and self.names is None:
            return batch  # one struct argument: its fields are the names
        series = batch if isinstance(batch, tuple) else (batch,)
        return pd.DataFrame({name: s.array for name, s in zip(self.names, series)}, copy=False)

    def _predict(self, model: Any, frame: pd.DataFrame) -> Any:
        data = reshape_tensors(frame, self.tensor_specs) if self.tensor_specs else frame
        try:
            return model.predict(data, params=self.params)
        except Exception as e:
            raise RuntimeError(
                f"Model {self.model_uri!r} failed on a batch of {len(frame)} rows with columns {list(frame.columns)}: "
                f"{type(e).__name__}: {e}"
            ) from e

    def _score(self, model: Any, frame: pd.DataFrame) -> pd.Series | pd.DataFrame:
        from udf.result_types import coerce_output

        return coerce_output(self._predict(model, frame), self.result_type, len(frame))

    def __call__(self, batches: Iterator[pd.DataFrame]) -> Iterator[pd.Series | pd.DataFrame]:
        from udf.batching import model_batches

        model = cached_model(self.key, self.archive, self.local_dir)
        for frame in model_batches(map(self._frame, batches), self.batch_size):
            yield self._score(model, frame)
