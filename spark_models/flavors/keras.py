"""The keras flavor: Keras 3 models on any backend in MLflow 3's layout (``mlflow.keras``).

``save_model`` writes ``data/model.keras`` with the model's own ``save`` (or, with
``save_exported_model=True``, a TensorFlow SavedModel ``data/model/`` with one ``serve``
endpoint, built from the signature's tensor specs), ``data/keras_module.txt`` (``keras``) and
MLmodel ``keras: {data: data, keras_version, keras_backend, save_exported_model}``; the
``python_function`` entry has no ``data`` (MLflow's loader is given the model directory).
Older MLflow's ``keras`` entries (``keras_module``, ``save_format``: ``data/model.h5``) load too.

A ``.keras`` file does not depend on the backend that wrote it: a model saved on torch loads on
TensorFlow (the backend is whatever ``KERAS_BACKEND`` makes it in the loading process).

pyfunc ``predict`` is :class:`~spark_models.flavors.keras_support.KerasModelWrapper` (an exported
model: its ``serve`` endpoint, as MLflow calls it). Threads: TensorFlow's pools (tensorflow
backend) or ``torch.set_num_threads`` (torch) from :func:`spark_models.flavors.threads.num_threads`;
device: :func:`spark_models.flavors.devices.resolve_device`, through ``keras.device``.
Trust (``allow_code=False``): ``.keras``/``.h5`` load with Keras' safe mode; an exported
SavedModel is refused (see :mod:`spark_models.flavors.keras_support`).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

from spark_models.environment import default_requirements
from spark_models.exceptions import InvalidArgumentError, MalformedModelError
from spark_models.flavors import keras_support as ks
from spark_models.flavors.contract import Flavor, LoadContext
from spark_models.flavors.opening import open_model
from spark_models.flavors.saving import saved_model
from spark_models.flavors.threads import num_threads
from spark_models.flavors.trust import refusal
from spark_models.mlmodel import MLMODEL_FILE_NAME, Model

_logger = logging.getLogger(__name__)

FLAVOR_NAME = "keras"
EXPORT_ENDPOINT = "serve"


def _backend_requirements(backend: str) -> list[str]:
    """The distribution a Keras backend runs on (numpy needs nothing more)."""
    return {"tensorflow": [ks.tensorflow_distribution()], "torch": ["torch"], "jax": ["jax"],
            "openvino": ["openvino"]}.get(backend, [])


def _current_backend() -> str:
    import keras

    return keras.backend.backend()


def default_pip_requirements() -> list[str]:
    """spark-models, keras and the current backend's library, pinned."""
    return default_requirements("keras", *_backend_requirements(_current_backend()))


def _export_specs(signature: Any) -> list[Any]:
    import tensorflow as tf

    inputs = getattr(signature, "inputs", None)
    if inputs is None or not inputs.is_tensor_spec():
        raise InvalidArgumentError(
            "save_exported_model=True needs a signature with tensor inputs (or an input_example that is an array) to "
            "build the SavedModel's input signature from")
    return [tf.TensorSpec([None if d == -1 else d for d in s.shape], tf.as_dtype(s.type), name=s.name)
            for s in inputs.inputs]


def _export(model: Any, path: Path, signature: Any) -> None:
    """A SavedModel of ``model.call`` (one ``serve`` endpoint), as MLflow exports Keras 3 models."""
    import keras

    specs = _export_specs(signature)
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(name=EXPORT_ENDPOINT, fn=model.call, input_signature=specs if len(specs) == 1 else [specs])
    archive.write_out(str(path), verbose=False)


def save_model(
    model: Any,
    path: str | os.PathLike,
    save_exported_model: bool = False,
    conda_env: Any = None,
    mlflow_model: Model | None = None,
    signature: Any = None,
    input_example: Any = None,
    pip_requirements: Any = None,
    extra_pip_requirements: Any = None,
    save_model_kwargs: Mapping[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
    *,
    code_paths: Sequence[str | os.PathLike] | None = None,
) -> Model:
    """Save a Keras 3 model at ``path`` in ``mlflow.keras``'s layout (arguments in its order).

    ``save_model_kwargs`` go to ``model.save``; ``save_exported_model=True`` needs TensorFlow.
    """
    import keras

    if not isinstance(model, keras.Model):
        raise InvalidArgumentError(f"Expected a keras.Model, got {type(model).__name__}")
    ks.check_signature(signature)
    backend = _current_backend()
    extra = [ks.tensorflow_distribution()] if save_exported_model and backend != "tensorflow" else []
    pip = default_requirements("keras", *_backend_requirements(backend), *extra)
    with saved_model(path, default_pip=pip, mlflow_model=mlflow_model, code_paths=code_paths, signature=signature,
                     input_example=input_example, conda_env=conda_env, pip_requirements=pip_requirements,
                     extra_pip_requirements=extra_pip_requirements, metadata=metadata) as draft:
        draft.predict_for_signature = ks.KerasModelWrapper(model).predict
        data = draft.dir / ks.DATA_DIR
        data.mkdir()
        (data / ks.KERAS_MODULE_FILE).write_text("keras")
        if save_exported_model:
            _export(model, data / ks.MODEL_STEM, draft.resolve_signature())
        else:
            model.save(str(data / f"{ks.MODEL_STEM}.keras"), **dict(save_model_kwargs or {}))
        ks.check_signature(draft.resolve_signature())
        draft.add_flavor(FLAVOR_NAME, data=ks.DATA_DIR, keras_version=keras.__version__, keras_backend=backend,
                         save_exported_model=bool(save_exported_model), **({"code": draft.code} if draft.code else {}))
        draft.set_pyfunc(FLAVOR.module, code=draft.code)
    return draft.model


# ---- loading -----------------------------------------------------------------------------

def _location(context: LoadContext) -> tuple[Path, Path, bool]:
    """(data dir, model path, exported?) of the model's keras entry."""
    conf = context.flavor_conf(FLAVOR_NAME)
    data_dir = context.path(conf.get("data") or ks.DATA_DIR, "Keras data")
    if conf.get("save_exported_model"):
        return data_dir, data_dir / ks.MODEL_STEM, True
    return data_dir, ks.keras_model_path(data_dir, conf.get("save_format")), False


def _runs_code(context: LoadContext) -> str | None:
    if FLAVOR_NAME not in context.model.flavors:
        return None  # nothing to load: the load fails naming the missing entry
    data_dir, path, exported = _location(context)
    if exported:
        return ks.SAVED_MODEL_REASON.format(where=str(path.relative_to(context.model_dir.resolve())))
    return ks.keras_runs_code(context, data_dir, save_format=context.flavor_conf(FLAVOR_NAME).get("save_format"))


def _check_trusted(context: LoadContext) -> None:
    if not context.allow_code:
        reason = _runs_code(context)
        if reason:
            raise refusal(context.model_dir, f"loading it {reason}")


def _note_backend(context: LoadContext) -> None:
    saved = context.flavor_conf(FLAVOR_NAME).get("keras_backend")
    if saved and saved != _current_backend():
        _logger.info("%s: saved on the %s backend, loading on %s (set KERAS_BACKEND before importing keras to choose)",
                     context.model_dir, saved, _current_backend())


def _load_native(context: LoadContext, custom_objects: Mapping[str, Any] | None = None, **load_kwargs: Any) -> Any:
    _check_trusted(context)
    data_dir, path, exported = _location(context)
    if not exported and ks.is_saved_model(path):
        raise ks.keras2_saved_model(path)
    if exported:
        import tensorflow as tf

        if not ks.is_saved_model(path):
            raise MalformedModelError(f"{path} (the exported model named in {context.model_dir / MLMODEL_FILE_NAME}) "
                                      "holds no saved_model.pb")
        return tf.saved_model.load(str(path))
    _note_backend(context)
    return ks.load_keras_file(context, path, custom_objects=custom_objects, **load_kwargs)


def load_model(model_uri: str | os.PathLike, dst_path: str | os.PathLike | None = None,
               custom_objects: Mapping[str, Any] | None = None, load_model_kwargs: Mapping[str, Any] | None = None,
               *, allow_code: bool | None = None) -> Any:
    """The Keras model (or, for an exported model, the loaded SavedModel) of a model with the
    keras flavor; ``load_model_kwargs`` go to ``keras.saving.load_model``."""
    context = open_model(model_uri, dst_path, allow_code=allow_code)
    code = context.flavor_conf(FLAVOR_NAME).get("code")
    if code:
        if not context.allow_code:
            raise refusal(context.model_dir, f"it ships code ({code!r}) to put on sys.path")
        from spark_models.pyfunc.loading import add_code_to_sys_path

        add_code_to_sys_path(context)
    _apply_threads(context.model_config)
    return _load_native(context, custom_objects, **dict(load_model_kwargs or {}))


def _apply_threads(model_config: Mapping[str, Any]) -> int | None:
    backend = _current_backend()
    if backend == "tensorflow":
        return ks.apply_tf_threads(model_config)
    wanted = num_threads(model_config)
    if backend == "torch" and wanted is not None:
        import torch

        torch.set_num_threads(wanted)
    return wanted if backend == "torch" else None


def _load_pyfunc_context(context: LoadContext) -> Any:
    from spark_models.flavors import tensorflow as tf_flavor

    _check_trusted(context)
    _, path, exported = _location(context)
    threads = ks.apply_tf_threads(context.model_config) if exported or ks.is_saved_model(path) else \
        _apply_threads(context.model_config)
    if not exported:  # a .keras/.h5 file, or a Keras 2 SavedModel of older MLflow (its serving signature)
        _note_backend(context)
        conf = context.flavor_conf(FLAVOR_NAME)
        data_dir = context.path(conf.get("data") or ks.DATA_DIR, "Keras data")
        return ks.keras_pyfunc(context, data_dir, save_format=conf.get("save_format"), threads=threads)
    device = ks.tf_device(context.model_config)
    ks.check_tf_device(device)
    with ks.tf_scope(device):
        loaded = _load_native(context)
    return tf_flavor.ModuleWrapper(loaded, getattr(loaded, EXPORT_ENDPOINT), device=device, threads=threads)


FLAVOR = Flavor(
    name=FLAVOR_NAME,
    save_model=save_model,
    load_model=load_model,
    load_pyfunc=_load_pyfunc_context,
    default_pip_requirements=default_pip_requirements,
    extra="keras",
    runs_code=_runs_code,
)
_load_pyfunc = FLAVOR.mlflow_loader()

__all__ = ["EXPORT_ENDPOINT", "FLAVOR", "FLAVOR_NAME", "_load_pyfunc", "default_pip_requirements", "load_model",
           "save_model"]
