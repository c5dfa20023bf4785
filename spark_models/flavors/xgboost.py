"""The xgboost flavor: XGBoost models in MLflow 3's layout (``mlflow.xgboost``).

``save_model`` writes ``model.<model_format>`` with the model's own ``save_model`` (``ubj`` by
default, ``json``, or ``xgb``, which recent xgboost writes as UBJSON too) and an ``xgboost``
entry with MLflow's keys: ``xgb_version``, ``data``, ``model_class`` (``xgboost.core.Booster``, or a scikit-learn API class such as
``xgboost.sklearn.XGBClassifier``; absent means Booster) and ``model_format``. Loading
instantiates ``model_class`` and calls its ``load_model``. The formats are data, so
``allow_code=False`` loads them; a ``model_class`` outside the ``xgboost`` package is code.

pyfunc ``predict``:

- a ``Booster`` scores the frame as ``booster.predict(DMatrix(frame))`` does (MLflow's call):
  feature names from the columns, NaN (a Spark null) as missing. Without ``params`` it calls
  ``inplace_predict``, which gives the same numbers without copying the batch into a DMatrix.
  Columns are taken by the booster's feature names, so their order does not matter;
- a scikit-learn API model calls ``predict``; ``model_config={"predict_fn": "predict_proba"}``
  (or ``predict_fn`` in the python_function entry) picks another of :data:`PREDICT_FNS`. MLflow's
  loader has no such option: it always calls ``predict``;
- ``params`` go to that method as keyword arguments; ones it does not take are dropped with a
  warning, as MLflow does;
- categorical features (models trained with ``enable_categorical``) take pandas ``category``
  columns or plain values (the strings ``spark_udf`` hands), which become categories: xgboost
  >= 3.1 stores its training categories and re-codes input by value, so any category order
  gives xgboost's own answer, and so do unseen values (xgboost sends them down the branch of
  categories outside a split's set, which is not where missing values go). A model without
  stored categories (trained on codes) takes numbers as codes and refuses text, naming the column;
- threads: :func:`spark_models.flavors.threads.num_threads` gives ``nthread`` (Booster) or
  ``n_jobs`` (scikit-learn API), resolved on every call (inside Spark: the task's CPUs).
"""

from __future__ import annotations

import functools
import importlib
import inspect
import logging
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from spark_models.environment import providing_distribution, default_requirements
from spark_models.exceptions import (
    ArtifactNotFoundError,
    InvalidArgumentError,
    MalformedModelError,
    SchemaEnforcementError,
)
from spark_models.flavors.contract import Flavor, LoadContext
from spark_models.flavors.opening import open_model
from spark_models.flavors.saving import saved_model
from spark_models.flavors.threads import num_threads
from spark_models.flavors.trust import refusal
from spark_models.mlmodel import MLMODEL_FILE_NAME, Model

_logger = logging.getLogger(__name__)

FLAVOR_NAME = "xgboost"
MODEL_FORMATS = ("ubj", "json", "xgb")
DEFAULT_MODEL_CLASS = "xgboost.core.Booster"
PREDICT_FNS = ("predict", "predict_proba", "apply")
# What recent xgboost says about MLflow's "xgb" name, under which it writes and reads UBJSON.
_XGB_NAME_WARNINGS = r"(?s).*(Saving model in the UBJSON format as default|Unknown file format: `xgb`)"


@contextmanager
def _quiet_about_xgb_name():
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_XGB_NAME_WARNINGS, category=UserWarning)
        yield


@functools.lru_cache(maxsize=1)


def default_pip_requirements() -> list[str]:
    """spark-models and the installed xgboost distribution, pinned."""
    return default_requirements(providing_distribution("xgboost", "xgboost"))


def _requirements(xgb_model: Any) -> list[str]:
    import xgboost as xgb

    # The scikit-learn API classes refuse to be created without scikit-learn.
    return default_requirements(providing_distribution("xgboost", "xgboost"), *(["scikit-learn"] if isinstance(xgb_model, xgb.XGBModel) else []))


def _class_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__name__}"  # as MLflow writes it


def _check_savable(xgb_model: Any, model_format: str) -> None:
    import xgboost as xgb

    if not isinstance(xgb_model, (xgb.Booster, xgb.XGBModel)):
        raise InvalidArgumentError(
            f"xgb_model must be an xgboost.Booster or a scikit-learn API model (XGBClassifier ...), got {type(xgb_model).__name__}")
    if isinstance(xgb_model, xgb.XGBModel) and not xgb_model.__sklearn_is_fitted__():
        raise InvalidArgumentError(f"This {type(xgb_model).__name__} is not fitted: call fit() before saving it")
    if model_format not in MODEL_FORMATS:
        raise InvalidArgumentError(f"Unknown model_format {model_format!r}; use one of {MODEL_FORMATS}")


def save_model(
    xgb_model: Any,
    path: str | os.PathLike,
    conda_env: Any = None,
    code_paths: Sequence[str | os.PathLike] | None = None,
    mlflow_model: Model | None = None,
    signature: Any = None,
    input_example: Any = None,
    pip_requirements: Any = None,
    extra_pip_requirements: Any = None,
    model_format: str = "ubj",
    metadata: dict[str, Any] | None = None,
    **kwargs: Any,
) -> Model:
    """Save an XGBoost ``Booster`` or scikit-learn API model at ``path`` in MLflow's layout.

    ``kwargs`` go to the model's ``save_model``.
    """
    import xgboost as xgb

    _check_savable(xgb_model, model_format)
    data_file = f"model.{model_format}"
    with saved_model(path, default_pip=_requirements(xgb_model), mlflow_model=mlflow_model, code_paths=code_paths,
                     signature=signature, input_example=input_example, conda_env=conda_env,
                     pip_requirements=pip_requirements, extra_pip_requirements=extra_pip_requirements,
                     metadata=metadata) as draft:
        with _quiet_about_xgb_name():
            xgb_model.save_model(str(draft.dir / data_file), **kwargs)
        draft.add_flavor(FLAVOR_NAME, xgb_version=xgb.__version__, data=data_file,
                         model_class=_class_name(type(xgb_model)), model_format=model_format, code=draft.code)
        draft.set_pyfunc(FLAVOR.module, data=data_file, code=draft.code)
        draft.predict_for_signature = _XGBModelWrapper(xgb_model).predict
    return draft.model


def _runs_code(context: LoadContext) -> str | None:
    """The data formats run nothing; a ``model_class`` outside xgboost is imported (code)."""
    conf = context.model.flavors.get(FLAVOR_NAME)
    if conf is None:
        return None  # nothing to load: the load fails naming the missing entry
    name = conf.get("model_class") or DEFAULT_MODEL_CLASS
    if name.split(".")[0] != "xgboost":
        return f"imports its model_class {name!r}, which is not part of xgboost"
    data = str(conf.get("data") or "")
    fmt = conf.get("model_format") or data.rpartition(".")[2]
    if fmt not in MODEL_FORMATS:
        return f"reads {data!r} as format {fmt!r}, which is none of xgboost's data formats {MODEL_FORMATS}"
    return None


def _model_class(context: LoadContext, name: str) -> type:
    import xgboost as xgb

    module_name, _, attribute = name.rpartition(".")
    where = f"{context.model_dir / MLMODEL_FILE_NAME}: xgboost model_class {name!r}"
    if not module_name:
        raise MalformedModelError(f"{where} is not a qualified class name")
    cls = getattr(importlib.import_module(module_name), attribute, None)
    if not (isinstance(cls, type) and issubclass(cls, (xgb.Booster, xgb.XGBModel))):
        raise MalformedModelError(f"{where} is not an xgboost Booster or scikit-learn API model class")
    return cls


def _load_native(context: LoadContext) -> Any:
    import xgboost as xgb

    conf = context.flavor_conf(FLAVOR_NAME)
    if not context.allow_code:
        reason = _runs_code(context)
        if reason:
            raise refusal(context.model_dir, f"loading it {reason}")
    if not conf.get("data"):
        raise MalformedModelError(f"{context.model_dir / MLMODEL_FILE_NAME}: the xgboost flavor has no 'data' entry")
    path = context.path(conf["data"], "xgboost data")
    if not path.is_file():
        raise ArtifactNotFoundError(f"Model data {str(path)!r} named in {context.model_dir / MLMODEL_FILE_NAME} does not exist")
    model = _model_class(context, conf.get("model_class") or DEFAULT_MODEL_CLASS)()
    try:
        with _quiet_about_xgb_name():
            model.load_model(str(path))
    except xgb.core.XGBoostError as e:
        raise MalformedModelError(
            f"{path}: xgboost {xgb.__version__} cannot read this model (written by xgboost "
            f"{conf.get('xgb_version', 'of unknown version')}): {e}") from e
    return model


def load_model(model_uri: str | os.PathLike, dst_path: str | os.PathLike | None = None, *,
               allow_code: bool | None = None) -> Any:
    """The ``Booster`` or scikit-learn API model of a model with the xgboost flavor (``allow_code``:
    see :mod:`spark_models.flavors.trust`)."""
    context = open_model(model_uri, dst_path, allow_code=allow_code)
    code = context.flavor_conf(FLAVOR_NAME).get("code")
    if code:
        if not context.allow_code:
            raise refusal(context.model_dir, f"it ships code ({code!r}) to put on sys.path")
        from spark_models.pyfunc.loading import add_code_to_sys_path

        add_code_to_sys_path(context)
    return _load_native(context)


def _prediction_method(model: Any, predict_fn: str, is_booster: bool) -> Callable[..., Any]:
    if predict_fn not in PREDICT_FNS:
        raise InvalidArgumentError(f"predict_fn must be one of {PREDICT_FNS}, got {predict_fn!r}")
    if is_booster and predict_fn != "predict":
        raise InvalidArgumentError(
            f"predict_fn={predict_fn!r} applies to scikit-learn API models; a Booster has only predict() "
            "(which gives probabilities for binary:logistic and multi:softprob objectives)")
    method = getattr(model, predict_fn, None)
    if not callable(method):
        raise InvalidArgumentError(f"{type(model).__name__} has no {predict_fn}() method")
    return method


def _keyword_names(method: Callable[..., Any]) -> frozenset[str] | None:
    """The keywords ``method`` takes (None: any, it has ``**kwargs``)."""
    parameters = inspect.signature(method).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in parameters):
        return None
    return frozenset(p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))


def _stores_categories(booster: Any) -> bool:
    """Whether the booster re-codes categories by value (xgboost >= 3.1 stores them)."""
    import xgboost as xgb

    get = getattr(booster, "get_categories", None)
    try:
        return get is not None and not get().empty()
    except xgb.core.XGBoostError:
        return False


class _XGBModelWrapper:
    """pyfunc adapter: MLflow's ``_XGBModelWrapper`` plus predict_fn, column order, categories and threads."""

    def __init__(self, xgb_model: Any, predict_fn: str = "predict", model_config: Mapping[str, Any] | None = None):
        import xgboost as xgb

        self.xgb_model = xgb_model
        self.is_booster = isinstance(xgb_model, xgb.Booster)
        self.predict_fn = predict_fn
        self._method = _prediction_method(xgb_model, predict_fn, self.is_booster)
        self._keywords = _keyword_names(self._method)
        self._config = dict(model_config or {})
        self.threads: int | None = None  # what the last predict call ran with (None: xgboost's default)
        booster = xgb_model if self.is_booster else xgb_model.get_booster()
        self.feature_names = list(booster.feature_names or [])
        types = booster.feature_types or []
        self.categorical = [n for n, t in zip(self.feature_names, types) if t == "c"]
        self._recodes = bool(self.categorical) and _stores_categories(booster)

    def get_raw_model(self) -> Any:
        return self.xgb_model

    def _apply_threads(self) -> None:
        n = num_threads(self._config)
        if n is None or n == self.threads:
            return
        if self.is_booster:
            self.xgb_model.set_param({"nthread": n})
        else:
            self.xgb_model.set_params(n_jobs=n)
        self.threads = n

    def _kwargs(self, params: Mapping[str, Any] | None) -> dict[str, Any]:
        accepted = self._keywords
        kwargs: dict[str, Any] = {"validate_features": True} if accepted is None or "validate_features" in accepted else {}
        dropped = [k for k in (params or {}) if accepted is not None and k not in accepted]
        if dropped:
            _logger.warning("Params %s are not accepted by %s.%s(); ignoring them", sorted(dropped),
                            type(self.xgb_model).__name__, self.predict_fn)
        kwargs.update((k, v) for k, v in (params or {}).items() if k not in dropped)
        return kwargs

    def _frame(self, data: Any) -> Any:
        import pandas as pd

        if not isinstance(data, pd.DataFrame):
            return data
        names = self.feature_names
        if names and list(data.columns) != names and set(names).issubset(data.columns):
            data = data[names]
        plain = [c for c in self.categorical if c in data.columns and not isinstance(data[c].dtype, pd.CategoricalDtype)]
        if not self._recodes:  # trained on category codes: numbers are codes, as xgboost takes them
            text = [c for c in plain if not pd.api.types.is_numeric_dtype(data[c].dtype)]
            if text:
                raise SchemaEnforcementError(
                    f"Column {text[0]!r} is a categorical feature of this xgboost model but holds {data[text[0]].dtype} "
                    "values, and the model stores no categories to map them with (it was trained on category "
                    "codes, or by xgboost < 3.1): pass the codes, or a pandas category column")
            return data
        if not plain:
            return data
        data = data.copy()
        for name in plain:
            data[name] = data[name].astype("category")
        return data

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        import pandas as pd
        import xgboost as xgb

        self._apply_threads()
        kwargs = self._kwargs(params)
        frame = self._frame(data)
        if not self.is_booster:
            return self._method(frame, **kwargs)
        if not params:  # the same numbers as predict(DMatrix(frame)), without copying the batch into a DMatrix
            return self.xgb_model.inplace_predict(frame, validate_features=True)
        categorical = isinstance(frame, pd.DataFrame) and any(isinstance(t, pd.CategoricalDtype) for t in frame.dtypes)
        matrix = xgb.DMatrix(frame, enable_categorical=categorical, nthread=self.threads)
        return self.xgb_model.predict(matrix, **kwargs)


def _load_pyfunc_context(context: LoadContext) -> _XGBModelWrapper:
    predict_fn = context.model_config.get("predict_fn") or context.pyfunc_conf.get("predict_fn") or "predict"
    return _XGBModelWrapper(_load_native(context), predict_fn, context.model_config)


FLAVOR = Flavor(
    name=FLAVOR_NAME,
    save_model=save_model,
    load_model=load_model,
    load_pyfunc=_load_pyfunc_context,
    default_pip_requirements=default_pip_requirements,
    extra="xgboost",
    runs_code=_runs_code,
)
_load_pyfunc = FLAVOR.mlflow_loader()

__all__ = [
    "FLAVOR",
    "FLAVOR_NAME",
    "MODEL_FORMATS",
    "PREDICT_FNS",
    "_load_pyfunc",
    "default_pip_requirements",
    "load_model",
    "save_model",
]
