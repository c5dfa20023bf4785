"""The onnx flavor: ONNX models in MLflow 3's layout (``mlflow.onnx``), scored by onnxruntime.

``save_model`` writes ``model.onnx`` (tensors over 1 KiB in a data file beside it unless
``save_as_external_data=False``; the caller's proto keeps its weights) and an ``onnx`` entry with
MLflow's keys: ``onnx_version``, ``data``, ``providers`` (names or ``[name, options]`` pairs),
``onnx_session_options``, ``code``. ONNX is data (``allow_code=False`` loads it); external data
must stay inside the model directory (MalformedModelError naming the ONNX file and tensor).

Sessions (providers, devices, session options, threads): :mod:`spark_models.flavors.onnx_session`.

pyfunc ``predict`` (MLflow's): a dict feeds inputs by name, an ndarray the only input, a
DataFrame the only input (all columns stacked) or one column per input name (columns of arrays
stacked). Inputs are cast where no value changes kind (float64 → float32 as MLflow, ints →
floats, ints that fit) and reshaped when only the non-batch layout differs (a column for an
``(N, 1)`` input). DataFrame in: a DataFrame, one column per output (2-D outputs one array per
row, where MLflow flattens them); otherwise a dict of arrays.
"""

from __future__ import annotations

import logging
import math
import mmap
import os
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd

from spark_models.environment import default_requirements
from spark_models.exceptions import (ArtifactNotFoundError, InvalidArgumentError, MalformedModelError, ModelOutputError,
                                     SchemaEnforcementError)
from spark_models.flavors.contract import Flavor, LoadContext, runs_no_code
from spark_models.flavors.opening import open_model
from spark_models.flavors.devices import CONFIG_KEY as DEVICE_KEY
from spark_models.flavors.onnx_session import (DEFAULT_PROVIDERS, SESSION_OPTIONS, check_session_options,
                                               execution_providers, inference_session, ort_errors, provider_entries,
                                               session_options, usable_providers)
from spark_models.flavors.saving import copy_extra_files, saved_model
from spark_models.flavors.trust import refusal
from spark_models.mlmodel import MLMODEL_FILE_NAME, Model

_logger = logging.getLogger(__name__)

FLAVOR_NAME = "onnx"
DATA_FILE = "model.onnx"
EXTRA_FILES_DIR = "extra_files"
_NUMPY_OF_ORT = {"float": "float32", "double": "float64", "float16": "float16", "bool": "bool", "string": "object",
                 **{t: t for t in ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")}}


def default_pip_requirements() -> list[str]:
    """spark-models, onnx and onnxruntime, pinned to the installed versions."""
    return default_requirements("onnx", "onnxruntime")


# ---- external data ---------------------------------------------------------------------------

def _attribute_tensors(node: Any) -> Iterator[Any]:
    for attribute in node.attribute:
        if attribute.HasField("t"):
            yield attribute.t
        yield from attribute.tensors
        if attribute.HasField("sparse_tensor"):
            yield from (attribute.sparse_tensor.values, attribute.sparse_tensor.indices)
        for graph in ([attribute.g] if attribute.HasField("g") else []) + list(attribute.graphs):
            yield from _graph_tensors(graph)


def _graph_tensors(graph: Any) -> Iterator[Any]:
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield from (sparse.values, sparse.indices)
    for node in graph.node:
        yield from _attribute_tensors(node)


def check_external_data(onnx_file: Path, model_dir: Path) -> None:
    """Refuse external-data locations outside ``model_dir`` (MalformedModelError naming the file
    and tensor) or missing (ArtifactNotFoundError). Files without external data are not parsed."""
    with open(onnx_file, "rb") as f:
        if os.fstat(f.fileno()).st_size == 0:
            raise MalformedModelError(f"{onnx_file}: the ONNX file is empty")
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            if data.find(b"location") < 0:  # every external tensor names its file under this key
                return
    import onnx

    try:
        model = onnx.load(str(onnx_file), load_external_data=False)
    except Exception as e:  # protobuf's DecodeError and friends
        raise MalformedModelError(f"{onnx_file}: not a readable ONNX model: {e}") from e
    root = model_dir.resolve()
    tensors = [t for g in [model.graph] for t in _graph_tensors(g)]
    tensors += [t for function in model.functions for node in function.node for t in _attribute_tensors(node)]
    for tensor in tensors:
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        location = {e.key: e.value for e in tensor.external_data}.get("location", "")
        target = (onnx_file.parent / location).resolve()
        if not location or os.path.isabs(location) or root not in target.parents:
            raise MalformedModelError(f"{onnx_file}: tensor {tensor.name!r} keeps its data in {location!r}, which lies "
                                      f"outside the model directory {str(model_dir)!r}")
        if not target.is_file():
            raise ArtifactNotFoundError(f"{onnx_file}: the data file {location!r} of tensor {tensor.name!r} does not exist")


# ---- save / load -----------------------------------------------------------------------------



def save_model(
    onnx_model: Any,
    path: str | os.PathLike,
    conda_env: Any = None,
    code_paths: Sequence[str | os.PathLike] | None = None,
    mlflow_model: Model | None = None,
    signature: Any = None,
    input_example: Any = None,
    pip_requirements: Any = None,
    extra_pip_requirements: Any = None,
    onnx_execution_providers: Sequence[Any] | None = None,
    onnx_session_options: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
    save_as_external_data: bool = True,
    extra_files: Sequence[str | os.PathLike] | None = None,
    **kwargs: Any,
) -> Model:
    """Save an ``onnx.ModelProto`` (or its serialized bytes) at ``path`` in MLflow's layout.

    ``kwargs`` go to ``onnx.save_model`` (``location``, ``size_threshold``, ``all_tensors_to_one_file``).
    """
    import onnx

    if isinstance(onnx_model, (bytes, bytearray)):
        onnx_model = onnx.load_from_string(bytes(onnx_model))
    if not isinstance(onnx_model, onnx.ModelProto):
        raise InvalidArgumentError(f"onnx_model must be an onnx.ModelProto, got {type(onnx_model).__name__}")
    providers = [list(p) if isinstance(p, tuple) else p for p in provider_entries(
        list(onnx_execution_providers or DEFAULT_PROVIDERS), "onnx_execution_providers", InvalidArgumentError)]
    options = check_session_options(onnx_session_options)
    copy = onnx.ModelProto()
    copy.CopyFrom(onnx_model)  # onnx.save_model moves external tensors' bytes out of the proto it is given
    with saved_model(path, default_pip=default_pip_requirements(), mlflow_model=mlflow_model, code_paths=code_paths,
                     signature=signature, input_example=input_example, conda_env=conda_env,
                     pip_requirements=pip_requirements, extra_pip_requirements=extra_pip_requirements,
                     metadata=metadata) as draft:
        data = draft.dir / DATA_FILE
        onnx.save_model(copy, str(data), save_as_external_data=save_as_external_data, **kwargs)
        try:
            check_external_data(data, draft.dir)
            onnx.checker.check_model(str(data))
        except (MalformedModelError, onnx.checker.ValidationError) as e:
            raise InvalidArgumentError(f"onnx_model is not a valid ONNX model: {e}") from e
        conf = dict(onnx_version=onnx.__version__, data=DATA_FILE, providers=providers,
                    onnx_session_options=options, code=draft.code, **copy_extra_files(extra_files, draft.dir))
        draft.add_flavor(FLAVOR_NAME, **conf)
        draft.set_pyfunc(FLAVOR.module, data=DATA_FILE, code=draft.code)
        draft.predict_for_signature = lambda x: _signature_output(_OnnxModelWrapper(data, conf, {DEVICE_KEY: "cpu"}), x)
    return draft.model


def _signature_output(wrapper: _OnnxModelWrapper, example: Any) -> Any:
    """The output to infer a signature from: a frame holding arrays becomes tensors (dict of arrays)."""
    output = wrapper.predict(example)
    if not isinstance(output, pd.DataFrame) or not len(output):
        return output
    arrays = [c for c in output if output[c].dtype == object and isinstance(output[c].iloc[0], np.ndarray)]
    return {c: np.stack(output[c].to_numpy()) if c in arrays else output[c].to_numpy() for c in output} if arrays else output


def _onnx_file(context: LoadContext) -> Path:
    conf = context.model.flavors.get(FLAVOR_NAME) or {}
    data = conf.get("data") or context.pyfunc_conf.get("data") or DATA_FILE
    path = context.path(data, "onnx data")
    if not path.is_file():
        raise ArtifactNotFoundError(f"Model data {str(path)!r} named in {context.model_dir / MLMODEL_FILE_NAME} does not exist")
    check_external_data(path, context.model_dir)
    return path


def load_model(model_uri: str | os.PathLike, dst_path: str | os.PathLike | None = None, *,
               allow_code: bool | None = None) -> Any:
    """The ``onnx.ModelProto`` of a model with the onnx flavor, checked by ``onnx.checker``
    (``allow_code``: see :mod:`spark_models.flavors.trust`)."""
    import onnx

    context = open_model(model_uri, dst_path, allow_code=allow_code)
    code = context.flavor_conf(FLAVOR_NAME).get("code")
    if code:
        if not context.allow_code:
            raise refusal(context.model_dir, f"it ships code ({code!r}) to put on sys.path")
        from spark_models.pyfunc.loading import add_code_to_sys_path

        add_code_to_sys_path(context)
    path = _onnx_file(context)
    try:
        onnx.checker.check_model(str(path))
        return onnx.load(str(path))
    except onnx.checker.ValidationError as e:
        raise MalformedModelError(f"{path}: not a valid ONNX model: {e}") from e


# ---- pyfunc ----------------------------------------------------------------------------------

def _declared_dims(shape: Sequence[Any]) -> list[int | None]:
    return [d if isinstance(d, int) and d >= 0 else None for d in shape]


class _OnnxModelWrapper:
    """pyfunc adapter: MLflow's ``_OnnxModelWrapper`` with checked, cast and reshaped inputs."""

    def __init__(self, path: str | os.PathLike, conf: Mapping[str, Any], model_config: Mapping[str, Any] | None = None,
                 *, gpus: Sequence[str] | None = None):
        self.requested_providers = execution_providers(conf.get("providers"), model_config, gpus=gpus)
        options = session_options(conf.get("onnx_session_options"), model_config)
        self.rt = inference_session(Path(path), self.requested_providers, options)
        self.inputs = [(i.name, i.type, _declared_dims(i.shape or [])) for i in self.rt.get_inputs()]
        self.output_names = [o.name for o in self.rt.get_outputs()]
        self._overridable = {i.name for i in self.rt.get_overridable_initializers()}

    def get_raw_model(self) -> Any:
        """The ``onnxruntime.InferenceSession``."""
        return self.rt

    def _conform(self, name: str, ort_type: str, dims: list[int | None], value: Any) -> Any:
        if not ort_type.startswith("tensor("):  # a sequence or a map: as given
            return value
        array = np.asarray(value)
        if array.dtype == object and array.ndim == 1 and len(array) and isinstance(array[0], (np.ndarray, list, tuple)):
            try:
                array = np.stack([np.asarray(v) for v in array])  # a column of arrays
            except ValueError as e:
                raise SchemaEnforcementError(f"Input {name!r} of the ONNX model: its rows are arrays of different "
                                             f"shapes ({e})") from e
        array = _cast(name, ort_type, array, np.dtype(_NUMPY_OF_ORT.get(ort_type[7:-1], "object")))
        if not dims:  # unknown rank (onnxruntime shows scalars the same way)
            return array
        fixed = dims[1:]
        if len(dims) != array.ndim and array.ndim >= 1 and None not in fixed \
                and math.prod(fixed) == math.prod(array.shape[1:]):
            array = array.reshape((array.shape[0], *fixed))  # the same values a row, in the declared layout
        if len(dims) != array.ndim or any(d is not None and d != a for d, a in zip(dims, array.shape)):
            shown = tuple(-1 if d is None else d for d in dims)
            raise SchemaEnforcementError(f"Input {name!r} of the ONNX model takes shape {shown} (-1 = any), got {array.shape}")
        return array

    def _feeds(self, data: Any) -> dict[str, np.ndarray]:
        names = [n for n, _, _ in self.inputs]
        if isinstance(data, pd.Series):
            data = data.to_frame()
        if isinstance(data, dict):
            unknown = [k for k in data if k not in names and k not in self._overridable]
            missing = [n for n in names if n not in data]
            if unknown or missing:
                raise SchemaEnforcementError(f"The ONNX model takes inputs {names}; the dict lacks {missing} and has unknown {unknown}")
            raw = dict(data)
        elif isinstance(data, np.ndarray):
            if len(names) != 1:
                raise InvalidArgumentError(f"A numpy array feeds a model with one input; this one takes {len(names)}: "
                                           f"{names}. Pass a dict of arrays or a DataFrame with those columns")
            raw = {names[0]: data}
        elif isinstance(data, pd.DataFrame):
            if len(names) == 1:
                raw = {names[0]: data.iloc[:, 0].to_numpy() if data.shape[1] == 1 and data.dtypes.iloc[0] == object
                       else data.to_numpy()}
            else:
                missing = [n for n in names if n not in data.columns]
                if missing:
                    raise SchemaEnforcementError(f"The ONNX model takes inputs {names}; the DataFrame has no column {missing[0]!r}"
                                                 f" (columns: {list(data.columns)})")
                raw = {n: data[n].to_numpy() for n in names}
        else:
            raise InvalidArgumentError(f"ONNX models take a DataFrame, a numpy array or a dict of arrays, got {type(data).__name__}")
        types = {n: (t, d) for n, t, d in self.inputs}
        return {k: self._conform(k, *types[k], v) if k in types else np.asarray(v) for k, v in raw.items()}

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        """Score ``data`` (see the module docstring); ``params`` are ignored, as in MLflow."""
        if params:
            _logger.warning("ONNX models take no params; ignoring %s", sorted(params))
        feeds = self._feeds(data)
        try:
            predicted = self.rt.run(self.output_names, feeds)
        except ort_errors() as e:
            raise InvalidArgumentError(f"onnxruntime could not score the input ({', '.join(feeds)}): {e}") from e
        if not isinstance(data, (pd.DataFrame, pd.Series)):
            return dict(zip(self.output_names, predicted))
        columns = {name: _column(value, len(data)) for name, value in zip(self.output_names, predicted)}
        rows = {name: len(column) for name, column in columns.items()}
        if set(rows.values()) != {len(data)}:
            raise ModelOutputError(f"The ONNX model's outputs have {rows} rows for {len(data)} input rows; a DataFrame "
                                   "input gives one row per input row (pass a dict or an ndarray to get the raw outputs)")
        return pd.DataFrame(columns, index=data.index)


def _cast(name: str, ort_type: str, array: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``array`` as ``dtype`` when no value changes kind, else SchemaEnforcementError naming the input."""
    src = array.dtype
    if src == dtype or (dtype.kind == "O" and src.kind in "OUS"):
        return array if dtype.kind != "O" or src.kind == "O" else array.astype(object)
    fits = (src.kind == "f" and dtype.kind == "f") or (src.kind in "biu" and dtype.kind == "f") \
        or (src.kind == "b" and dtype.kind in "iu")
    if src.kind in "iu" and dtype.kind in "iu":
        info = np.iinfo(dtype)
        fits = np.can_cast(src, dtype) or not array.size or (info.min <= array.min() and array.max() <= info.max)
    if src.kind == "O" and dtype.kind in "fiub" and array.size:  # numbers in an object array
        try:
            values = np.array(array.tolist(), dtype=float if dtype.kind == "f" else None)  # None → NaN
        except (TypeError, ValueError):
            values = array
        if values.dtype.kind != "O":
            return _cast(name, ort_type, values, dtype)
    if not fits:
        raise SchemaEnforcementError(f"Input {name!r} of the ONNX model takes {ort_type}; got an array of {src}, "
                                     f"which does not convert to {dtype} without changing values")
    return array.astype(dtype)


def _column(value: Any, rows: int) -> Any:
    """One output as a DataFrame column: flat (MLflow's form) unless it holds several values a row."""
    array = np.asarray(value)
    if array.ndim >= 2 and array.shape[0] == rows and math.prod(array.shape[1:]) != 1:
        return pd.Series(list(array), dtype=object).to_numpy()  # one array per row
    return array.reshape(-1)


def _load_pyfunc_context(context: LoadContext) -> _OnnxModelWrapper:
    return _OnnxModelWrapper(_onnx_file(context), context.model.flavors.get(FLAVOR_NAME) or {}, context.model_config)


FLAVOR = Flavor(
    name=FLAVOR_NAME,
    save_model=save_model,
    load_model=load_model,
    load_pyfunc=_load_pyfunc_context,
    default_pip_requirements=default_pip_requirements,
    extra="onnx",
    runs_code=runs_no_code,
)
_load_pyfunc = FLAVOR.mlflow_loader()

__all__ = ["DEFAULT_PROVIDERS", "FLAVOR", "FLAVOR_NAME", "SESSION_OPTIONS", "_load_pyfunc", "check_session_options",
           "default_pip_requirements", "execution_providers", "load_model", "save_model", "session_options",
           "usable_providers"]
