"""The fastai flavor: fastai ``Learner`` exports in MLflow 2.x's layout (``mlflow.fastai``).

MLflow deprecated its fastai flavor late in 2.x and removed it in 3.0 (2.22 is the last with it).
Models it wrote, and the ones written here, hold ``model.fastai``, written by ``Learner.export``
(a torch pickle of the whole Learner, its data processing included), a ``fastai`` entry with
``fastai_version``, ``data: model.fastai`` and ``code``, and a ``python_function`` entry with
the same ``data``.
Loading is fastai's ``load_learner`` (onto the CPU, then moved to the device below). An export
is a pickle, so loading runs code: ``allow_code=False`` refuses it.

pyfunc ``predict`` is MLflow's: a DataFrame goes through ``learner.dls.test_dl`` (the Learner's
own processing: categories, missing-value filling, normalization) and ``get_preds``; the result
is a DataFrame with one column, ``predictions``, holding each row's prediction vector as a
float32 array (class probabilities for a classifier, ``n_out`` values for a regressor), one row
per input row in the input's order. ``params`` are ignored, as in MLflow. In addition:

- a tabular Learner's input columns (its categorical and continuous columns, less the ``*_na``
  flags ``FillMissing`` adds) are checked first: missing ones are a ``SchemaEnforcementError``
  naming them; 0 rows give an empty ``predictions`` frame (fastai gives no tensor for them);
- threads: :func:`spark_models.flavors.threads.num_threads` (``model_config`` or
  ``$SPARK_MODELS_NUM_THREADS``; inside a Spark task, its CPUs) is given to
  ``torch.set_num_threads`` before each call;
- device: :func:`spark_models.flavors.devices.resolve_device` (``model_config={"device": ...}``,
  or the Spark task's GPU); the model and its data loaders are moved there at load time;
- calls on one loaded model are serialized (a fastai Learner keeps per-call state).
"""

from __future__ import annotations

import logging
import os
import threading
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from spark_models.environment import default_requirements
from spark_models.exceptions import (
    ArtifactNotFoundError,
    InvalidArgumentError,
    MalformedModelError,
    MissingDependencyError,
    SchemaEnforcementError,
)
from spark_models.flavors.contract import Flavor, LoadContext
from spark_models.flavors.opening import open_model
from spark_models.flavors.devices import resolve_device
from spark_models.flavors.saving import saved_model
from spark_models.flavors.threads import num_threads
from spark_models.flavors.trust import refusal
from spark_models.mlmodel import MLMODEL_FILE_NAME, Model

_logger = logging.getLogger(__name__)

FLAVOR_NAME = "fastai"
DATA_FILE = "model.fastai"
OUTPUT_COLUMN = "predictions"
# fastai warns on every load_learner that it unpickles; allow_code is where that is decided here.
_PICKLE_WARNING = r"(?s)load_learner` uses Python's insecure pickle module"


def default_pip_requirements() -> list[str]:
    """spark-models, fastai and torch, pinned to the installed versions (torch without ``+cpu``)."""
    return default_requirements("fastai", "torch")


def _check_savable(fastai_learner: Any) -> None:
    from fastai.learner import Learner

    if not isinstance(fastai_learner, Learner):
        raise InvalidArgumentError(f"fastai_learner must be a fastai Learner, got {type(fastai_learner).__name__}")


@contextmanager
def _without_param_schedulers(learner: Any) -> Iterator[None]:
    """ParamScheduler callbacks do not pickle: leave them out of the export (as MLflow does)."""
    from fastai.callback.schedule import ParamScheduler

    schedulers = [cb for cb in learner.cbs if isinstance(cb, ParamScheduler)]
    learner.remove_cbs(schedulers)
    try:
        yield
    finally:
        learner.add_cbs(schedulers)


def save_model(
    fastai_learner: Any,
    path: str | os.PathLike,
    conda_env: Any = None,
    code_paths: Sequence[str | os.PathLike] | None = None,
    mlflow_model: Model | None = None,
    signature: Any = None,
    input_example: Any = None,
    pip_requirements: Any = None,
    extra_pip_requirements: Any = None,
    metadata: dict[str, Any] | None = None,
    **kwargs: Any,
) -> Model:
    """Save a fastai ``Learner`` at ``path`` in MLflow's layout (``model.fastai``, by
    ``Learner.export``; ``kwargs`` go to ``export``, e.g. ``pickle_protocol``)."""
    import fastai

    _check_savable(fastai_learner)
    with saved_model(path, default_pip=default_pip_requirements(), mlflow_model=mlflow_model, code_paths=code_paths,
                     signature=signature, input_example=input_example, conda_env=conda_env,
                     pip_requirements=pip_requirements, extra_pip_requirements=extra_pip_requirements,
                     metadata=metadata) as draft:
        draft.predict_for_signature = _FastaiModelWrapper(fastai_learner).predict_lists
        draft.resolve_signature()  # score the example before export resets the Learner's state
        with _without_param_schedulers(fastai_learner):
            fastai_learner.export((draft.dir / DATA_FILE).resolve(), **kwargs)
        draft.add_flavor(FLAVOR_NAME, fastai_version=fastai.__version__, data=DATA_FILE, code=draft.code)
        draft.set_pyfunc(FLAVOR.module, data=DATA_FILE, code=draft.code)
    return draft.model


def _runs_code(context: LoadContext) -> str | None:
    conf = context.model.flavors.get(FLAVOR_NAME) or {}
    return f"unpickles the fastai Learner export {conf.get('data') or DATA_FILE!r} (load_learner)"


def _load_learner(context: LoadContext, device: str = "cpu") -> Any:
    from fastai.learner import load_learner

    conf = context.flavor_conf(FLAVOR_NAME)
    if not context.allow_code:
        raise refusal(context.model_dir, f"loading it {_runs_code(context)}")
    path = context.path(conf.get("data") or DATA_FILE, "fastai data")
    if not path.is_file():
        raise ArtifactNotFoundError(f"Model data {str(path)!r} named in {context.model_dir / MLMODEL_FILE_NAME} does not exist")
    written = f"written by fastai {conf.get('fastai_version', 'of unknown version')}"
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_PICKLE_WARNING, category=UserWarning)
            learner = load_learner(path, cpu=True)
    except ModuleNotFoundError as e:
        raise MissingDependencyError(
            f"{path} ({written}) needs the module {e.name!r}, which is not installed here") from e
    except Exception as e:  # a broken pickle, another fastai, a class not importable here
        import fastai

        raise MalformedModelError(f"{path}: fastai {fastai.__version__} cannot load this Learner ({written}): {e}") from e
    if device != "cpu":
        _to_device(learner, device)
    return learner


def _to_device(learner: Any, device: str) -> None:
    import torch

    kind = device.partition(":")[0]
    available = torch.cuda.is_available() if kind == "cuda" else torch.backends.mps.is_available()
    if not available:
        raise InvalidArgumentError(
            f"model_config['device'] asks for {device!r}, but torch {torch.__version__} here has no {kind} device")
    target = torch.device(device)
    learner.model.to(target)
    learner.dls.to(target)


def load_model(model_uri: str | os.PathLike, dst_path: str | os.PathLike | None = None, *,
               allow_code: bool | None = None) -> Any:
    """The fastai ``Learner`` of a model with the fastai flavor, on the CPU (``allow_code``: see
    :mod:`spark_models.flavors.trust`; an export is a pickle, so False refuses it)."""
    context = open_model(model_uri, dst_path, allow_code=allow_code)
    code = context.flavor_conf(FLAVOR_NAME).get("code")
    if code:
        if not context.allow_code:
            raise refusal(context.model_dir, f"it ships code ({code!r}) to put on sys.path")
        from spark_models.pyfunc.loading import add_code_to_sys_path

        add_code_to_sys_path(context)
    return _load_learner(context)


def _input_columns(learner: Any) -> list[str] | None:
    """A tabular Learner's input columns (None for other Learners): categorical and continuous
    columns, without the ``<name>_na`` flags ``FillMissing`` derives from its input."""
    dls = learner.dls
    cat_names, cont_names = getattr(dls, "cat_names", None), getattr(dls, "cont_names", None)
    if cat_names is None or cont_names is None:
        return None
    derived = set()
    for proc in getattr(getattr(dls, "procs", None), "fs", None) or []:
        if getattr(proc, "add_col", False) and isinstance(getattr(proc, "na_dict", None), dict):
            derived.update(f"{name}_na" for name in proc.na_dict)
    return [str(c) for c in [*cat_names, *cont_names] if c not in derived]


class _FastaiModelWrapper:
    """pyfunc adapter: MLflow's ``_FastaiModelWrapper`` plus input checks, threads and a lock."""

    def __init__(self, learner: Any, model_config: Mapping[str, Any] | None = None):
        self.learner = learner
        self.model_config = dict(model_config or {})
        num_threads(self.model_config)  # a bad value fails at load time, not in the first batch
        self.columns = _input_columns(learner)
        self._lock = threading.Lock()

    def get_raw_model(self) -> Any:
        return self.learner

    def _frame(self, data: Any) -> Any:
        import pandas as pd

        if isinstance(data, dict):
            data = pd.DataFrame(data)
        if not isinstance(data, pd.DataFrame):
            raise SchemaEnforcementError(
                f"A fastai Learner scores a pandas DataFrame with columns {self.columns}, got {type(data).__name__}")
        if self.columns is not None:
            missing = [c for c in self.columns if c not in data.columns]
            if missing:
                raise SchemaEnforcementError(
                    f"The fastai Learner needs input columns the data lacks: {missing}; its columns are "
                    f"{[str(c) for c in data.columns]}")
        return data

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        import numpy as np
        import pandas as pd

        frame = self._frame(data)
        if params:
            _logger.warning("The fastai flavor takes no params; ignoring %s", sorted(params))
        if len(frame) == 0:
            return pd.DataFrame({OUTPUT_COLUMN: pd.Series([], dtype=object)})
        threads = num_threads(self.model_config)  # per call: a Spark task's CPUs are known only then
        with self._lock:
            if threads is not None:
                import torch

                torch.set_num_threads(threads)
            with self.learner.no_bar():
                preds, _ = self.learner.get_preds(dl=self.learner.dls.test_dl(frame))
        return pd.Series(list(map(np.array, preds.numpy()))).to_frame(OUTPUT_COLUMN)

    def predict_lists(self, data: Any) -> Any:
        """``predict`` with lists of float32 for arrays: what signature inference reads as
        MLflow's ``array<float>`` ``predictions`` output."""
        out = self.predict(data)
        return out.assign(**{OUTPUT_COLUMN: [list(row) for row in out[OUTPUT_COLUMN]]})


def _load_pyfunc_context(context: LoadContext) -> _FastaiModelWrapper:
    device = resolve_device(context.model_config)
    return _FastaiModelWrapper(_load_learner(context, device), context.model_config)


FLAVOR = Flavor(
    name=FLAVOR_NAME,
    save_model=save_model,
    load_model=load_model,
    load_pyfunc=_load_pyfunc_context,
    default_pip_requirements=default_pip_requirements,
    extra="fastai",
    runs_code=_runs_code,
)
_load_pyfunc = FLAVOR.mlflow_loader()

__all__ = ["DATA_FILE", "FLAVOR", "FLAVOR_NAME", "OUTPUT_COLUMN", "_load_pyfunc", "default_pip_requirements",
           "load_model", "save_model"]
