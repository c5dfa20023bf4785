"""The lightgbm flavor: LightGBM models in MLflow's layout (``mlflow.lightgbm``).

A ``Booster`` is saved as LightGBM's text model ``model.lgb`` (data: it loads with
``allow_code=False``). A scikit-learn API model (``LGBMClassifier`` ...) is serialized in
``serialization_format``: ``skops`` (the default, as in MLflow outside Databricks; loads only
trusted types), ``cloudpickle`` or ``pickle`` (unpickling runs code). The ``lightgbm`` entry
has MLflow's keys: ``lgb_version``, ``data``, ``model_class`` (absent means
``lightgbm.basic.Booster``), ``serialization_format`` and ``skops_trusted_types``.

skops types trusted when loading, as in the sklearn flavor: with ``allow_code=True`` the
MLmodel's ``skops_trusted_types`` and the caller's; with ``allow_code=False`` skops' defaults
and the caller's, never the MLmodel's list. In both modes this flavor also trusts the lightgbm
types it vouches for (:data:`LIGHTGBM_SKOPS_TYPES`: the Booster, rebuilt from its text model,
and the estimator classes holding it), which MLflow writes into every such MLmodel.

pyfunc ``predict``:

- columns are taken by the booster's feature names. LightGBM takes them by position, so a frame
  with the same columns in another order would be scored wrong, silently;
- pandas category columns keep their training categories. LightGBM stores them in the model
  (``booster.pandas_categorical``, one list per categorical feature, in feature order) and
  re-maps a category column to them by value, an unseen value becoming missing. Each such
  feature is rebuilt here from whatever arrives, a category column in any order or plain values
  (the strings ``spark_udf`` hands: Spark has no category type), so every form scores as
  ``booster.predict`` does on a category column with the training categories. Values of another
  kind than the categories (numbers for string categories) are refused, naming the column: they
  would all be missing. A model that also has integer-coded categorical features cannot match
  the lists to names; it takes category columns only;
- a scikit-learn API model calls ``predict``; ``model_config={"predict_fn": "predict_proba"}``
  (or ``predict_fn`` in the python_function entry) picks another of :data:`PREDICT_FNS`;
- ``params`` go to that method as keyword arguments (MLflow's loader ignores them);
- threads: :func:`spark_models.flavors.threads.num_threads` → ``num_threads``, on every call.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from spark_models import serialization
from spark_models.environment import default_requirements
from spark_models.exceptions import (
    ArtifactNotFoundError,
    InvalidArgumentError,
    MalformedModelError,
    SchemaEnforcementError,
    UnsafeModelError,
)
from spark_models.flavors.contract import Flavor, LoadContext
from spark_models.flavors.opening import open_model
from spark_models.flavors.saving import saved_model
from spark_models.flavors.threads import num_threads
from spark_models.flavors.trust import refusal
from spark_models.mlmodel import MLMODEL_FILE_NAME, Model

_logger = logging.getLogger(__name__)

FLAVOR_NAME = "lightgbm"
BOOSTER_CLASS = "lightgbm.basic.Booster"
BOOSTER_FILE = "model.lgb"
PREDICT_FNS = ("predict", "predict_proba")
LIGHTGBM_SKOPS_TYPES = (
    "collections.OrderedDict",
    "lightgbm.basic.Booster",
    "lightgbm.sklearn.LGBMClassifier",
    "lightgbm.sklearn.LGBMRanker",
    "lightgbm.sklearn.LGBMRegressor",
)
_DATA_FILE = {serialization.SKOPS: "model.skops"}


def default_pip_requirements(include_cloudpickle: bool = False, include_skops: bool = False) -> list[str]:
    """spark-models and lightgbm (plus the serializer), pinned to the installed versions."""
    return default_requirements("lightgbm", *(["cloudpickle"] if include_cloudpickle else []),
                                *(["skops"] if include_skops else []))


def _requirements(is_booster: bool, fmt: str) -> list[str]:
    if is_booster:
        return default_pip_requirements()
    extra = {serialization.CLOUDPICKLE: ["cloudpickle"], serialization.SKOPS: ["skops"]}.get(fmt, [])
    return default_requirements("lightgbm", "scikit-learn", *extra)  # the estimators hold scikit-learn objects


def _check_savable(lgb_model: Any, fmt: str) -> None:
    import lightgbm as lgb

    if not isinstance(lgb_model, (lgb.Booster, lgb.LGBMModel)):
        raise InvalidArgumentError(
            f"lgb_model must be a lightgbm.Booster or a scikit-learn API model (LGBMClassifier ...), got {type(lgb_model).__name__}")
    if isinstance(lgb_model, lgb.LGBMModel) and not lgb_model.__sklearn_is_fitted__():
        raise InvalidArgumentError(f"This {type(lgb_model).__name__} is not fitted: call fit() before saving it")
    if fmt not in serialization.FORMATS:
        raise InvalidArgumentError(f"Unknown serialization_format {fmt!r}; use one of {serialization.FORMATS}")


def _dump_estimator(lgb_model: Any, path: Path, fmt: str, trusted: Sequence[str] | None) -> None:
    serialization.dump(lgb_model, path, fmt)
    if fmt != serialization.SKOPS:
        return
    import skops.io as sio  # importable: dump needed it

    untrusted = sorted(set(sio.get_untrusted_types(file=path)) - set(trusted or ()))
    if untrusted:
        raise UnsafeModelError(
            f"The {type(lgb_model).__name__} holds types skops does not trust: {untrusted}. If loading them is "
            "safe, pass skops_trusted_types=[...] listing them (or use serialization_format='cloudpickle')")


def save_model(
    lgb_model: Any,
    path: str | os.PathLike,
    conda_env: Any = None,
    code_paths: Sequence[str | os.PathLike] | None = None,
    mlflow_model: Model | None = None,
    signature: Any = None,
    input_example: Any = None,
    pip_requirements: Any = None,
    extra_pip_requirements: Any = None,
    metadata: dict[str, Any] | None = None,
    serialization_format: str | None = None,
    skops_trusted_types: Sequence[str] | None = None,
) -> Model:
    """Save a LightGBM ``Booster`` (as ``model.lgb``) or scikit-learn API model (in
    ``serialization_format``, default ``"skops"``) at ``path`` in MLflow's layout."""
    import lightgbm as lgb

    fmt = serialization_format or serialization.SKOPS
    _check_savable(lgb_model, fmt)
    is_booster = isinstance(lgb_model, lgb.Booster)
    data_file = BOOSTER_FILE if is_booster else _DATA_FILE.get(fmt, "model.pkl")
    if fmt == serialization.SKOPS:  # MLflow adds its lightgbm types to the list it writes
        trusted = sorted(set(LIGHTGBM_SKOPS_TYPES) | set(skops_trusted_types or ()))
    else:
        trusted = list(skops_trusted_types) if skops_trusted_types else None
    with saved_model(path, default_pip=_requirements(is_booster, fmt), mlflow_model=mlflow_model, code_paths=code_paths,
                     signature=signature, input_example=input_example, conda_env=conda_env,
                     pip_requirements=pip_requirements, extra_pip_requirements=extra_pip_requirements,
                     metadata=metadata) as draft:
        if is_booster:
            lgb_model.save_model(str(draft.dir / data_file))
        else:
            _dump_estimator(lgb_model, draft.dir / data_file, fmt, trusted)
        cls = type(lgb_model)
        draft.add_flavor(FLAVOR_NAME, lgb_version=lgb.__version__, data=data_file, model_class=f"{cls.__module__}.{cls.__name__}",
                         code=draft.code, serialization_format=fmt, skops_trusted_types=trusted)
        draft.set_pyfunc(FLAVOR.module, data=data_file, code=draft.code)
        draft.predict_for_signature = _LGBModelWrapper(lgb_model).predict
    return draft.model


def _runs_code(context: LoadContext) -> str | None:
    """A Booster's text model and skops run nothing; pickle formats do."""
    conf = context.model.flavors.get(FLAVOR_NAME)
    if conf is None or (conf.get("model_class") or BOOSTER_CLASS) == BOOSTER_CLASS:
        return None
    fmt = conf.get("serialization_format") or serialization.CLOUDPICKLE  # MLflow's default when absent
    return None if fmt == serialization.SKOPS else f"unpickles {conf.get('data')} ({fmt})"


def _load_native(context: LoadContext, trusted_types: Sequence[str] | None = None) -> Any:
    import lightgbm as lgb

    conf = context.flavor_conf(FLAVOR_NAME)
    if not context.allow_code:
        reason = _runs_code(context)
        if reason:
            raise refusal(context.model_dir, f"loading it {reason}")
    if not conf.get("data"):
        raise MalformedModelError(f"{context.model_dir / MLMODEL_FILE_NAME}: the lightgbm flavor has no 'data' entry")
    path = context.path(conf["data"], "lightgbm data")
    if not path.is_file():
        raise ArtifactNotFoundError(f"Model data {str(path)!r} named in {context.model_dir / MLMODEL_FILE_NAME} does not exist")
    if (conf.get("model_class") or BOOSTER_CLASS) == BOOSTER_CLASS:
        try:
            return lgb.Booster(model_file=str(path))
        except lgb.basic.LightGBMError as e:
            raise MalformedModelError(f"{path}: lightgbm {lgb.__version__} cannot read this model: {e}") from e
    fmt = conf.get("serialization_format") or serialization.CLOUDPICKLE
    saved = (conf.get("skops_trusted_types") or []) if context.allow_code else []
    model = serialization.load(path, fmt, [*saved, *LIGHTGBM_SKOPS_TYPES, *(trusted_types or [])])
    if not isinstance(model, (lgb.Booster, lgb.LGBMModel)):
        raise MalformedModelError(f"{path} holds a {type(model).__name__}, not a LightGBM model")
    return model


def load_model(model_uri: str | os.PathLike, dst_path: str | os.PathLike | None = None,
               skops_trusted_types: Sequence[str] | None = None, *, allow_code: bool | None = None) -> Any:
    """The ``Booster`` or scikit-learn API model of a model with the lightgbm flavor
    (``skops_trusted_types``: more types to trust; ``allow_code``: see :mod:`spark_models.flavors.trust`)."""
    context = open_model(model_uri, dst_path, allow_code=allow_code)
    code = context.flavor_conf(FLAVOR_NAME).get("code")
    if code:
        if not context.allow_code:
            raise refusal(context.model_dir, f"it ships code ({code!r}) to put on sys.path")
        from spark_models.pyfunc.loading import add_code_to_sys_path

        add_code_to_sys_path(context)
    return _load_native(context, skops_trusted_types)


def _categorical_indices(booster: Any) -> list[int] | None:
    """The indices of the categorical features, from the model's parameters (None: unknown)."""
    import lightgbm as lgb

    get = getattr(booster, "_get_loaded_param", None)  # the parameters LightGBM wrote into the model
    try:
        value = get().get("categorical_feature") if get is not None else None
    except lgb.basic.LightGBMError:
        return None
    if isinstance(value, (int, str)):
        value = [value] if isinstance(value, int) else [v for v in value.split(",") if v.strip()]
    try:
        return sorted(int(v) for v in value) if value is not None else None
    except (TypeError, ValueError):
        return None


def categorical_features(booster: Any) -> dict[str, list[Any]] | None:
    """``{feature name: training categories}`` of the pandas category columns a booster was
    trained on ({} when none); None when they cannot be matched to feature names."""
    categories = booster.pandas_categorical or []
    if not categories:
        return {}
    indices, names = _categorical_indices(booster), booster.feature_name()
    if indices is None or len(indices) != len(categories) or indices[-1] >= len(names):
        return None
    return {names[i]: list(c) for i, c in zip(indices, categories)}


def _kind(values: Sequence[Any]) -> str | None:
    """"string" or "number" when every value is one (numpy scalars count as their Python values)."""
    values = [v.item() if hasattr(v, "item") else v for v in values]
    if len(values) and all(isinstance(v, str) for v in values):
        return "string"
    if len(values) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return "number"
    return None


def _with_categories(column: Any, name: str, categories: list[Any]) -> Any:
    """``column`` as a category column with the training ``categories`` (unseen values missing)."""
    import pandas as pd

    is_category = isinstance(column.dtype, pd.CategoricalDtype)
    if is_category and list(column.cat.categories) == categories:
        return column
    present = column.cat.categories.tolist() if is_category else column.dropna().head(1000).tolist()
    expected, given = _kind(categories), _kind(present)
    if expected and given and expected != given:
        raise SchemaEnforcementError(
            f"Column {name!r} is a categorical feature whose training categories are {expected}s "
            f"({categories[:5]}{' ...' if len(categories) > 5 else ''}), but it holds {given}s ({column.dtype}); "
            "every row would be scored as missing")
    if is_category:
        return column.cat.set_categories(categories)
    return pd.Series(pd.Categorical(column, categories=categories), index=column.index, name=column.name)


class _LGBModelWrapper:
    """pyfunc adapter: MLflow's ``_LGBModelWrapper`` plus column order, categories, predict_fn,
    params and threads."""

    def __init__(self, lgb_model: Any, predict_fn: str = "predict", model_config: Mapping[str, Any] | None = None):
        import lightgbm as lgb

        self.lgb_model = lgb_model
        is_booster = isinstance(lgb_model, lgb.Booster)
        self.predict_fn = predict_fn
        self._method = _prediction_method(lgb_model, predict_fn, is_booster)
        self._config = dict(model_config or {})
        self.threads: int | None = None  # what the last predict call ran with (None: LightGBM's default)
        booster = self._booster = lgb_model if is_booster else lgb_model.booster_
        self.feature_names = list(booster.feature_name())
        self.categories = categorical_features(booster)

    def get_raw_model(self) -> Any:
        return self.lgb_model

    def _frame(self, data: Any) -> Any:
        import pandas as pd

        if not isinstance(data, pd.DataFrame):
            return data
        names = self.feature_names
        if list(data.columns) != names and set(names).issubset(data.columns):
            data = data[names]
        rebuilt = {name: _with_categories(data[name], name, cats) for name, cats in (self.categories or {}).items()
                   if name in data.columns}
        changed = {name: col for name, col in rebuilt.items() if col is not data[name]}
        return data.assign(**changed) if changed else data

    def _unmatched_categories(self, error: ValueError) -> SchemaEnforcementError:
        lists = self._booster.pandas_categorical or []
        return SchemaEnforcementError(
            f"This LightGBM model was trained on {len(lists)} pandas category column(s) (categories "
            f"{[c[:5] for c in lists]}) that it cannot match to feature names; pass exactly those columns "
            f"with dtype 'category' ({error})")

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        kwargs = dict(params or {})
        self.threads = num_threads(self._config)
        if self.threads is not None:
            kwargs["num_threads"] = self.threads
        frame = self._frame(data)
        try:
            return self._method(frame, **kwargs)
        except ValueError as e:
            if self.categories is None and "categorical_feature do not match" in str(e):
                raise self._unmatched_categories(e) from e
            raise


def _prediction_method(model: Any, predict_fn: str, is_booster: bool) -> Callable[..., Any]:
    if predict_fn not in PREDICT_FNS:
        raise InvalidArgumentError(f"predict_fn must be one of {PREDICT_FNS}, got {predict_fn!r}")
    if is_booster and predict_fn != "predict":
        raise InvalidArgumentError(
            f"predict_fn={predict_fn!r} applies to scikit-learn API models; a Booster has only predict() "
            "(which gives probabilities for binary and multiclass objectives)")
    method = getattr(model, predict_fn, None)
    if not callable(method):
        raise InvalidArgumentError(f"{type(model).__name__} has no {predict_fn}() method")
    return method


def _load_pyfunc_context(context: LoadContext) -> _LGBModelWrapper:
    predict_fn = context.model_config.get("predict_fn") or context.pyfunc_conf.get("predict_fn") or "predict"
    return _LGBModelWrapper(_load_native(context), predict_fn, context.model_config)


FLAVOR = Flavor(
    name=FLAVOR_NAME,
    save_model=save_model,
    load_model=load_model,
    load_pyfunc=_load_pyfunc_context,
    default_pip_requirements=default_pip_requirements,
    extra="lightgbm",
    runs_code=_runs_code,
)
_load_pyfunc = FLAVOR.mlflow_loader()

__all__ = [
    "FLAVOR",
    "FLAVOR_NAME",
    "LIGHTGBM_SKOPS_TYPES",
    "PREDICT_FNS",
    "_load_pyfunc",
    "categorical_features",
    "default_pip_requirements",
    "load_model",
    "save_model",
]
