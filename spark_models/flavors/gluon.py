"""The gluon flavor: MXNet Gluon models in MLflow 1.x/2.x's layout (``mlflow.gluon``, removed in MLflow 3).

MLflow wrote ``HybridBlock.export`` output into ``data/`` — ``data/net-symbol.json`` (the
graph, JSON) and ``data/net-0000.params`` (the weights, MXNet's binary NDArray format) — and an
MLmodel whose ``gluon`` entry holds ``mxnet_version`` and ``code`` and whose ``python_function``
entry has no ``data`` key (MLflow's loader gets the model directory). Both file names are fixed.

MXNet is retired: the project moved to the Apache Attic in 2023 and its last release, 1.9.1
(2022), imports only beside numpy < 1.24 (it uses the removed ``np.bool`` alias). Where
``mxnet`` imports, :func:`load_model` and pyfunc load these models as MLflow did (MXNet >= 2:
``SymbolBlock.imports``; 1.x: ``sym.load`` and ``collect_params().load``). Where it does not,
loading (and :func:`save_model`) raise a MissingDependencyError saying so and how to get the
model out: convert it to ONNX in an environment that still has mxnet.

pyfunc ``predict`` is MLflow's: a DataFrame becomes ``mx.nd.array(frame.values)`` (float32)
and the output a DataFrame; a numpy array gives a numpy array. Device: ``ctx``, else
:func:`spark_models.flavors.devices.resolve_device` (``model_config["device"]``, a Spark
task's GPU) as ``mx.cpu()`` / ``mx.gpu(n)``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from spark_models.environment import default_requirements
from spark_models.exceptions import (
    ArtifactNotFoundError,
    InvalidArgumentError,
    MissingDependencyError,
)
from spark_models.flavors.contract import Flavor, LoadContext
from spark_models.flavors.opening import open_model
from spark_models.flavors.devices import cuda_index, resolve_device
from spark_models.flavors.saving import saved_model
from spark_models.flavors.trust import refusal
from spark_models.mlmodel import MLMODEL_FILE_NAME, Model

_logger = logging.getLogger(__name__)

FLAVOR_NAME = "gluon"
DATA_DIR = "data"
NET_PREFIX = "net"
SYMBOL_FILE = f"{DATA_DIR}/{NET_PREFIX}-symbol.json"
PARAMS_FILE = f"{DATA_DIR}/{NET_PREFIX}-0000.params"
INPUT_NAME = "data"  # the graph input MLflow binds


def default_pip_requirements() -> list[str]:
    """spark-models and mxnet (pinned when it is installed)."""
    return default_requirements("mxnet")


def _numpy_version() -> str:
    import numpy

    return numpy.__version__


def retired_error(what: str, cause: BaseException | None, written_with: str | None = None) -> MissingDependencyError:
    """The error for a gluon model where MXNet cannot be imported: why, and the way out."""
    why = "mxnet is not installed" if isinstance(cause, ModuleNotFoundError) else f"importing mxnet failed ({cause})"
    wrote = f" (written with mxnet {written_with})" if written_with else ""
    return MissingDependencyError(
        f"{what}{wrote} needs MXNet, and {why}. MXNet is retired: it moved to the Apache Attic in 2023, and its "
        f"last release, 1.9.1 (2022), imports only beside numpy < 1.24 (this environment has numpy "
        f"{_numpy_version()}); there is no build for current numpy. To keep using the model, convert it to ONNX "
        "in an environment that still has mxnet (e.g. pip install mxnet==1.9.1 'numpy<1.24' onnx==1.14.1): "
        f"mx.onnx.export_model('{SYMBOL_FILE}', '{PARAMS_FILE}', in_shapes=[(1, n_features)], "
        "in_types=[numpy.float32], onnx_file_path='net.onnx', dynamic=True, dynamic_input_shapes=[(None, n_features)]), "
        "then save net.onnx with spark_models.onnx.save_model.")


def _mxnet(what: str, written_with: str | None = None) -> Any:
    try:
        import mxnet
    except (ImportError, AttributeError, OSError) as e:  # AttributeError: np.bool with numpy >= 1.24
        raise retired_error(what, e, written_with) from e
    return mxnet


def save_model(
    gluon_model: Any,
    path: str | os.PathLike,
    mlflow_model: Model | None = None,
    conda_env: Any = None,
    code_paths: Sequence[str | os.PathLike] | None = None,
    signature: Any = None,
    input_example: Any = None,
    pip_requirements: Any = None,
    extra_pip_requirements: Any = None,
    metadata: dict[str, Any] | None = None,
) -> Model:
    """Save a hybridized Gluon block at ``path`` in MLflow's layout (argument order as
    ``mlflow.gluon.save_model``). Needs mxnet."""
    mx = _mxnet("Saving a gluon model")
    if not callable(getattr(gluon_model, "export", None)):
        raise InvalidArgumentError(f"gluon_model must be a hybridized Gluon HybridBlock, got {type(gluon_model).__name__}")
    with saved_model(path, default_pip=default_pip_requirements(), mlflow_model=mlflow_model, code_paths=code_paths,
                     signature=signature, input_example=input_example, conda_env=conda_env,
                     pip_requirements=pip_requirements, extra_pip_requirements=extra_pip_requirements,
                     metadata=metadata) as draft:
        (draft.dir / DATA_DIR).mkdir()
        gluon_model.export(str(draft.dir / DATA_DIR / NET_PREFIX))  # writes net-symbol.json, net-0000.params
        draft.add_flavor(FLAVOR_NAME, mxnet_version=mx.__version__, code=draft.code)
        draft.set_pyfunc(FLAVOR.module, code=draft.code)  # no data key: MLflow's loader takes the model directory
        draft.predict_for_signature = _GluonModelWrapper(gluon_model).predict
    return draft.model


def _runs_code(context: LoadContext) -> str | None:
    """The graph is JSON naming MXNet's built-in operators and the weights are MXNet's NDArray
    format, read by its C++ core (no pickle): data. Only a ``code`` directory is the model's code."""
    conf = context.model.flavors.get(FLAVOR_NAME) or {}
    code = conf.get("code") or context.pyfunc_conf.get("code")
    return f"ships code ({code!r}) to put on sys.path" if code else None


def _files(context: LoadContext) -> tuple[Path, Path]:
    paths = tuple(context.path(name, "gluon data") for name in (SYMBOL_FILE, PARAMS_FILE))
    for path in paths:
        if not path.is_file():
            raise ArtifactNotFoundError(
                f"{path} does not exist: a gluon model (MLflow's layout, {context.model_dir / MLMODEL_FILE_NAME}) "
                f"keeps its network in {SYMBOL_FILE} and {PARAMS_FILE}")
    return paths  # type: ignore[return-value]


def _context_of(mx: Any, ctx: Any, model_config: Mapping[str, Any]) -> Any:
    if ctx is not None and not isinstance(ctx, str):
        return ctx  # an mx.Context, as MLflow's load_model takes
    device = resolve_device({**model_config, "device": ctx} if ctx else model_config)
    return mx.cpu() if device == "cpu" else mx.gpu(cuda_index(device))


def _load_native(context: LoadContext, ctx: Any = None) -> Any:
    conf = context.flavor_conf(FLAVOR_NAME)
    if not context.allow_code:
        reason = _runs_code(context)
        if reason:
            raise refusal(context.model_dir, f"loading it {reason}")
    symbol_path, params_path = _files(context)
    mx = _mxnet(f"The gluon model at {str(context.model_dir)!r}", conf.get("mxnet_version"))
    device = _context_of(mx, ctx, context.model_config)
    if int(mx.__version__.split(".")[0]) >= 2:
        return mx.gluon.SymbolBlock.imports(str(symbol_path), input_names=[INPUT_NAME], param_file=str(params_path),
                                            ctx=device)
    net = mx.gluon.SymbolBlock(mx.sym.load(str(symbol_path)), mx.sym.var(INPUT_NAME, dtype="float32"))
    net.collect_params().load(str(params_path), device)
    return net


def load_model(model_uri: str | os.PathLike, ctx: Any = None, dst_path: str | os.PathLike | None = None, *,
               allow_code: bool | None = None) -> Any:
    """The Gluon ``SymbolBlock`` of a model with the gluon flavor, on ``ctx`` (an ``mx.Context``,
    ``"cpu"``/``"cuda:N"``, or None: see :mod:`spark_models.flavors.devices`). Needs mxnet."""
    context = open_model(model_uri, dst_path, allow_code=allow_code)
    code = context.flavor_conf(FLAVOR_NAME).get("code")
    if code:
        if not context.allow_code:
            raise refusal(context.model_dir, f"it ships code ({code!r}) to put on sys.path")
        from spark_models.pyfunc.loading import add_code_to_sys_path

        add_code_to_sys_path(LoadContext(context.model_dir, Model(flavors={"python_function": {"code": code}})))
    return _load_native(context, ctx)


class _GluonModelWrapper:
    """pyfunc adapter: MLflow's ``_GluonModelWrapper``."""

    def __init__(self, gluon_model: Any):
        self.gluon_model = gluon_model

    def get_raw_model(self) -> Any:
        return self.gluon_model

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        import mxnet as mx
        import numpy as np
        import pandas as pd

        if isinstance(data, pd.DataFrame):
            return pd.DataFrame(self._run(mx.nd.array(data.values)))
        if isinstance(data, np.ndarray):
            array = mx.np.array(data) if int(mx.__version__.split(".")[0]) >= 2 else mx.nd.array(data)
            return self._run(array)
        raise InvalidArgumentError(f"A gluon model takes a pandas DataFrame or a numpy array, got {type(data).__name__}")

    def _run(self, array: Any) -> Any:
        out = self.gluon_model(array)
        return out.asnumpy() if hasattr(out, "asnumpy") else out


def _load_pyfunc_context(context: LoadContext) -> _GluonModelWrapper:
    return _GluonModelWrapper(_load_native(context))


FLAVOR = Flavor(
    name=FLAVOR_NAME,
    save_model=save_model,
    load_model=load_model,
    load_pyfunc=_load_pyfunc_context,
    default_pip_requirements=default_pip_requirements,
    extra=None,  # no spark-models[gluon]: MXNet has no build for current numpy
    runs_code=_runs_code,
)
_load_pyfunc = FLAVOR.mlflow_loader()

__all__ = ["FLAVOR", "FLAVOR_NAME", "PARAMS_FILE", "SYMBOL_FILE", "_load_pyfunc", "default_pip_requirements",
           "load_model", "retired_error", "save_model"]
