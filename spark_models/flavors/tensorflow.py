"""The tensorflow flavor: Keras models and TF2 ``tf.Module``s in MLflow 3's layout (``mlflow.tensorflow``).

``save_model`` takes either:

- a Keras model: ``data/model.keras`` (``data/model.h5`` with ``keras_model_kwargs={"save_format":
  "h5"}``), ``data/keras_module.txt`` (``tensorflow.keras``), ``data/save_format.txt`` and, as
  MLflow writes them, ``data/custom_objects.cloudpickle`` / ``data/global_custom_objects.cloudpickle``;
  MLmodel ``tensorflow: {model_type: keras, data: data, keras_version, save_format}`` (MLflow
  writes TensorFlow's version as ``keras_version``) and ``python_function.data: data``;
- a ``tf.Module``: ``tf.saved_model.save`` into ``tf2model/``; MLmodel ``tensorflow: {model_type:
  tf2-module, saved_model_dir: tf2model}``.

``load_model`` also reads ``model_type: tf1-estimator`` (``saved_model_dir``, ``meta_graph_tags``,
``signature_def_key``: the signature's function, as MLflow returns it) and the ``keras`` entry of
models older MLflow wrote. pyfunc ``predict``:

- Keras: ``model.predict`` (see :class:`~spark_models.flavors.keras_support.KerasModelWrapper`):
  a DataFrame gives a DataFrame with its index, an array an array; a model with several inputs
  takes a dict of arrays or a DataFrame with a column per input name;
- tf2-module: the module's ``__call__`` on an array (MLflow's call), a DataFrame (one array, in the
  dtype of the function's input signature; a DataFrame comes back) or a dict (keyword arguments);
  ``model_config={"signature_def_key": "serving_default"}`` scores through a signature instead;
- signatures (tf1-estimator, Keras 2 SavedModel directories TensorFlow < 2.16 wrote): fed by input
  name, outputs by output name, as MLflow's ``_TF2Wrapper``;
- threads: TensorFlow's intra/inter-op pools from :func:`spark_models.flavors.threads.num_threads`
  (set before the model loads, when TensorFlow still takes them); device from
  :func:`spark_models.flavors.devices.resolve_device` (``cuda:N`` → ``/GPU:N``).

Trust (``allow_code=False``): Keras files load with Keras' safe mode (see
:mod:`spark_models.flavors.keras_support`); SavedModels (tf2-module, tf1-estimator) are refused,
as TensorFlow's security guidance treats a graph as a program (its ops read and write files).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from spark_models.environment import default_requirements
from spark_models.exceptions import InvalidArgumentError, MalformedModelError
from spark_models.flavors import keras_support as ks
from spark_models.flavors.contract import Flavor, LoadContext
from spark_models.flavors.opening import open_model
from spark_models.flavors.saving import copy_extra_files, saved_model
from spark_models.flavors.tf_signatures import SERVING, SignatureWrapper
from spark_models.flavors.trust import refusal
from spark_models.mlmodel import MLMODEL_FILE_NAME, Model

_logger = logging.getLogger(__name__)

FLAVOR_NAME = "tensorflow"
KERAS, TF2_MODULE, TF1_ESTIMATOR = "keras", "tf2-module", "tf1-estimator"
MODEL_TYPES = (KERAS, TF2_MODULE, TF1_ESTIMATOR)
TF2_MODEL_DIR = "tf2model"
SAVE_FORMATS = ("tf", "keras", "h5")
"""``keras_model_kwargs["save_format"]``: ``tf`` (MLflow's default name) and ``keras`` write ``model.keras``."""


def default_pip_requirements() -> list[str]:
    """spark-models and the installed TensorFlow distribution (``tensorflow`` or ``tensorflow-cpu``), pinned."""
    return default_requirements(ks.tensorflow_distribution())


def _save_keras(model: Any, model_dir: Path, custom_objects: Mapping[str, Any] | None,
                keras_model_kwargs: Mapping[str, Any] | None) -> dict[str, Any]:
    import tensorflow as tf

    kwargs = dict(keras_model_kwargs or {})
    save_format = kwargs.pop("save_format", "tf")  # Keras 3 takes the format from the file name
    if save_format not in SAVE_FORMATS:
        raise InvalidArgumentError(f"keras_model_kwargs save_format must be one of {SAVE_FORMATS}, got {save_format!r}")
    data = model_dir / ks.DATA_DIR
    data.mkdir()
    (data / ks.KERAS_MODULE_FILE).write_text("tensorflow.keras")
    (data / ks.SAVE_FORMAT_FILE).write_text(save_format)
    ks.write_custom_objects(data, custom_objects)
    model.save(str(data / (ks.MODEL_STEM + (".h5" if save_format == "h5" else ".keras"))), **kwargs)
    return {"data": ks.DATA_DIR, "model_type": KERAS, "keras_version": tf.__version__, "save_format": save_format}


def save_model(
    model: Any,
    path: str | os.PathLike,
    conda_env: Any = None,
    code_paths: Sequence[str | os.PathLike] | None = None,
    mlflow_model: Model | None = None,
    custom_objects: Mapping[str, Any] | None = None,
    signature: Any = None,
    input_example: Any = None,
    pip_requirements: Any = None,
    extra_pip_requirements: Any = None,
    saved_model_kwargs: Mapping[str, Any] | None = None,
    keras_model_kwargs: Mapping[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
    extra_files: Sequence[str | os.PathLike] | None = None,
) -> Model:
    """Save a Keras model or a TF2 ``tf.Module`` at ``path`` in MLflow's layout.

    ``keras_model_kwargs`` go to ``model.save``; ``saved_model_kwargs`` to ``tf.saved_model.save``.
    """
    import keras
    import tensorflow as tf

    is_keras = isinstance(model, keras.Model)
    if not is_keras and not isinstance(model, tf.Module):
        raise InvalidArgumentError(f"Expected a Keras model or a tf.Module, got {type(model).__name__}")
    ks.check_signature(signature)
    pickles = is_keras and bool(custom_objects or keras.saving.get_custom_objects())
    pip = default_requirements(ks.tensorflow_distribution(), *(["keras"] if is_keras else []),
                               *(["cloudpickle"] if pickles else []))
    with saved_model(path, default_pip=pip, mlflow_model=mlflow_model, code_paths=code_paths, signature=signature,
                     input_example=input_example, conda_env=conda_env, pip_requirements=pip_requirements,
                     extra_pip_requirements=extra_pip_requirements, metadata=metadata) as draft:
        if is_keras:
            conf = _save_keras(model, draft.dir, custom_objects, keras_model_kwargs)
            draft.predict_for_signature = ks.KerasModelWrapper(model).predict
        else:
            tf.saved_model.save(model, str(draft.dir / TF2_MODEL_DIR), **dict(saved_model_kwargs or {}))
            conf = {"saved_model_dir": TF2_MODEL_DIR, "model_type": TF2_MODULE}
            draft.predict_for_signature = ModuleWrapper(model).predict
        conf.update(copy_extra_files(extra_files, draft.dir))
        draft.add_flavor(FLAVOR_NAME, code=draft.code, **conf)
        draft.set_pyfunc(FLAVOR.module, code=draft.code, **({"data": ks.DATA_DIR} if is_keras else {}))
        ks.check_signature(draft.resolve_signature())
    return draft.model


# ---- loading -----------------------------------------------------------------------------

def _flavor_conf(context: LoadContext) -> dict[str, Any]:
    """MLflow's choice: the ``keras`` entry of older MLflow's Keras models, else ``tensorflow``."""
    flavors = context.model.flavors
    return flavors["keras"] if "keras" in flavors else context.flavor_conf(FLAVOR_NAME)


def _model_type(context: LoadContext, conf: Mapping[str, Any]) -> str:
    model_type = conf.get("model_type") or (KERAS if "keras" in context.model.flavors else TF1_ESTIMATOR)
    if model_type not in MODEL_TYPES:
        raise MalformedModelError(f"{context.model_dir / MLMODEL_FILE_NAME}: unknown tensorflow model_type "
                                  f"{model_type!r}; expected one of {MODEL_TYPES}")
    return model_type


def _keras_location(context: LoadContext, conf: Mapping[str, Any]) -> tuple[Path, str | None]:
    data_dir = context.path(conf.get("data") or ks.DATA_DIR, "Keras data")
    save_format = conf.get("save_format")
    if save_format is None and (data_dir / ks.SAVE_FORMAT_FILE).is_file():
        save_format = (data_dir / ks.SAVE_FORMAT_FILE).read_text().strip()
    return data_dir, save_format or "h5"  # MLflow's default for models that name none


def _saved_model_dir(context: LoadContext, conf: Mapping[str, Any]) -> Path:
    if not conf.get("saved_model_dir"):
        raise MalformedModelError(f"{context.model_dir / MLMODEL_FILE_NAME}: the tensorflow flavor has no saved_model_dir")
    path = context.path(conf["saved_model_dir"], "saved_model_dir")
    if not ks.is_saved_model(path):
        raise MalformedModelError(f"{path} (saved_model_dir in {context.model_dir / MLMODEL_FILE_NAME}) holds no saved_model.pb")
    return path


def _runs_code(context: LoadContext) -> str | None:
    """Keras files: data under Keras' safe mode (unless pickles ride along); SavedModels: programs."""
    flavors = context.model.flavors
    if FLAVOR_NAME not in flavors and "keras" not in flavors:
        return None  # nothing to load: the load fails naming the missing entry
    conf = _flavor_conf(context)
    if _model_type(context, conf) == KERAS:
        data_dir, save_format = _keras_location(context, conf)
        return ks.keras_runs_code(context, data_dir, save_format=save_format)
    return ks.SAVED_MODEL_REASON.format(where=str(conf.get("saved_model_dir")))


def _check_trusted(context: LoadContext) -> None:
    if not context.allow_code:
        reason = _runs_code(context)
        if reason:
            raise refusal(context.model_dir, f"loading it {reason}")


def _signature_function(context: LoadContext, loaded: Any, key: str) -> Any:
    signatures = getattr(loaded, "signatures", {}) or {}
    if key not in signatures:
        raise MalformedModelError(f"{context.model_dir}: the SavedModel has no signature {key!r}; it has {sorted(signatures)}")
    return signatures[key]


def _load_tf1(context: LoadContext, conf: Mapping[str, Any]) -> tuple[Any, Any]:
    import tensorflow as tf

    loaded = tf.saved_model.load(str(_saved_model_dir(context, conf)), tags=conf.get("meta_graph_tags"))
    return loaded, _signature_function(context, loaded, conf.get("signature_def_key") or SERVING)


def _load_native(context: LoadContext, saved_model_kwargs: Mapping[str, Any] | None,
                 keras_model_kwargs: Mapping[str, Any] | None) -> Any:
    import tensorflow as tf

    conf = _flavor_conf(context)
    model_type = _model_type(context, conf)
    _check_trusted(context)
    if model_type == KERAS:
        data_dir, save_format = _keras_location(context, conf)
        path = ks.keras_model_path(data_dir, save_format)
        if ks.is_saved_model(path):
            raise ks.keras2_saved_model(path)
        return ks.load_keras_file(context, path, **dict(keras_model_kwargs or {}))
    if model_type == TF1_ESTIMATOR:
        return _load_tf1(context, conf)[1]
    return tf.saved_model.load(str(_saved_model_dir(context, conf)), **dict(saved_model_kwargs or {}))


def load_model(model_uri: str | os.PathLike, dst_path: str | os.PathLike | None = None,
               saved_model_kwargs: Mapping[str, Any] | None = None, keras_model_kwargs: Mapping[str, Any] | None = None,
               *, allow_code: bool | None = None) -> Any:
    """The Keras model, the loaded ``tf.Module`` (tf2-module) or the signature function
    (tf1-estimator) of a model with the tensorflow flavor (``allow_code``: see
    :mod:`spark_models.flavors.trust`)."""
    context = open_model(model_uri, dst_path, allow_code=allow_code)
    code = _flavor_conf(context).get("code")
    if code:
        if not context.allow_code:
            raise refusal(context.model_dir, f"it ships code ({code!r}) to put on sys.path")
        from spark_models.pyfunc.loading import add_code_to_sys_path

        add_code_to_sys_path(context)
    ks.apply_tf_threads(context.model_config)
    return _load_native(context, saved_model_kwargs, keras_model_kwargs)


# ---- pyfunc ------------------------------------------------------------------------------

def _positional_specs(fn: Any) -> list[Any]:
    """The TensorSpecs of ``fn``'s positional inputs, when its input signature is known."""
    import tensorflow as tf

    specs = getattr(fn, "input_signature", None)
    if not specs:
        concrete = list(getattr(fn, "concrete_functions", None) or [])
        specs = concrete[0].structured_input_signature[0] if len(concrete) == 1 else ()
    return [s for s in specs if isinstance(s, tf.TensorSpec)]


class ModuleWrapper:
    """pyfunc adapter of a function of a loaded SavedModel (the module's ``__call__``, a Keras
    export's ``serve``), as MLflow's ``_TF2ModuleWrapper`` with DataFrame and dict input."""

    def __init__(self, model: Any, fn: Any = None, *, device: str | None = None, threads: int | None = None):
        self.model = model
        self.fn = fn if fn is not None else model
        self.device = device
        self.threads = threads
        specs = _positional_specs(fn if fn is not None else getattr(model, "__call__", None))
        self._dtype = specs[0].dtype.as_numpy_dtype if len(specs) == 1 else None

    def get_raw_model(self) -> Any:
        return self.model

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        if isinstance(data, pd.DataFrame):
            args, kwargs = (ks.frame_array(data, self._dtype),), {}
        elif isinstance(data, dict):
            args, kwargs = (), {k: np.asarray(v) for k, v in data.items()}
        elif isinstance(data, (np.ndarray, list, tuple)):
            args, kwargs = (np.asarray(data, dtype=self._dtype) if self._dtype is not None else np.asarray(data),), {}
        else:
            raise InvalidArgumentError(f"TensorFlow modules score a DataFrame, numpy array, list or dict of arrays, "
                                       f"not {type(data).__name__}")
        with ks.tf_scope(self.device):
            output = self.fn(*args, **kwargs)
        return ks.shaped_output(output, data)


def _load_pyfunc_context(context: LoadContext) -> Any:
    import tensorflow as tf

    conf = _flavor_conf(context)
    model_type = _model_type(context, conf)
    _check_trusted(context)
    threads = ks.apply_tf_threads(context.model_config)
    if model_type == KERAS:
        data_dir, save_format = _keras_location(context, conf)
        return ks.keras_pyfunc(context, data_dir, save_format=save_format, threads=threads)
    device = ks.tf_device(context.model_config)
    ks.check_tf_device(device)
    if model_type == TF1_ESTIMATOR:
        with ks.tf_scope(device):
            loaded, infer = _load_tf1(context, conf)
        return SignatureWrapper(loaded, infer, device=device, threads=threads)
    with ks.tf_scope(device):
        loaded = tf.saved_model.load(str(_saved_model_dir(context, conf)))
    key = context.model_config.get("signature_def_key")
    if key or not callable(loaded):
        infer = _signature_function(context, loaded, key or SERVING)
        return SignatureWrapper(loaded, infer, device=device, threads=threads)
    return ModuleWrapper(loaded, device=device, threads=threads)


FLAVOR = Flavor(
    name=FLAVOR_NAME,
    save_model=save_model,
    load_model=load_model,
    load_pyfunc=_load_pyfunc_context,
    default_pip_requirements=default_pip_requirements,
    extra="tensorflow",
    runs_code=_runs_code,
)
_load_pyfunc = FLAVOR.mlflow_loader()

__all__ = [
    "FLAVOR",
    "FLAVOR_NAME",
    "MODEL_TYPES",
    "ModuleWrapper",
    "SignatureWrapper",
    "_load_pyfunc",
    "default_pip_requirements",
    "load_model",
    "save_model",
]
