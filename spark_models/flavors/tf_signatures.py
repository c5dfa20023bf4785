"""A TensorFlow SavedModel signature as a pyfunc (``tf2-module`` models, Keras exports), and the
small input and device helpers it shares with the Keras code."""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
import pandas as pd

from spark_models.exceptions import InvalidArgumentError, SchemaEnforcementError

SERVING = "serving_default"


def tf_scope(device: str | None) -> Any:
    """``tf.device(device)`` (no scope for None)."""
    if device is None:
        return contextlib.nullcontext()
    import tensorflow as tf

    return tf.device(device)


def column_array(column: pd.Series, dtype: Any = None, rank: int | None = None) -> np.ndarray:
    """A column as one input array: cells holding arrays stacked; rank-2 inputs get a trailing axis."""
    values = column.to_numpy()
    array = np.stack(values) if values.dtype == object and len(values) and np.ndim(values[0]) else values
    if dtype is not None and np.issubdtype(np.dtype(dtype), np.floating) and array.dtype != object:
        array = array.astype(dtype)
    return array.reshape(-1, 1) if rank == 2 and array.ndim == 1 else array


def _flattened(array: np.ndarray) -> np.ndarray:
    """MLflow's rule: an output whose rows each hold one value becomes 1-D."""
    return array.reshape(len(array)) if array.ndim > 1 and int(np.prod(array.shape[1:])) == 1 else array


class SignatureWrapper:
    """pyfunc adapter of a SavedModel signature (MLflow's ``_TF2Wrapper``): inputs by name (dict
    keys, DataFrame columns, or an array for a one-input signature), outputs by name."""

    def __init__(self, model: Any, infer: Any, *, device: str | None = None, threads: int | None = None):
        self.model = model  # the signature's function holds only weak references to the variables
        self.infer = infer
        self.device = device
        self.threads = threads
        self._specs = dict(infer.structured_input_signature[1])

    def get_raw_model(self) -> Any:
        return self.model

    def _feed(self, data: Any) -> dict[str, Any]:
        import tensorflow as tf

        if isinstance(data, pd.DataFrame):
            values = {str(c): column_array(data[c]) for c in data.columns if str(c) in self._specs}
        elif isinstance(data, dict):
            values = {str(k): np.asarray(v) for k, v in data.items()}
        elif isinstance(data, (np.ndarray, list)) and len(self._specs) == 1:
            values = {next(iter(self._specs)): np.asarray(data)}
        else:
            raise InvalidArgumentError(f"This signature takes inputs {sorted(self._specs)} by name: pass a dict of arrays "
                                       f"or a DataFrame, not {type(data).__name__}")
        missing = sorted(set(self._specs) - set(values))
        if missing:
            raise SchemaEnforcementError(f"The signature's inputs {missing} are missing; got {sorted(values)}")
        return {name: tf.constant(values[name], dtype=spec.dtype) for name, spec in self._specs.items()}

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        feed = self._feed(data)
        with tf_scope(self.device):
            raw = self.infer(**feed)
        outputs = {name: _flattened(np.asarray(tensor)) for name, tensor in raw.items()}
        if isinstance(data, pd.DataFrame):
            return pd.DataFrame({k: list(v) if v.ndim > 1 else v for k, v in outputs.items()}, index=data.index)
        return outputs
