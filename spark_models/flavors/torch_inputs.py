"""Tensors in and out of a ``torch.nn.Module`` for the pytorch flavor's pyfunc form.

Inputs: a DataFrame becomes one float32 tensor (nulls as NaN, a non-numeric column named in the
error); an ndarray keeps its dtype; a dict of arrays is ``forward``'s inputs by parameter name (in
order when no key names one). Output: one tensor, as an ndarray (a DataFrame with the input's index
for a DataFrame input). Device: :func:`~spark_models.flavors.devices.resolve_device`, refused naming
it when this torch cannot use it. Nothing here imports the flavor module.
"""

from __future__ import annotations

import inspect
from contextlib import contextmanager
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd

from spark_models.exceptions import MissingDependencyError, ModelOutputError, NotSupportedError, SchemaEnforcementError
from spark_models.flavors.devices import cuda_index, resolve_device

POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


@contextmanager
def eval_mode(model: Any) -> Iterator[None]:
    """``model`` in eval mode for the block; every submodule's ``training`` flag restored after."""
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, training in flags:
            module.training = training


def forward_parameters(model: Any) -> list[inspect.Parameter] | None:
    """``forward``'s parameters (without ``self``); None when they cannot be known."""
    import torch

    if isinstance(model, torch.jit.ScriptModule):
        try:
            arguments = model.forward.schema.arguments[1:]
        except (AttributeError, RuntimeError):
            return None
        return [inspect.Parameter(a.name, inspect.Parameter.KEYWORD_ONLY if a.kwarg_only else POSITIONAL[1])
                for a in arguments]
    try:
        return list(inspect.signature(model.forward).parameters.values())
    except (TypeError, ValueError):
        return None


def call_args(parameters: list[inspect.Parameter] | None, inputs: dict[Any, Any]) -> tuple[list[Any], dict[str, Any]]:
    """``forward``'s (args, kwargs) for named inputs: by parameter name, positionally while no
    parameter is skipped; in the inputs' order when no name is a parameter."""
    named = [p for p in parameters or [] if p.kind in (*POSITIONAL, inspect.Parameter.KEYWORD_ONLY)]
    names = {p.name for p in named}
    unknown = [k for k in inputs if k not in names]
    if unknown and not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters or []):
        if len(unknown) == len(inputs):
            return list(inputs.values()), {}
        raise SchemaEnforcementError(f"Input {unknown[0]!r} is not a parameter of the model's forward"
                                     f"({', '.join(p.name for p in named)})")
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    for parameter in named:
        if parameter.name not in inputs:
            continue
        if parameter.kind in POSITIONAL and len(args) == named.index(parameter):
            args.append(inputs[parameter.name])
        else:
            kwargs[parameter.name] = inputs[parameter.name]
    kwargs.update((k, inputs[k]) for k in unknown)
    return args, kwargs


def _tensor(values: Any, name: str, device: str) -> Any:
    import torch

    array = np.asarray(values)
    if array.dtype.kind in "OUSV":
        raise SchemaEnforcementError(f"Input {name} holds {array.dtype} values; the model takes numeric tensors")
    if not (array.flags.c_contiguous and array.flags.writeable):
        array = np.array(array, order="C")
    tensor = torch.from_numpy(array)
    return tensor if device == "cpu" else tensor.to(device)


def _frame_values(frame: pd.DataFrame) -> np.ndarray:
    """MLflow's ``frame.to_numpy(dtype=float32)``, nulls as NaN, a text column named in the error."""
    try:
        return frame.to_numpy(dtype=np.float32, na_value=np.nan)
    except (TypeError, ValueError) as e:
        bad = next((c for c in frame.columns if not (pd.api.types.is_numeric_dtype(frame[c].dtype)
                                                     or pd.api.types.is_bool_dtype(frame[c].dtype))), None)
        where = f"column {bad!r} ({frame[bad].dtype})" if bad is not None else "the frame"
        raise SchemaEnforcementError(f"The pytorch model takes numbers: {where} cannot become float32 ({e})") from e


def model_inputs(data: Any, parameters: list[inspect.Parameter] | None, device: str) -> tuple[list[Any], dict[str, Any]]:
    """``forward``'s (args, kwargs) on ``device`` for a DataFrame, an ndarray or a dict of arrays."""
    if isinstance(data, pd.DataFrame):
        return [_tensor(_frame_values(data), "frame", device)], {}
    if isinstance(data, np.ndarray):
        return [_tensor(data, "array", device)], {}
    if isinstance(data, dict) and data:
        tensors = {k: _tensor(v, repr(k), device) for k, v in data.items()}
        return call_args(parameters, tensors)
    raise SchemaEnforcementError(
        f"The pytorch flavor takes a pandas DataFrame, a numpy array or a dict of arrays; got {type(data).__name__}")


def model_output(output: Any, data: Any) -> Any:
    """The model's one tensor as an ndarray; for a DataFrame input, a DataFrame with its index."""
    import torch

    if not isinstance(output, torch.Tensor):
        raise ModelOutputError(f"The pytorch model returned a {type(output).__name__}; its pyfunc form takes one tensor")
    output = output.detach().cpu()
    if output.dtype == torch.bfloat16:  # numpy has no bfloat16
        output = output.float()
    values = output.numpy()
    if not isinstance(data, pd.DataFrame):
        return values
    if values.ndim not in (1, 2):
        raise ModelOutputError(f"For a DataFrame input the model must return 1 or 2 dimensions, got shape "
                               f"{values.shape}: pass a numpy array to get it as it is")
    return pd.DataFrame(values, index=data.index)


def check_device(device: str) -> None:
    """Refuse a device this torch cannot use, naming it (rather than torch's traceback at first use)."""
    import torch

    kind = device.partition(":")[0]
    if kind == "cuda":
        if not (torch.backends.cuda.is_built() or getattr(torch.version, "hip", None)):
            raise MissingDependencyError(
                f"Device {device!r} needs a CUDA build of torch; the installed torch {torch.__version__} has no CUDA "
                "support (use device 'cpu', or install a CUDA build of torch)")
        count = torch.cuda.device_count()
        if cuda_index(device) >= count:
            raise NotSupportedError(f"Device {device!r} is not available: torch sees {count} CUDA device(s)")
    elif kind == "mps" and not torch.backends.mps.is_available():
        raise NotSupportedError(f"Device {device!r} is not available on this machine (torch.backends.mps)")


def select_device(config: Mapping[str, Any], gpus: Sequence[str] | None = None) -> str:
    """The device to load onto (see :func:`resolve_device`), checked to be usable here."""
    device = resolve_device(config, gpus=gpus)
    check_device(device)
    return device
