"""What runs inside a Spark Python worker. Imports stay light: no MLflow, no Spark session.

The model is loaded once per worker process and cached by content hash, never per batch.
"""

from __future__ import annotations

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

        if len(frame) == 0:
            return _empty(self.result_type)
        if not self.batch_size or len(frame) <= self.batch_size:  # the common case: no slicing, no copy
            return coerce_output(self._predict(model, frame), self.result_type, len(frame))
        step = self.batch_size
        parts = []
        for start in range(0, len(frame), step):
            chunk = frame.iloc[start:start + step].reset_index(drop=True)
            parts.append(coerce_output(self._predict(model, chunk), self.result_type, len(chunk)))
        return parts[0] if len(parts) == 1 else pd.concat(parts, ignore_index=True)

    def __call__(self, batches: Iterator[pd.DataFrame]) -> Iterator[pd.Series | pd.DataFrame]:
        model = cached_model(self.key, self.archive, self.local_dir)
        for batch in batches:
            yield self._score(model, batch)


def _empty(result_type: Any) -> pd.Series | pd.DataFrame:
    from pyspark.sql import types as T

    if isinstance(result_type, T.StructType):
        return pd.DataFrame({f.name: pd.Series([], dtype=object) for f in result_type.fields})
    return pd.Series([], dtype=object)
