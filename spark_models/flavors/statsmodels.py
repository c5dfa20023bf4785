"""The statsmodels flavor: fitted statsmodels results in MLflow's layout (``mlflow.statsmodels``).

``save_model`` writes ``model.statsmodels`` (statsmodels' own pickle of the results object,
``remove_data=True`` strips the training arrays from a copy) and an MLmodel with a
``statsmodels`` flavor (``data``, ``statsmodels_version``) and a ``python_function`` flavor.
Loading unpickles it with ``statsmodels.iolib.smpickle.load_pickle``, which runs code chosen
by whoever wrote the file: ``allow_code=False`` refuses these models.

pyfunc ``predict``:

- regression-type results (OLS, GLM, Logit …): ``results.predict(frame)``, the frame being
  the ``exog`` (its columns by name for formula models), as MLflow does;
- time-series results (ARIMA, SARIMAX, ExponentialSmoothing … — any ``TimeSeriesModel``):
  a frame with ``start`` and ``end`` columns (integer positions, dates or date strings),
  **one forecast request per row**. Each row gets its forecast ``results.predict(start, end)``
  as a list of floats (a Series named like statsmodels' output, ``predicted_mean``), so a
  1-row frame gives what MLflow returns, as one row, and ``spark_udf`` scores a column of
  requests (result type ``array<double>``). MLflow accepts exactly one row and returns the
  forecast Series itself, one row per forecast step.
"""

from __future__ import annotations

import copy
import datetime as _dt
import logging
import os
from typing import Any, Hashable, Sequence

import numpy as np
import pandas as pd

from spark_models.environment import default_requirements, installed_version
from spark_models.exceptions import InvalidArgumentError, SchemaEnforcementError
from spark_models.flavors.contract import Flavor, LoadContext
from spark_models.flavors.opening import open_model
from spark_models.flavors.saving import saved_model
from spark_models.flavors.trust import refusal
from spark_models.mlmodel import Model

_logger = logging.getLogger(__name__)

FLAVOR_NAME = "statsmodels"
DATA_FILE = "model.statsmodels"
TIME_SERIES_COLUMNS = ("start", "end")


def default_pip_requirements() -> list[str]:
    """spark-models and statsmodels, pinned to the installed versions."""
    return default_requirements("statsmodels")


def save_model(
    statsmodels_model: Any,
    path: str | os.PathLike,
    conda_env: Any = None,
    code_paths: Sequence[str | os.PathLike] | None = None,
    mlflow_model: Model | None = None,
    remove_data: bool = False,
    signature: Any = None,
    input_example: Any = None,
    pip_requirements: Any = None,
    extra_pip_requirements: Any = None,
    metadata: dict[str, Any] | None = None,
) -> Model:
    """Save a fitted statsmodels results object (``model.fit()``'s result) at ``path``.

    ``remove_data=True`` pickles a copy without the arrays of length nobs (statsmodels'
    ``remove_data``); the object you pass is left as it is.
    """
    if not callable(getattr(statsmodels_model, "save", None)) or not hasattr(statsmodels_model, "model"):
        raise InvalidArgumentError(
            f"Expected fitted statsmodels results (what model.fit() returns), got {type(statsmodels_model).__name__}")
    with saved_model(path, default_pip=default_pip_requirements(), mlflow_model=mlflow_model, code_paths=code_paths,
                     signature=signature, input_example=input_example, conda_env=conda_env,
                     pip_requirements=pip_requirements, extra_pip_requirements=extra_pip_requirements,
                     metadata=metadata) as draft:
        target = copy.deepcopy(statsmodels_model) if remove_data else statsmodels_model
        target.save(str(draft.dir / DATA_FILE), remove_data=bool(remove_data))
        draft.add_flavor(FLAVOR_NAME, statsmodels_version=installed_version("statsmodels"), data=DATA_FILE,
                         code=draft.code)
        draft.set_pyfunc(FLAVOR.module, data=DATA_FILE, code=draft.code)
        draft.predict_for_signature = _StatsmodelsModelWrapper(statsmodels_model).predict
    return draft.model


def _runs_code(context: LoadContext) -> str | None:
    conf = context.model.flavors.get(FLAVOR_NAME) or {}
    return f"unpickles {conf.get('data') or context.pyfunc_conf.get('data') or DATA_FILE} (statsmodels' pickle)"


def _load_native(context: LoadContext) -> Any:
    from statsmodels.iolib.smpickle import load_pickle

    if not context.allow_code:
        raise refusal(context.model_dir, f"loading it {_runs_code(context)}")
    conf = context.flavor_conf(FLAVOR_NAME)
    return load_pickle(str(context.path(conf.get("data") or DATA_FILE, "data")))


def load_model(model_uri: str | os.PathLike, dst_path: str | os.PathLike | None = None, *,
               allow_code: bool | None = None) -> Any:
    """Load the statsmodels results object of a model with the statsmodels flavor (``allow_code``:
    see :mod:`spark_models.flavors.trust`; False refuses, the file is a pickle)."""
    return _load_native(open_model(model_uri, dst_path, allow_code=allow_code))


def _forecast_key(value: Any, column: str, row: int) -> Hashable:
    """A ``start``/``end`` value as statsmodels takes it: an int position, a Timestamp or a string."""
    if value is None or value is pd.NaT or (not isinstance(value, str) and bool(pd.isna(value))):
        raise SchemaEnforcementError(f"Row {row}: {column!r} is missing; every forecast request needs start and end")
    if isinstance(value, (bool, np.bool_)):
        raise SchemaEnforcementError(f"Row {row}: {column!r} is a boolean ({value!r}); use a position or a date")
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return int(value)
    if isinstance(value, (np.datetime64, _dt.date)):  # datetime.date: statsmodels matches only Timestamps
        return pd.Timestamp(value)
    if isinstance(value, str):
        return value
    raise SchemaEnforcementError(
        f"Row {row}: {column!r} holds {type(value).__name__} {value!r}; "
        "use an integer position, a date or a date string")


class _StatsmodelsModelWrapper:
    """pyfunc adapter; see the module docstring for what ``predict`` takes and returns."""

    def __init__(self, statsmodels_model: Any):
        from statsmodels.tsa.base.tsa_model import TimeSeriesModel

        self.statsmodels_model = statsmodels_model
        self.is_time_series = isinstance(getattr(statsmodels_model, "model", None), TimeSeriesModel)

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        if self.is_time_series:
            return self._forecast(data)
        return self.statsmodels_model.predict(data)

    def _forecast(self, data: Any) -> pd.Series:
        frame = data if isinstance(data, pd.DataFrame) else pd.DataFrame(data)
        missing = [c for c in TIME_SERIES_COLUMNS if c not in frame.columns]
        if missing:
            raise SchemaEnforcementError(
                f"A time-series model takes one forecast request per row, in columns 'start' and 'end'; the input "
                f"lacks {missing} (it has {[str(c) for c in frame.columns]})")
        done: dict[tuple[Hashable, Hashable], list[float]] = {}
        values, name = [], None
        for row, (start, end) in enumerate(zip(frame["start"].tolist(), frame["end"].tolist())):
            key = (_forecast_key(start, "start", row), _forecast_key(end, "end", row))
            if key not in done:
                forecast = self.statsmodels_model.predict(start=key[0], end=key[1])
                name = getattr(forecast, "name", None) if name is None else name
                done[key] = np.asarray(forecast, dtype=np.float64).tolist()
            values.append(done[key])
        return pd.Series(values, index=frame.index, name=name, dtype=object)

    def get_raw_model(self) -> Any:
        return self.statsmodels_model


def _load_pyfunc_context(context: LoadContext) -> _StatsmodelsModelWrapper:
    return _StatsmodelsModelWrapper(_load_native(context))


FLAVOR = Flavor(
    name=FLAVOR_NAME,
    save_model=save_model,
    load_model=load_model,
    load_pyfunc=_load_pyfunc_context,
    default_pip_requirements=default_pip_requirements,
    extra="statsmodels",
    runs_code=_runs_code,
)
_load_pyfunc = FLAVOR.mlflow_loader()

__all__ = ["FLAVOR", "FLAVOR_NAME", "TIME_SERIES_COLUMNS", "default_pip_requirements", "load_model", "save_model",
           "_load_pyfunc"]
