"""The pytorch flavor's three on-disk formats in ``data/``: writing, telling apart, loading.

- pickled module: ``model.pth`` (``torch.save`` with cloudpickle's pickler by default, so classes
  from ``__main__`` travel by value) + ``pickle_module_info.txt`` naming the pickle module
  (``mlflow.pytorch.pickle_module``, MLflow's name for that format, read with the standard unpickler);
- TorchScript: a ``torch.jit.ScriptModule`` through ``torch.jit.save`` to the same ``model.pth``,
  told apart on load by the archive's ``constants.pkl``;
- torch.export: ``model.pt2``, the program traced in eval mode on the input example, each ``-1`` of
  the tensor signature ``Dim.AUTO``.

Each runs code from the model on load (checked on torch 2.13): ``torch.load`` unpickles;
``torch.jit.load`` runs the archive's TorchScript ``__setstate__``, which can write files
(``aten::save``); ``torch.export.load`` unpickles records with ``weights_only=False`` and parses the
program's shape expressions with ``sympy.sympify`` (``eval``). Nothing here imports the flavor module.
"""

from __future__ import annotations

import importlib
import logging
import pickle
import warnings
import zipfile
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from spark_models.exceptions import (
    ArtifactNotFoundError,
    InvalidArgumentError,
    MalformedModelError,
    MissingDependencyError,
    NotSupportedError,
    SparkModelsError,
)
from spark_models.flavors.torch_inputs import POSITIONAL, call_args, eval_mode, forward_parameters

_logger = logging.getLogger("spark_models.flavors.pytorch")  # the flavor's logger, as before the split

PICKLED_FILE = "model.pth"
EXPORTED_FILE = "model.pt2"
PICKLE_MODULE_INFO_FILE = "pickle_module_info.txt"
PICKLE, PT2 = "pickle", "pt2"
SERIALIZATION_FORMATS = (PICKLE, PT2)
MLFLOW_PICKLE_MODULE = "mlflow.pytorch.pickle_module"
"""MLflow's default pickle module: cloudpickle's pickler, the standard unpickler."""

RUNS_CODE = {
    "pickled": "unpickles {file} (a pickled torch.nn.Module)",
    "torchscript": "runs the TorchScript program in {file} (torch.jit.load executes the archive's code)",
    "exported": ("deserializes {file} with torch.export.load, which may unpickle its payloads and evaluates "
                 "its shape expressions"),
}
"""Why loading each layout runs code (safe mode's refusal), by :func:`layout` kind."""


# ---- writing -------------------------------------------------------------------------------

def chosen_format(export_model: bool, serialization_format: str | None) -> str:
    """``"pickle"`` or ``"pt2"`` from ``save_model``'s arguments (``export_model`` is deprecated)."""
    if serialization_format is not None and serialization_format not in SERIALIZATION_FORMATS:
        raise InvalidArgumentError(f"serialization_format must be one of {SERIALIZATION_FORMATS}, "
                                   f"got {serialization_format!r}")
    if export_model:
        if serialization_format == PICKLE:
            raise InvalidArgumentError("Pass either export_model=True or serialization_format='pickle', not both")
        warnings.warn("export_model is deprecated, as in MLflow: pass serialization_format='pt2'", FutureWarning,
                      stacklevel=3)
        return PT2
    return serialization_format or PICKLE


def _as_array(value: Any) -> np.ndarray:
    import torch

    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        return value
    raise InvalidArgumentError(f"input_example must hold numpy arrays or torch tensors, got {type(value).__name__}")


def saved_example(model: Any, input_example: Any, fmt: str) -> Any:
    """The input example as saved: tensors become arrays; a tuple/list of several is named after
    ``forward``'s parameters. pt2 takes only arrays or tensors (it traces the model on them)."""
    import torch

    arrays = (np.ndarray, torch.Tensor)
    if isinstance(input_example, (tuple, list)) and input_example and all(isinstance(v, arrays) for v in input_example):
        if len(input_example) == 1:
            return _as_array(input_example[0])
        names = [p.name for p in forward_parameters(model) or [] if p.kind in POSITIONAL]
        if len(names) < len(input_example):
            raise InvalidArgumentError(f"input_example holds {len(input_example)} arrays, more than forward's "
                                       "positional parameters: pass a dict of arrays by parameter name")
        return {n: _as_array(v) for n, v in zip(names, input_example)}
    if isinstance(input_example, dict) and (fmt == PT2 or any(isinstance(v, torch.Tensor) for v in input_example.values())):
        return {k: _as_array(v) for k, v in input_example.items()}
    if fmt == PT2 and input_example is None:
        raise InvalidArgumentError("serialization_format='pt2' traces the model on input_example: pass an array or "
                                   "tensor, a tuple/list of them, or a dict of them by forward parameter name")
    return _as_array(input_example) if fmt == PT2 or isinstance(input_example, torch.Tensor) else input_example


def _dims(spec: Any, tensor: Any, name: Any) -> dict[int, Any] | None:
    from torch.export import Dim

    if spec.shape is None or len(spec.shape) != tensor.dim():
        raise InvalidArgumentError(f"The signature's tensor {name!r} has shape {spec.shape}, the example {tuple(tensor.shape)}")
    dynamic = {i: Dim.AUTO for i, size in enumerate(spec.shape) if size == -1}
    if any(tensor.shape[i] <= 1 for i in dynamic):
        _logger.warning("input_example %r has size <= 1 in a dimension the signature leaves free (-1): torch.export "
                        "makes it fixed; give an example with 2 or more rows", name)
    return dynamic or None


def export_program(model: Any, example: Any, signature: Any, target: Path) -> None:
    """``torch.export`` the model traced on ``example``, with the signature's free dimensions dynamic."""
    import torch

    inputs = signature.inputs if signature is not None else None
    if inputs is None or not inputs.is_tensor_spec():
        raise InvalidArgumentError("serialization_format='pt2' needs a tensor signature (TensorSpec inputs): pass one, "
                                   "or an input_example of arrays to infer it from, or use serialization_format='pickle'")
    named = isinstance(example, dict)
    tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in (example.items() if named else [(None, example)])}
    specs = {s.name: s for s in inputs.inputs} if inputs.has_input_names() else dict(zip(tensors, inputs.inputs))
    if set(specs) != set(tensors):
        raise InvalidArgumentError(f"The tensor signature {inputs.input_names()} does not match the example {list(tensors)}")
    # Lay the inputs out as predict does (by name, in forward's order), then trace on them.
    arg_names, kwarg_names = call_args(forward_parameters(model), {k: k for k in tensors}) if named else ([None], {})
    args = [tensors[n] for n in arg_names]
    kwargs = {p: tensors[n] for p, n in kwarg_names.items()}
    if kwargs:  # keyword inputs: dynamic shapes by parameter name
        shapes: Any = {n: _dims(specs[n], t, n) for n, t in tensors.items()}
    else:
        shapes = tuple(_dims(specs[n], tensors[n], n) for n in arg_names)
    with eval_mode(model):
        program = torch.export.export(model, tuple(args), kwargs or None, dynamic_shapes=shapes)
    torch.export.save(program, str(target))


def save_pickled(model: Any, data_dir: Path, pickle_module: Any, kwargs: Mapping[str, Any]) -> None:
    """``model.pth`` (a pickled module, or a TorchScript archive) and ``pickle_module_info.txt``."""
    import cloudpickle
    import torch

    (data_dir / PICKLE_MODULE_INFO_FILE).write_text(pickle_module_name(pickle_module))
    if isinstance(model, torch.jit.ScriptModule):
        torch.jit.save(model, str(data_dir / PICKLED_FILE))
    else:
        torch.save(model, str(data_dir / PICKLED_FILE), pickle_module=pickle_module or cloudpickle, **kwargs)


def pickle_module_name(pickle_module: Any) -> str:
    """The name recorded for ``pickle_module`` (None: MLflow's default)."""
    return pickle_module.__name__ if pickle_module is not None else MLFLOW_PICKLE_MODULE


# ---- telling apart -------------------------------------------------------------------------

def is_torchscript(path: Path) -> bool:
    """A TorchScript archive holds ``constants.pkl`` (torch's own test); a pickled module does not."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.split("/", 1)[-1] == "constants.pkl" for name in archive.namelist())


def layout(data_dir: Path) -> tuple[str, Path]:
    """``("pickled" | "torchscript" | "exported", file)``: MLflow's rule, ``model.pth`` first."""
    pickled = data_dir / PICKLED_FILE
    if pickled.is_file():
        return ("torchscript" if is_torchscript(pickled) else "pickled"), pickled
    exported = data_dir / EXPORTED_FILE
    if exported.is_file():
        return "exported", exported
    raise ArtifactNotFoundError(f"{data_dir} holds neither {PICKLED_FILE} nor {EXPORTED_FILE} (the pytorch model)")


# ---- loading -------------------------------------------------------------------------------

def _pickle_module(name: str) -> Any:
    """The module to unpickle with: MLflow's (cloudpickle's writer) reads with the standard one."""
    if name in (MLFLOW_PICKLE_MODULE, "pickle", "cloudpickle", ""):
        return pickle
    try:
        module = importlib.import_module(name)
    except ImportError as e:
        raise MissingDependencyError(f"The model was pickled with module {name!r}, which is not installed") from e
    return module if hasattr(module, "Unpickler") else pickle


def _load_pickled(path: Path, device: str | None, kwargs: dict[str, Any]) -> Any:
    import torch

    info = path.parent / PICKLE_MODULE_INFO_FILE
    recorded = info.read_text().strip() if info.is_file() else "pickle"
    if "pickle_module" in kwargs and kwargs["pickle_module"].__name__ != recorded:
        _logger.warning("Loading with pickle module %r; the model was saved with %r", kwargs["pickle_module"].__name__,
                        recorded)
    kwargs.setdefault("pickle_module", _pickle_module(recorded))
    kwargs.setdefault("weights_only", False)
    if device:
        kwargs.setdefault("map_location", device)
    try:
        model = torch.load(str(path), **kwargs)
    except ModuleNotFoundError as e:
        err = MissingDependencyError(f"{path}: the pickled model refers to module {e.name!r}, which cannot be imported "
                                     "here (ship the model's own modules with code_paths=...)")
        err.missing_module = e.name  # pyfunc.load_model adds the model's requirement for it
        raise err from e
    except AttributeError as e:
        raise MissingDependencyError(
            f"{path}: the pickled model's class is not defined here ({e}). A class from a script's __main__ loads "
            "elsewhere when saved with the default pickle module (cloudpickle), or shipped with code_paths=...") from e
    if not isinstance(model, torch.nn.Module):
        raise MalformedModelError(f"{path} holds a {type(model).__name__}, not a torch.nn.Module (a state_dict needs "
                                  "its model class: load it into the module yourself and save the module)")
    return model


def _load_exported(path: Path, device: str | None) -> Any:
    import torch

    model = torch.export.load(str(path)).module()
    wanted = torch.device(device).type if device else None
    for tensor in (*model.parameters(), *model.buffers()):
        if wanted and tensor.device.type != wanted:
            raise NotSupportedError(
                f"{path} was exported with its weights on {tensor.device.type!r}; an exported program cannot move to "
                f"{device!r}: export it from a model on that device")
    return model


def load_file(kind: str, path: Path, device: str | None, kwargs: dict[str, Any]) -> Any:
    """The module in ``path`` (a :func:`layout` kind) on ``device`` (None: as loaded); pickled and
    TorchScript ones in eval mode."""
    import torch

    try:
        if kind == "exported":
            return _load_exported(path, device)
        if kind == "torchscript":
            model = torch.jit.load(str(path), map_location=device or kwargs.get("map_location"))
        else:
            model = _load_pickled(path, device, kwargs)
    except SparkModelsError:
        raise
    except (RuntimeError, ValueError, KeyError, AssertionError, EOFError, pickle.UnpicklingError,
            zipfile.BadZipFile) as e:  # torch's loaders assert on malformed archives
        raise MalformedModelError(f"{path}: torch {torch.__version__} cannot load this {kind} model: {e}") from e
    model.eval()
    return model.to(device) if device else model
