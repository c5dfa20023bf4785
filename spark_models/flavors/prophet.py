"""The prophet flavor: fitted Prophet forecasters in MLflow's layout (``mlflow.prophet``).

``save_model`` writes ``model.pr`` — the JSON of ``prophet.serialize.model_to_json``, stored as
a JSON string exactly as MLflow writes it — and an MLmodel with a ``prophet`` flavor (``data``,
``model_type``, ``prophet_version``) and a ``python_function`` flavor. JSON runs no code when
loaded, so these models load with ``allow_code=False``.

pyfunc ``predict`` is MLflow's: ``model.predict(frame)`` on a frame with a ``ds`` column (plus
``cap``/``floor`` for logistic growth and any extra regressors), returning Prophet's forecast
frame: ``ds``, ``trend``, ``yhat_lower``, ``yhat_upper`` …, ``yhat``. Each row is forecast on its
own, so ``spark_udf`` scores a ``ds`` column row by row; ask it for the columns you want
(``result_type="struct<yhat:double,yhat_lower:double,yhat_upper:double>"``), since the ``ds``
output is a datetime, which a UDF does not return. Prophet sorts its input by ``ds``; here the
forecast comes back in the input's row order (MLflow returns it sorted). ``yhat_lower`` and
``yhat_upper`` are Monte Carlo samples (numpy's global random state) unless the model was built
with ``uncertainty_samples=0``; ``yhat`` is deterministic.
"""

from __future__ import annotations

import json
import os
from typing import Any, Sequence

import numpy as np
import pandas as pd

from spark_models.environment import default_requirements, installed_version
from spark_models.exceptions import InvalidArgumentError, SchemaEnforcementError
from spark_models.flavors.contract import Flavor, LoadContext, runs_no_code
from spark_models.flavors.opening import open_model
from spark_models.flavors.saving import saved_model
from spark_models.mlmodel import Model

FLAVOR_NAME = "prophet"
DATA_FILE = "model.pr"


def _older_than(version: str | None, limit: tuple[int, ...]) -> bool:
    try:
        parts = tuple(int(p) for p in (version or "").split(".")[:3])
    except ValueError:
        return False
    return bool(parts) and parts < limit


def default_pip_requirements() -> list[str]:
    """spark-models and prophet, pinned to the installed versions (plus MLflow's caps for old prophet)."""
    version = installed_version("prophet")
    extra = ["cmdstanpy<1.3.0"] if _older_than(version, (1, 2, 1)) else []
    extra += ["pandas<3"] if _older_than(version, (1, 2, 2)) else []
    return [*default_requirements("prophet"), *extra]


def save_model(
    pr_model: Any,
    path: str | os.PathLike,
    conda_env: Any = None,
    code_paths: Sequence[str | os.PathLike] | None = None,
    mlflow_model: Model | None = None,
    signature: Any = None,
    input_example: Any = None,
    pip_requirements: Any = None,
    extra_pip_requirements: Any = None,
    metadata: dict[str, Any] | None = None,
) -> Model:
    """Save a fitted Prophet model at ``path``."""
    from prophet.serialize import model_to_json

    if getattr(pr_model, "history", None) is None or not callable(getattr(pr_model, "predict", None)):
        raise InvalidArgumentError(f"Expected a fitted Prophet model, got {type(pr_model).__name__} "
                                   "(call fit() before saving it)")
    with saved_model(path, default_pip=default_pip_requirements(), mlflow_model=mlflow_model, code_paths=code_paths,
                     signature=signature, input_example=input_example, conda_env=conda_env,
                     pip_requirements=pip_requirements, extra_pip_requirements=extra_pip_requirements,
                     metadata=metadata) as draft:
        (draft.dir / DATA_FILE).write_text(json.dumps(model_to_json(pr_model)))
        draft.add_flavor(FLAVOR_NAME, prophet_version=installed_version("prophet"), code=draft.code,
                         model_type=type(pr_model).__name__, data=DATA_FILE)
        draft.set_pyfunc(FLAVOR.module, data=DATA_FILE, code=draft.code)
        draft.predict_for_signature = _ProphetModelWrapper(pr_model).predict
    return draft.model


def _load_native(context: LoadContext) -> Any:
    from prophet.serialize import model_from_json

    conf = context.flavor_conf(FLAVOR_NAME)
    text = json.loads(context.path(conf.get("data") or DATA_FILE, "data").read_text())
    return model_from_json(text)


def load_model(model_uri: str | os.PathLike, dst_path: str | os.PathLike | None = None) -> Any:
    """Load the Prophet model of a model with the prophet flavor."""
    return _load_native(open_model(model_uri, dst_path))


def _prophet_order(ds: pd.Series) -> np.ndarray:
    """The row order Prophet's ``setup_dataframe`` puts ``ds`` in (a stable sort of the parsed dates)."""
    if ds.dtype == np.int64:
        ds = ds.astype(str)
    return np.argsort(pd.to_datetime(ds).to_numpy(), kind="stable")


class _ProphetModelWrapper:
    """pyfunc adapter: Prophet's ``predict``, its rows put back in the input's order."""

    def __init__(self, pr_model: Any):
        self.pr_model = pr_model

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> pd.DataFrame:
        frame = data if isinstance(data, pd.DataFrame) else pd.DataFrame(data)
        if "ds" not in frame.columns:
            raise SchemaEnforcementError(f"A Prophet model forecasts the dates of a 'ds' column; the input has "
                                         f"{[str(c) for c in frame.columns]}")
        forecast = self.pr_model.predict(frame)
        order = _prophet_order(frame["ds"].reset_index(drop=True))
        if not np.array_equal(order, np.arange(len(order))):
            forecast = forecast.iloc[np.argsort(order, kind="stable")]
        return forecast.set_axis(frame.index, axis=0)

    def get_raw_model(self) -> Any:
        return self.pr_model


def _load_pyfunc_context(context: LoadContext) -> _ProphetModelWrapper:
    return _ProphetModelWrapper(_load_native(context))


FLAVOR = Flavor(
    name=FLAVOR_NAME,
    save_model=save_model,
    load_model=load_model,
    load_pyfunc=_load_pyfunc_context,
    default_pip_requirements=default_pip_requirements,
    extra="prophet",
    runs_code=runs_no_code,
)
_load_pyfunc = FLAVOR.mlflow_loader()

__all__ = ["FLAVOR", "FLAVOR_NAME", "default_pip_requirements", "load_model", "save_model", "_load_pyfunc"]
