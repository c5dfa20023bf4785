"""The pytorch flavor: ``torch.nn.Module`` models in MLflow 3's layout (``mlflow.pytorch``).

``save_model`` writes ``data/`` (the ``pytorch`` entry's ``model_data``, beside ``pytorch_version``,
``code`` and any ``extra_files``) in one of MLflow's layouts (:mod:`spark_models.flavors.torch_formats`):

- ``serialization_format="pickle"`` (the default here; MLflow 3 defaults to ``"pt2"`` outside
  Databricks and then demands an input example): ``data/model.pth`` + ``data/pickle_module_info.txt``,
  a module pickled with cloudpickle's pickler (recorded as ``mlflow.pytorch.pickle_module``, which
  MLflow reads as its own and we read with the standard unpickler, never importing MLflow), or a
  ``torch.jit.ScriptModule`` through ``torch.jit.save``;
- ``serialization_format="pt2"`` (MLflow's deprecated ``export_model=True``): ``data/model.pt2``, the
  ``torch.export`` program traced in eval mode on ``input_example`` (an array or tensor, a tuple/list
  of them, or a dict by ``forward`` parameter name), each ``-1`` of the tensor signature ``Dim.AUTO``.

pyfunc ``predict`` is MLflow's, extended (inputs and outputs: :mod:`spark_models.flavors.torch_inputs`):
a DataFrame becomes one float32 tensor (nulls as NaN) and gives a DataFrame with its index; an ndarray
keeps its dtype and gives an ndarray; a dict of arrays (MLflow refuses dicts) is ``forward``'s inputs
by parameter name; ``params`` are ``forward`` keywords. It runs in eval mode under
``torch.inference_mode()`` (``model_config={"inference_mode": False}``: ``no_grad``, as MLflow) and
must return one tensor. Device: :func:`~spark_models.flavors.devices.resolve_device` (in a Spark task
with GPUs, the task's GPU), refused naming it when this torch cannot use it. Threads:
``torch.set_num_threads`` with :func:`~spark_models.flavors.threads.num_threads` when that gives a number.

Safe mode refuses all three layouts: each runs code from the model on load (see
:mod:`spark_models.flavors.torch_formats`). For untrusted models, use ONNX.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

from spark_models.environment import default_requirements
from spark_models.exceptions import ArtifactNotFoundError, InvalidArgumentError, MalformedModelError
from spark_models.flavors.contract import Flavor, LoadContext
from spark_models.flavors.opening import open_model
from spark_models.flavors.saving import copy_extra_files, saved_model
from spark_models.flavors.threads import num_threads
from spark_models.flavors.torch_formats import (
    EXPORTED_FILE,
    PT2,
    RUNS_CODE,
    SERIALIZATION_FORMATS,
    chosen_format,
    export_program,
    layout,
    load_file,
    pickle_module_name,
    save_pickled,
    saved_example,
)
from spark_models.flavors.torch_inputs import eval_mode, forward_parameters, model_inputs, model_output, select_device
from spark_models.flavors.trust import refusal
from spark_models.mlmodel import Model

_logger = logging.getLogger(__name__)

FLAVOR_NAME = "pytorch"
DATA_DIR = "data"
EXTRA_FILES_DIR = "extra_files"


def default_pip_requirements() -> list[str]:
    """spark-models, torch and cloudpickle (MLflow's two), pinned; torch without a local label such
    as ``+cpu``, which PyPI cannot install (``torch==2.13.0`` accepts ``2.13.0+cpu``)."""
    return default_requirements("torch", "cloudpickle")


# ---- saving --------------------------------------------------------------------------------



def save_model(
    pytorch_model: Any,
    path: str | os.PathLike,
    conda_env: Any = None,
    mlflow_model: Model | None = None,
    code_paths: Sequence[str | os.PathLike] | None = None,
    pickle_module: Any = None,
    signature: Any = None,
    input_example: Any = None,
    extra_files: Sequence[str | os.PathLike] | None = None,
    pip_requirements: Any = None,
    extra_pip_requirements: Any = None,
    metadata: dict[str, Any] | None = None,
    export_model: bool = False,
    serialization_format: str | None = None,
    **kwargs: Any,
) -> Model:
    """Save a ``torch.nn.Module`` (or ``torch.jit.ScriptModule``) at ``path`` in MLflow's layout.

    ``serialization_format``: ``"pickle"`` (default) or ``"pt2"`` (see the module docstring).
    ``kwargs`` go to ``torch.save`` (pickle format only), as in ``mlflow.pytorch.save_model``.
    """
    import torch

    fmt = chosen_format(export_model, serialization_format)
    if not isinstance(pytorch_model, torch.nn.Module):
        raise InvalidArgumentError(f"pytorch_model must be a torch.nn.Module, got {type(pytorch_model).__name__}")
    if fmt == PT2 and isinstance(pytorch_model, torch.jit.ScriptModule):
        raise InvalidArgumentError("A torch.jit.ScriptModule cannot be exported as pt2: use serialization_format='pickle'")
    example = saved_example(pytorch_model, input_example, fmt)
    with saved_model(path, default_pip=default_pip_requirements(), mlflow_model=mlflow_model, code_paths=code_paths,
                     signature=signature, input_example=example, conda_env=conda_env,
                     pip_requirements=pip_requirements, extra_pip_requirements=extra_pip_requirements,
                     metadata=metadata) as draft:
        draft.predict_for_signature = lambda data: _predict_once(pytorch_model, data)
        data_dir = draft.dir / DATA_DIR
        data_dir.mkdir()
        if fmt == PT2:
            export_program(pytorch_model, example, draft.resolve_signature(), data_dir / EXPORTED_FILE)
        else:
            save_pickled(pytorch_model, data_dir, pickle_module, kwargs)
        draft.add_flavor(FLAVOR_NAME, model_data=DATA_DIR, pytorch_version=str(torch.__version__), code=draft.code,
                         **copy_extra_files(extra_files, draft.dir))
        draft.set_pyfunc(FLAVOR.module, data=DATA_DIR, code=draft.code, config={"device": None},
                         pickle_module_name=pickle_module_name(pickle_module))
    return draft.model


def _predict_once(model: Any, data: Any) -> Any:
    """Score the model being saved (for the signature's outputs) without changing its state."""
    with eval_mode(model):
        return _PyTorchWrapper(model, "cpu").predict(data)


# ---- loading -------------------------------------------------------------------------------

def _data_dir(context: LoadContext) -> Path:
    conf = context.flavor_conf(FLAVOR_NAME)
    return context.path(conf.get("model_data") or DATA_DIR, "pytorch model_data")


def _runs_code(context: LoadContext) -> str | None:
    if FLAVOR_NAME not in context.model.flavors:
        return None  # nothing to load: the load fails naming the missing entry
    try:
        kind, path = layout(_data_dir(context))
    except (ArtifactNotFoundError, MalformedModelError):
        return None  # the load fails naming the missing file
    return RUNS_CODE[kind].format(file=repr(str(path.relative_to(context.model_dir.resolve()))))


def _load_native(context: LoadContext, device: str | None, **kwargs: Any) -> Any:
    """The model on ``device`` (None: where torch puts it), refused first in safe mode."""
    import torch

    conf = context.flavor_conf(FLAVOR_NAME)
    if not context.allow_code:
        reason = _runs_code(context)
        if reason:
            raise refusal(context.model_dir, f"loading it {reason}; for untrusted models, use ONNX")
    saved = conf.get("pytorch_version")
    if saved and str(saved) != torch.__version__:
        _logger.warning("The model was saved with torch %s; this is torch %s", saved, torch.__version__)
    kind, path = layout(_data_dir(context))
    if kind == "exported" and kwargs:
        _logger.warning("Ignoring %s: an exported (pt2) model is loaded with torch.export.load", sorted(kwargs))
    return load_file(kind, path, device, dict(kwargs))


def load_model(model_uri: str | os.PathLike, dst_path: str | os.PathLike | None = None, *,
               allow_code: bool | None = None, device: str | None = None, **kwargs: Any) -> Any:
    """The ``torch.nn.Module`` of a model with the pytorch flavor, in eval mode (an exported model:
    its ``ExportedProgram.module()``). ``device`` moves it there (default: where torch loads it);
    ``kwargs`` go to ``torch.load``; ``allow_code``: see :mod:`spark_models.flavors.trust`."""
    context = open_model(model_uri, dst_path, allow_code=allow_code)
    code = context.flavor_conf(FLAVOR_NAME).get("code")
    if code:
        if not context.allow_code:
            raise refusal(context.model_dir, f"it ships code ({code!r}) to put on sys.path")
        from spark_models.pyfunc.loading import add_code_to_sys_path

        add_code_to_sys_path(context)
    return _load_native(context, select_device({"device": device}) if device else None, **kwargs)


# ---- pyfunc --------------------------------------------------------------------------------

class _PyTorchWrapper:
    """pyfunc adapter: MLflow's ``_PyTorchWrapper`` plus dict inputs, inference mode and threads."""

    def __init__(self, pytorch_model: Any, device: str, model_config: Mapping[str, Any] | None = None):
        self.pytorch_model = pytorch_model
        self.device = device
        self._config = dict(model_config or {})
        num_threads(self._config)  # a bad value fails at load time, not in the first batch
        self._inference_mode = bool(self._config.get("inference_mode", True))
        self._parameters = forward_parameters(pytorch_model)

    def get_raw_model(self) -> Any:
        return self.pytorch_model

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        import torch

        if params and "device" in params:
            raise InvalidArgumentError("The device is chosen at load time: pass model_config={'device': ...}, not params")
        threads = num_threads(self._config)  # per call: a Spark task's CPUs are known only then
        if threads is not None and threads != torch.get_num_threads():
            torch.set_num_threads(threads)
        args, kwargs = model_inputs(data, self._parameters, self.device)
        kwargs.update(params or {})
        with torch.inference_mode() if self._inference_mode else torch.no_grad():
            output = self.pytorch_model(*args, **kwargs)
        return model_output(output, data)


def _load_pyfunc_context(context: LoadContext) -> _PyTorchWrapper:
    config = {**(context.pyfunc_conf.get("config") or {}), **context.model_config}
    device = select_device(config)
    return _PyTorchWrapper(_load_native(context, device), device, config)


FLAVOR = Flavor(
    name=FLAVOR_NAME,
    save_model=save_model,
    load_model=load_model,
    load_pyfunc=_load_pyfunc_context,
    default_pip_requirements=default_pip_requirements,
    extra="pytorch",
    runs_code=_runs_code,
)
_load_pyfunc = FLAVOR.mlflow_loader()

__all__ = ["FLAVOR", "FLAVOR_NAME", "SERIALIZATION_FORMATS", "_load_pyfunc", "default_pip_requirements", "load_model",
           "save_model"]
