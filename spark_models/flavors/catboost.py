"""The catboost flavor: CatBoost models in MLflow's layout (``mlflow.catboost``).

``save_model`` writes ``model.cb`` with CatBoost's own ``save_model`` (``format="cbm"`` by
default; ``"json"`` and ``"onnx"`` also load back) and an MLmodel with a ``catboost`` flavor
(``data``, ``model_type`` — the class name —, ``save_format``, ``catboost_version``) and a
``python_function`` flavor. None of these formats runs code when loaded.

pyfunc ``predict`` is MLflow's: the model's ``predict`` (class labels for a classifier, values
for a regressor, raw scores for a ranker). A DataFrame holding every feature by name is given
to CatBoost in the model's feature order (CatBoost itself reads columns by position), so a
model trained with ``cat_features=["color"]`` scores a frame with a string ``color`` column
wherever it sits. Threads: ``model_config={"num_threads": n}``, see
:mod:`spark_models.flavors.threads` (CatBoost's ``thread_count``).
"""

from __future__ import annotations

import logging
import os
from typing import Any, Mapping, Sequence

import pandas as pd

from spark_models.environment import default_requirements, installed_version
from spark_models.exceptions import InvalidArgumentError, MalformedModelError, NotSupportedError
from spark_models.flavors.contract import Flavor, LoadContext, runs_no_code
from spark_models.flavors.opening import open_model
from spark_models.flavors.saving import saved_model
from spark_models.flavors.threads import num_threads
from spark_models.mlmodel import Model

_logger = logging.getLogger(__name__)

FLAVOR_NAME = "catboost"
DATA_FILE = "model.cb"
DEFAULT_FORMAT = "cbm"
LOADABLE_FORMATS = ("cbm", "json", "onnx")
"""``save_format`` values CatBoost reads back (``coreml``, ``cpp``, ``python``, ``pmml`` are export-only)."""
MODEL_TYPES = ("CatBoost", "CatBoostClassifier", "CatBoostRegressor", "CatBoostRanker")


def default_pip_requirements() -> list[str]:
    """spark-models and catboost, pinned to the installed versions."""
    return default_requirements("catboost")


def _model_class(model_type: str | None) -> type:
    import catboost

    if model_type not in MODEL_TYPES or not hasattr(catboost, str(model_type)):
        raise MalformedModelError(f"Unknown catboost model_type {model_type!r}; expected one of {MODEL_TYPES}")
    return getattr(catboost, model_type)


def save_model(
    cb_model: Any,
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
    """Save a fitted CatBoost model (CatBoost, CatBoostClassifier/Regressor/Ranker) at ``path``.

    ``kwargs`` go to CatBoost's ``save_model`` (``format``, ``export_parameters``, ``pool``), as in
    ``mlflow.catboost.save_model``; ``format`` must be one CatBoost loads back (:data:`LOADABLE_FORMATS`).
    """
    if "extra_files" in kwargs:
        raise NotSupportedError("catboost save_model does not support extra_files; add them to the directory yourself")
    model_type = type(cb_model).__name__
    if model_type not in MODEL_TYPES:
        raise InvalidArgumentError(f"Expected a CatBoost model ({', '.join(MODEL_TYPES)}), got {model_type}")
    if not cb_model.is_fitted():
        raise InvalidArgumentError(f"The {model_type} is not fitted: call fit() before saving it")
    save_format = kwargs.get("format", DEFAULT_FORMAT)
    if save_format not in LOADABLE_FORMATS:
        raise InvalidArgumentError(
            f"format={save_format!r} cannot be loaded back by CatBoost; use one of {LOADABLE_FORMATS}")
    with saved_model(path, default_pip=default_pip_requirements(), mlflow_model=mlflow_model, code_paths=code_paths,
                     signature=signature, input_example=input_example, conda_env=conda_env,
                     pip_requirements=pip_requirements, extra_pip_requirements=extra_pip_requirements,
                     metadata=metadata) as draft:
        cb_model.save_model(str(draft.dir / DATA_FILE), **kwargs)
        draft.add_flavor(FLAVOR_NAME, catboost_version=installed_version("catboost"), code=draft.code,
                         model_type=model_type, save_format=save_format, data=DATA_FILE)
        draft.set_pyfunc(FLAVOR.module, data=DATA_FILE, code=draft.code)
        draft.predict_for_signature = _CatboostModelWrapper(cb_model).predict
    return draft.model


def _load_native(context: LoadContext) -> Any:
    conf = context.flavor_conf(FLAVOR_NAME)
    model = _model_class(conf.get("model_type"))()
    data = context.path(conf.get("data") or DATA_FILE, "data")
    model.load_model(str(data), conf.get("save_format") or DEFAULT_FORMAT)
    return model


def load_model(model_uri: str | os.PathLike, dst_path: str | os.PathLike | None = None) -> Any:
    """Load the CatBoost model (of the class its MLmodel names) of a model with the catboost flavor."""
    return _load_native(open_model(model_uri, dst_path))


def _by_feature_name(data: Any, feature_names: Sequence[str] | None) -> Any:
    """``data`` with the model's features in its order, when it is a frame holding all of them."""
    if not isinstance(data, pd.DataFrame) or not feature_names:
        return data
    names = list(feature_names)
    if list(data.columns) == names or not set(names) <= set(map(str, data.columns)):
        return data
    _logger.debug("Giving CatBoost the input's columns in the model's feature order %s", names)
    return data.rename(columns=str)[names]


class _CatboostModelWrapper:
    """pyfunc adapter: ``predict`` is the model's ``predict``, with features matched by name."""

    def __init__(self, cb_model: Any, model_config: Mapping[str, Any] | None = None):
        self.cb_model = cb_model
        self.model_config = dict(model_config or {})
        num_threads(self.model_config)  # a bad value fails at load time, not in the first batch
        self._feature_names = list(getattr(cb_model, "feature_names_", None) or [])

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        threads = num_threads(self.model_config)  # per call: a Spark task's CPUs are known only then
        kwargs = {"thread_count": threads} if threads is not None else {}
        return self.cb_model.predict(_by_feature_name(data, self._feature_names), **kwargs)

    def get_raw_model(self) -> Any:
        return self.cb_model


def _load_pyfunc_context(context: LoadContext) -> _CatboostModelWrapper:
    return _CatboostModelWrapper(_load_native(context), context.model_config)


FLAVOR = Flavor(
    name=FLAVOR_NAME,
    save_model=save_model,
    load_model=load_model,
    load_pyfunc=_load_pyfunc_context,
    default_pip_requirements=default_pip_requirements,
    extra="catboost",
    runs_code=runs_no_code,
)
_load_pyfunc = FLAVOR.mlflow_loader()

__all__ = ["FLAVOR", "FLAVOR_NAME", "LOADABLE_FORMATS", "default_pip_requirements", "load_model", "save_model",
           "_load_pyfunc"]
