"""What the tensorflow and keras flavors share: Keras model files (and their safe mode), the
Keras pyfunc adapter, TensorFlow threads and devices, and which distribution provides a module.

Keras files (``data/model.keras``, legacy ``data/model.h5``) load with ``keras.saving.load_model``:

- ``allow_code=False``: with Keras' safe mode, held by its ``SafeModeScope`` so that a process-wide
  ``keras.config.enable_unsafe_deserialization()`` cannot lift it. A ``Lambda`` layer (Python
  bytecode) or a class outside Keras is refused as an
  :class:`~spark_models.exceptions.UnsafeModelError` naming the file. Keras >= 3.14 honours safe
  mode for ``.h5`` as for ``.keras`` (older releases have published bypasses, and are refused);
  ``custom_objects.cloudpickle`` files (MLflow writes them for ``custom_objects``) are refused;
- ``allow_code=True``: ``safe_mode=False`` and the pickles are unpickled (MLflow keeps Keras'
  safe mode on and wants ``MLFLOW_ALLOW_PICKLE_DESERIALIZATION``; here trust is one switch).

A SavedModel directory is a TensorFlow program, not data (TensorFlow's security guidance: its
ops can read and write files), refused with ``allow_code=False``. ``keras_module.txt`` is
written as MLflow does and read by no one: the installed Keras 3 loads every Keras file.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from spark_models.environment import providing_distribution, installed_version
from spark_models.exceptions import (
    ArtifactNotFoundError,
    InvalidArgumentError,
    MalformedModelError,
    MissingDependencyError,
    NotSupportedError,
    SchemaEnforcementError,
)
from spark_models.flavors.contract import LoadContext
from spark_models.flavors.devices import resolve_device
from spark_models.flavors.threads import CONFIG_KEY as THREADS_KEY, NUM_THREADS_ENV, num_threads
from spark_models.flavors.tf_signatures import SERVING, SignatureWrapper, column_array, tf_scope
from spark_models.flavors.trust import refusal

_logger = logging.getLogger(__name__)

DATA_DIR = "data"
MODEL_STEM = "model"
KERAS_MODULE_FILE = "keras_module.txt"
SAVE_FORMAT_FILE = "save_format.txt"
CUSTOM_OBJECTS_FILE = "custom_objects.cloudpickle"
GLOBAL_CUSTOM_OBJECTS_FILE = "global_custom_objects.cloudpickle"
PICKLE_FILES = (CUSTOM_OBJECTS_FILE, GLOBAL_CUSTOM_OBJECTS_FILE)
SAFE_KERAS = (3, 14)
"""Keras releases before this one have published ``safe_mode`` bypasses (``.keras`` and ``.h5``)."""
SAVED_MODEL_REASON = ("runs the TensorFlow graph of the SavedModel {where!r}, which is a program, not data "
                      "(TensorFlow's security guidance: its ops can read and write files)")




def tensorflow_distribution() -> str:
    return providing_distribution("tensorflow", "tensorflow")


# ---- saving ------------------------------------------------------------------------------

def check_signature(signature: Any) -> None:
    """MLflow's rules for tensor signatures: at least one input, each with a variable first dimension."""
    inputs = getattr(signature, "inputs", None)
    if signature is None or inputs is None:
        return
    if not inputs.inputs:
        raise InvalidArgumentError("The model signature's input schema must contain at least one field")
    if inputs.is_tensor_spec():
        fixed = [s.name or i for i, s in enumerate(inputs.inputs) if not s.shape or s.shape[0] != -1]
        if fixed:
            raise InvalidArgumentError(f"Tensor inputs {fixed} of the signature need -1 (any batch size) as their first dimension")




# ---- threads and devices -----------------------------------------------------------------

_warned: set[tuple[int, int]] = set()


def apply_tf_threads(model_config: Mapping[str, Any] | None) -> int | None:
    """Size TensorFlow's intra- and inter-op pools by :func:`~spark_models.flavors.threads.num_threads`.
    TensorFlow takes this only before its runtime starts (its first operation in the process);
    after that the pools stay as they are, said in a log line. Returns the intra-op size in
    effect (None: TensorFlow's default, all cores)."""
    import tensorflow as tf

    wanted, threading = num_threads(model_config), tf.config.threading
    current = threading.get_intra_op_parallelism_threads() or None
    if wanted is None or wanted == current:
        return current
    try:
        threading.set_intra_op_parallelism_threads(wanted)
        threading.set_inter_op_parallelism_threads(wanted)
    except RuntimeError:
        if (wanted, current or 0) not in _warned:
            _warned.add((wanted, current or 0))
            explicit = THREADS_KEY in (model_config or {}) or NUM_THREADS_ENV in os.environ
            _logger.log(logging.WARNING if explicit else logging.INFO,
                        "TensorFlow already runs in this process with %s intra-op threads; it cannot be resized to "
                        "%d (TensorFlow takes thread counts only before its first operation)",
                        current or "its default number of", wanted)
        return current
    return wanted


def tf_device(model_config: Mapping[str, Any] | None = None, *, gpus: Any = None) -> str:
    """:func:`~spark_models.flavors.devices.resolve_device` as a TensorFlow device: ``cpu`` →
    ``/CPU:0``, ``cuda:N`` → ``/GPU:N`` (``cuda``, ``mps``: ``/GPU:0``, tensorflow-metal's GPU)."""
    kind, _, index = resolve_device(model_config, gpus=gpus).partition(":")
    return "/CPU:0" if kind == "cpu" else f"/GPU:{index or 0}"


def keras_device(model_config: Mapping[str, Any] | None = None, *, backend: str = "tensorflow",
                 gpus: Any = None) -> str:
    """The device as ``keras.device`` takes it for ``backend``: ``cpu:0``, ``gpu:N`` (``mps`` on torch)."""
    device = resolve_device(model_config, gpus=gpus)
    kind, _, index = device.partition(":")
    if kind == "cpu":
        return "cpu:0"
    return "mps" if kind == "mps" and backend == "torch" else f"gpu:{index or 0}"


def check_tf_device(device: str) -> None:
    """Refuse a ``/GPU:N`` TensorFlow cannot see (it would run on the CPU without a word)."""
    import tensorflow as tf

    if not device.upper().startswith(("/GPU", "GPU")):
        return
    index = int(device.rpartition(":")[2] or 0)
    seen = len(tf.config.list_physical_devices("GPU"))
    if index >= seen:
        raise InvalidArgumentError(
            f"The model should run on TensorFlow device {device} (model_config['device'] or the Spark task's GPU), but "
            f"TensorFlow {tf.__version__} sees {seen} GPU(s); install a TensorFlow build with GPU support or pass "
            "model_config={'device': 'cpu'}")


# ---- Keras files -------------------------------------------------------------------------

def keras_model_path(data_dir: Path, save_format: str | None) -> Path:
    """The model inside ``data/`` as MLflow finds it: ``model.h5`` for ``save_format: h5``, else
    ``model.keras``, else ``model`` (a SavedModel directory, TensorFlow < 2.16), else ``model.h5``."""
    stem = data_dir / MODEL_STEM
    if save_format == "h5":
        return stem.with_name(MODEL_STEM + ".h5")
    for candidate in (stem.with_name(MODEL_STEM + ".keras"), stem, stem.with_name(MODEL_STEM + ".h5")):
        if candidate.exists():
            return candidate
    return stem.with_name(MODEL_STEM + ".keras")


def is_saved_model(path: Path) -> bool:
    return path.is_dir() and (path / "saved_model.pb").is_file()


def keras2_saved_model(path: Path) -> NotSupportedError:
    """What a native load of a Keras 2 SavedModel directory (TensorFlow < 2.16) raises."""
    return NotSupportedError(
        f"{path} is a Keras 2 SavedModel (TensorFlow < 2.16), which Keras {installed_version('keras')} cannot load as a "
        "Keras model; pyfunc.load_model scores it through its serving signature, or load it with "
        "tf.saved_model.load / keras.layers.TFSMLayer")


def keras_runs_code(context: LoadContext, data_dir: Path, *, save_format: str | None) -> str | None:
    """``Flavor.runs_code`` of a Keras model in ``data_dir``."""
    pickles = [data_dir / name for name in PICKLE_FILES if (data_dir / name).is_file()]
    if pickles:
        return f"unpickles {_relative(context, pickles[0])!r} (Keras custom objects)"
    path = keras_model_path(data_dir, save_format)
    if is_saved_model(path):
        return SAVED_MODEL_REASON.format(where=_relative(context, path))
    version = installed_version("keras") or "0"
    if tuple(int(p) for p in version.split(".")[:2] if p.isdigit()) < SAFE_KERAS:
        return (f"deserializes {_relative(context, path)!r} with keras {version}, whose safe_mode has published bypasses "
                f"(fixed by keras {'.'.join(map(str, SAFE_KERAS))})")
    return None


def _relative(context: LoadContext, path: Path) -> str:
    try:
        return str(path.relative_to(context.model_dir.resolve()))
    except ValueError:
        return str(path)


def _unpickled_custom_objects(context: LoadContext, data_dir: Path) -> dict[str, Any]:
    objects: dict[str, Any] = {}
    for name in reversed(PICKLE_FILES):  # the model's own custom objects win over the global ones
        path = data_dir / name
        if not path.is_file():
            continue
        if not context.allow_code:
            raise refusal(context.model_dir, f"loading it unpickles {_relative(context, path)!r} (Keras custom objects)")
        try:
            import cloudpickle
        except ImportError as e:
            raise MissingDependencyError(
                f"{path} holds Keras custom objects pickled with cloudpickle: pip install cloudpickle") from e
        with open(path, "rb") as f:
            objects.update(cloudpickle.load(f))
    return objects


def _safe_mode_scope(context: LoadContext) -> Any:
    """Keras' safe-mode scope: ``safe_mode=True`` alone yields to a process-wide
    ``keras.config.enable_unsafe_deserialization()``; the scope does not. Without it, refuse."""
    try:
        from keras.src.saving.serialization_lib import SafeModeScope
    except ImportError:
        raise refusal(context.model_dir, "this Keras has no SafeModeScope to hold its safe mode with") from None
    return SafeModeScope(True)


def load_keras_file(context: LoadContext, path: Path, *, custom_objects: Mapping[str, Any] | None = None,
                    **load_kwargs: Any) -> Any:
    """``keras.saving.load_model`` of ``path`` (``.keras`` or ``.h5``), with Keras' safe mode on
    unless ``allow_code``; unpickled ``custom_objects`` files beside it come first."""
    import keras

    if not path.exists():
        raise ArtifactNotFoundError(f"The Keras model {str(path)!r} named in {context.model_dir / 'MLmodel'} does not exist")
    objects = {**_unpickled_custom_objects(context, path.parent), **(custom_objects or {})}
    safe = bool(load_kwargs.pop("safe_mode", not context.allow_code))
    if not safe and not context.allow_code:
        raise refusal(context.model_dir, "safe_mode=False deserializes Python code from the Keras file")
    try:
        with _safe_mode_scope(context) if safe else contextlib.nullcontext():
            return keras.saving.load_model(str(path), custom_objects=objects or None, safe_mode=safe, **load_kwargs)
    except ValueError as e:
        if safe and "safe_mode" in str(e):
            raise refusal(context.model_dir, f"{_relative(context, path)!r} holds Python code that Keras' safe mode refuses "
                                             f"to deserialize ({str(e).split('. ')[0]})") from e
        raise MalformedModelError(f"{path}: keras {keras.__version__} cannot load this model: {e}") from e
    except (OSError, TypeError) as e:
        raise MalformedModelError(f"{path}: keras {keras.__version__} cannot load this model: {e}") from e


def write_custom_objects(data_dir: Path, custom_objects: Mapping[str, Any] | None) -> None:
    """MLflow's cloudpickles of ``custom_objects`` and of Keras' registered custom objects."""
    import keras

    registered = keras.saving.get_custom_objects()
    for name, objects in ((CUSTOM_OBJECTS_FILE, custom_objects), (GLOBAL_CUSTOM_OBJECTS_FILE, registered)):
        if objects:
            import cloudpickle

            with open(data_dir / name, "wb") as f:
                cloudpickle.dump(dict(objects), f)


# ---- pyfunc ------------------------------------------------------------------------------

def frame_array(frame: pd.DataFrame, dtype: Any = None) -> np.ndarray:
    """A frame as one array: a single column of arrays stacked, else its values (floats with NaN for missing)."""
    if frame.shape[1] == 1 and frame.dtypes.iloc[0] == object:
        array = np.stack(frame.iloc[:, 0].to_numpy())
        return array.astype(dtype) if dtype is not None and array.dtype != object else array
    if dtype is not None and np.issubdtype(np.dtype(dtype), np.floating):
        return frame.to_numpy(dtype=dtype, na_value=np.nan)
    return frame.to_numpy()


def keras_inputs(model: Any, data: Any) -> Any:
    """pyfunc input → what ``model.predict`` takes: a frame becomes one array, or a dict by input
    name (columns named after the inputs) for a model with several inputs."""
    inputs = list(getattr(model, "inputs", None) or [])
    if isinstance(data, pd.DataFrame):
        if len(inputs) <= 1:
            return frame_array(data, inputs[0].dtype if inputs else None)
        names = [t.name for t in inputs]
        missing = [n for n in names if n not in data.columns]
        if missing:
            raise SchemaEnforcementError(
                f"This Keras model has inputs {names}: a DataFrame needs one column per input, named after it; "
                f"missing {missing} (columns: {list(data.columns)})")
        return {t.name: column_array(data[t.name], t.dtype, len(t.shape)) for t in inputs}
    if isinstance(data, dict):
        return {k: np.asarray(v) for k, v in data.items()}
    if isinstance(data, (np.ndarray, list, tuple)):
        return data
    raise InvalidArgumentError(f"Keras models score a DataFrame, numpy array, list or dict of arrays, not {type(data).__name__}")


def shaped_output(output: Any, data: Any, names: list[str] | None = None) -> Any:
    """Model output as pyfunc returns it: numpy arrays; a DataFrame (with the input's index) for a
    DataFrame's single output of rank <= 2; several outputs as a dict by output name."""
    if isinstance(output, (list, tuple)) and len(output) == 1:
        output = output[0]
    if isinstance(output, (list, tuple)):
        keys = names if names and len(names) == len(output) else [f"output_{i}" for i in range(len(output))]
        output = dict(zip(keys, output))
    if isinstance(output, dict):
        return {k: _numpy(v) for k, v in output.items()}
    array = _numpy(output)
    if isinstance(data, pd.DataFrame) and array.ndim <= 2:
        return pd.DataFrame(array, index=data.index)
    return array


def _numpy(value: Any) -> np.ndarray:
    to_numpy = getattr(value, "numpy", None)
    return np.asarray(to_numpy() if callable(to_numpy) and not isinstance(value, np.ndarray) else value)


class KerasModelWrapper:
    """pyfunc adapter of a Keras model: ``model.predict`` (quietly) on the device chosen at load."""

    def __init__(self, keras_model: Any, *, device: str | None = None, threads: int | None = None):
        self.keras_model = keras_model
        self.device = device
        self.threads = threads  # the intra-op threads in effect at load (None: the library's default)

    def get_raw_model(self) -> Any:
        return self.keras_model

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        import keras

        inputs = keras_inputs(self.keras_model, data)
        if self.device is None:
            output = self.keras_model.predict(inputs, verbose=0)
        else:
            with keras.device(self.device):
                output = self.keras_model.predict(inputs, verbose=0)
        return shaped_output(output, data, list(getattr(self.keras_model, "output_names", None) or []))


def keras_pyfunc(context: LoadContext, data_dir: Path, *, save_format: str | None, threads: int | None) -> Any:
    """The pyfunc of the Keras model in ``data_dir``, loaded on its device; a Keras 2 SavedModel
    directory (TensorFlow < 2.16), which Keras 3 cannot load, is scored through its serving signature."""
    import keras

    path = keras_model_path(data_dir, save_format)
    if is_saved_model(path):
        import tensorflow as tf

        device = tf_device(context.model_config)
        check_tf_device(device)
        with tf_scope(device):
            loaded = tf.saved_model.load(str(path))
        if SERVING not in loaded.signatures:
            raise MalformedModelError(f"{path}: the SavedModel has no {SERVING!r} signature; it has {sorted(loaded.signatures)}")
        return SignatureWrapper(loaded, loaded.signatures[SERVING], device=device, threads=threads)
    backend = keras.backend.backend()
    device = keras_device(context.model_config, backend=backend)
    if backend == "tensorflow":
        check_tf_device(device)
    with keras.device(device):
        model = load_keras_file(context, path, compile=False)
    return KerasModelWrapper(model, device=device, threads=threads)
