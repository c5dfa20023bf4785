"""onnxruntime sessions for the onnx flavor: execution providers, session options, threads.

Providers are filtered against ``onnxruntime.get_available_providers()`` (a warning names each
missing one; CPU is the fallback). Devices (:mod:`spark_models.flavors.devices`): ``cuda:N`` puts
``("CUDAExecutionProvider", {"device_id": N})`` first, an explicit ``cpu`` drops GPU providers, no
device outside a GPU task keeps the declared list (as MLflow). Session options:
:data:`SESSION_OPTIONS`; other ``SessionOptions`` attributes MLflow's save accepts are ignored on
load with a warning (its loader ignores them too), anything else is an InvalidArgumentError.
Without ``intra_op_num_threads``, :func:`spark_models.flavors.threads.num_threads` applies.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping, Sequence

from spark_models.exceptions import InvalidArgumentError, MalformedModelError
from spark_models.flavors.devices import CONFIG_KEY as DEVICE_KEY, cuda_index, resolve_device
from spark_models.flavors.threads import num_threads

_logger = logging.getLogger("spark_models.flavors.onnx")  # the flavor's warnings, under the flavor's name

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
DEFAULT_PROVIDERS = (CUDA, CPU)
GPU_PROVIDERS = (CUDA, "TensorrtExecutionProvider", "ROCMExecutionProvider", "MIGraphXExecutionProvider")
OPTIMIZATION_LEVELS = {"DISABLE_ALL": 0, "ENABLE_BASIC": 1, "ENABLE_EXTENDED": 2, "ENABLE_LAYOUT": 3, "ENABLE_ALL": 99}
EXECUTION_MODES = {"SEQUENTIAL": 0, "PARALLEL": 1}
PLAIN_OPTIONS = {"enable_cpu_mem_arena": bool, "enable_mem_pattern": bool, "enable_mem_reuse": bool,
                 "use_deterministic_compute": bool, "use_per_session_threads": bool,
                 "log_severity_level": int, "log_verbosity_level": int, "logid": str}
SESSION_OPTIONS = ("graph_optimization_level", "intra_op_num_threads", "inter_op_num_threads", "execution_mode",
                   "extra_session_config", *PLAIN_OPTIONS)


# ---- providers -----------------------------------------------------------------------------

def _provider_name(entry: Any) -> str:
    return entry if isinstance(entry, str) else entry[0]


def provider_entries(declared: Any, where: str = "providers", error: type = MalformedModelError) -> list[Any]:
    """``declared`` as onnxruntime takes it: names and ``(name, options)`` tuples (YAML lists
    become tuples); a single name or nothing as MLflow reads it; any other entry is ``error``."""
    if isinstance(declared, str):
        declared = [declared]
    entries = []
    for entry in declared or DEFAULT_PROVIDERS:
        if isinstance(entry, (list, tuple)) and len(entry) == 2 and isinstance(entry[0], str) \
                and isinstance(entry[1], (dict, type(None))):
            entries.append((entry[0], dict(entry[1] or {})))
        elif isinstance(entry, str):
            entries.append(entry)
        else:
            raise error(f"{where}: entry {entry!r} is neither a provider name nor a (name, options) pair")
    return entries


def execution_providers(declared: Any, model_config: Mapping[str, Any] | None = None, *,
                        gpus: Sequence[str] | None = None) -> list[Any]:
    """The providers to ask onnxruntime for, before filtering: the declared ones with the device
    rule applied (``gpus`` stands in for the Spark task's GPUs, see ``resolve_device``)."""
    providers = provider_entries(declared)
    device = resolve_device(model_config, gpus=gpus)
    if device.startswith("cuda"):
        options = next((dict(p[1]) for p in providers if not isinstance(p, str) and p[0] == CUDA), {})
        if ":" in device:
            options["device_id"] = cuda_index(device)
        return [(CUDA, options) if options else CUDA, *(p for p in providers if _provider_name(p) != CUDA)]
    if device == "mps":
        raise InvalidArgumentError(f"model_config[{DEVICE_KEY!r}]='mps': onnxruntime has no such device; use 'cpu' or 'cuda'")
    if (model_config or {}).get(DEVICE_KEY) is not None:  # "cpu", asked for
        return [p for p in providers if _provider_name(p) not in GPU_PROVIDERS] or [CPU]
    return providers


def usable_providers(providers: Sequence[Any], available: Sequence[str]) -> list[Any]:
    """The providers this onnxruntime build has, warning about each missing one (CPU if none)."""
    usable = [p for p in providers if _provider_name(p) in available]
    missing = [_provider_name(p) for p in providers if _provider_name(p) not in available]
    if missing:
        _logger.warning("The ONNX model asks for execution providers %s, which this onnxruntime build does not "
                        "have (it has %s); running with %s", missing, list(available),
                        [_provider_name(p) for p in usable] or [CPU])
    return usable or [CPU]


# ---- session options -----------------------------------------------------------------------

def _enum(key: str, value: Any, names: Mapping[str, int]) -> int:
    value = getattr(value, "name", value)  # onnxruntime's own enum
    if isinstance(value, str) and value.upper().removeprefix("ORT_") in names:
        return names[value.upper().removeprefix("ORT_")]
    if isinstance(value, int) and not isinstance(value, bool) and value in names.values():
        return value
    raise InvalidArgumentError(f"onnx_session_options[{key!r}] cannot be {value!r}: use one of "
                               f"{sorted(names.values())} or {[n.lower() for n in names]}")


def _option_value(key: str, value: Any) -> Any:
    """One session option checked, in its MLmodel form (InvalidArgumentError naming it)."""
    if key == "graph_optimization_level":
        return _enum(key, value, OPTIMIZATION_LEVELS)
    if key == "execution_mode":
        return ("sequential", "parallel")[_enum(key, value, EXECUTION_MODES)]
    if key == "extra_session_config":
        if not (isinstance(value, dict) and all(isinstance(k, str) for k in value)):
            _bad_option(key, value, "a dict of config entry names to values")
        return {k: str(v) for k, v in value.items()}
    kind = PLAIN_OPTIONS.get(key, int)  # int: the two thread counts
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)) or (kind is int and value < 0):
        _bad_option(key, value, f"a {kind.__name__}" + (" >= 0" if kind is int else ""))
    return value


def _bad_option(key: str, value: Any, wants: str) -> None:
    raise InvalidArgumentError(f"onnx_session_options[{key!r}] cannot be {value!r}: it takes {wants}")


def check_session_options(options: Any) -> dict[str, Any] | None:
    """``onnx_session_options`` for ``save_model``: the keys of :data:`SESSION_OPTIONS` only."""
    if options is None:
        return None
    if not isinstance(options, dict):
        raise InvalidArgumentError(f"onnx_session_options must be a dict, got {type(options).__name__}")
    for key in options:
        if key not in SESSION_OPTIONS:
            raise InvalidArgumentError(f"onnx_session_options key {key!r} is not a session option this flavor "
                                       f"applies; use {list(SESSION_OPTIONS)}")
    return {k: _option_value(k, v) for k, v in options.items() if v is not None}


def session_options(options: Mapping[str, Any] | None, model_config: Mapping[str, Any] | None = None) -> Any:
    """An ``onnxruntime.SessionOptions`` from a model's ``onnx_session_options`` and the thread rule."""
    import onnxruntime as ort

    if options is not None and not isinstance(options, Mapping):
        raise InvalidArgumentError(f"onnx_session_options must be a mapping, got {type(options).__name__}")
    so, options = ort.SessionOptions(), {k: v for k, v in (options or {}).items() if v is not None}
    for key, value in options.items():
        if key in SESSION_OPTIONS:
            value = _option_value(key, value)
        elif hasattr(ort.SessionOptions, key):  # MLflow's save_model accepts it; its loader never applies it
            _logger.warning("Ignoring onnx_session_options[%r]: it is not applied when loading (as in MLflow)", key)
            continue
        else:
            raise InvalidArgumentError(f"onnx_session_options key {key!r} is not an onnxruntime session option; "
                                       f"use {list(SESSION_OPTIONS)}")
        if key == "extra_session_config":
            for entry, text in value.items():
                so.add_session_config_entry(entry, text)
        elif key == "graph_optimization_level":
            so.graph_optimization_level = ort.GraphOptimizationLevel(value)
        elif key == "execution_mode":
            so.execution_mode = ort.ExecutionMode(EXECUTION_MODES[value.upper()])
        else:
            setattr(so, key, value)
    threads = num_threads(model_config) if "intra_op_num_threads" not in options else None
    if threads is not None:
        so.intra_op_num_threads = threads
    return so


# ---- sessions ------------------------------------------------------------------------------

def ort_errors() -> tuple[type, ...]:
    """The exception classes onnxruntime raises when a session fails to start or to run."""
    from onnxruntime.capi import onnxruntime_pybind11_state as state

    names = ("Fail", "InvalidArgument", "InvalidGraph", "InvalidProtobuf", "NoSuchFile", "NotImplemented",
             "RuntimeException", "EPFail")
    return tuple(c for c in (getattr(state, n, None) for n in names) if isinstance(c, type)) + (RuntimeError,)


def inference_session(path: Path, providers: list[Any], options: Any) -> Any:
    """An InferenceSession on the usable providers; on CPU alone when they fail to start (as MLflow)."""
    import onnxruntime as ort

    requested = usable_providers(providers, ort.get_available_providers())
    for attempt in (requested, [CPU]):
        try:
            return ort.InferenceSession(str(path), sess_options=options, providers=attempt)
        except ort_errors() as e:
            if attempt == [CPU]:
                raise MalformedModelError(f"{path}: onnxruntime {ort.__version__} cannot load this model: {e}") from e
            _logger.warning("onnxruntime could not start providers %s (%s); falling back to %s",
                            [_provider_name(p) for p in attempt], e, CPU)


__all__ = ["CPU", "CUDA", "DEFAULT_PROVIDERS", "GPU_PROVIDERS", "SESSION_OPTIONS", "check_session_options",
           "execution_providers", "inference_session", "ort_errors", "provider_entries", "session_options",
           "usable_providers"]
