"""The sklearn flavor: scikit-learn estimators in MLflow's layout.

``save_model`` writes ``model.pkl`` (cloudpickle or pickle) or ``model.skops`` and an
MLmodel with ``sklearn`` and ``python_function`` flavors. Pickle formats run code when
loaded; ``serialization_format="skops"`` is the safe path (only trusted types load).

pyfunc ``predict`` calls the estimator's ``predict``; choose another method with
``pyfunc_predict_fn="predict_proba"`` at save time, or at load time with
``spark_models.pyfunc.load_model(uri, model_config={"predict_fn": "predict_proba"})``.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Sequence

from spark_models import serialization
from spark_models.environment import default_requirements, installed_version
from spark_models.exceptions import InvalidArgumentError, MalformedModelError
from spark_models.flavors.contract import Flavor, LoadContext
from spark_models.flavors.opening import open_model
from spark_models.flavors.saving import saved_model
from spark_models.flavors.trust import refusal
from spark_models.mlmodel import Model

_logger = logging.getLogger(__name__)

FLAVOR_NAME = "sklearn"
PREDICT_FNS = ("predict", "predict_proba", "predict_log_proba", "predict_joint_log_proba", "decision_function", "transform", "score")
_DATA_FILE = {serialization.SKOPS: "model.skops"}
_FORMAT_REQUIREMENTS = {serialization.CLOUDPICKLE: ["cloudpickle"], serialization.SKOPS: ["skops"]}


def default_pip_requirements(serialization_format: str = serialization.CLOUDPICKLE) -> list[str]:
    """spark-models and scikit-learn (plus the serializer), pinned to the installed versions."""
    return default_requirements("scikit-learn", *_FORMAT_REQUIREMENTS.get(serialization_format, []))


def save_model(
    sk_model: Any,
    path: str | os.PathLike,
    conda_env: Any = None,
    code_paths: Sequence[str | os.PathLike] | None = None,
    mlflow_model: Model | None = None,
    serialization_format: str = serialization.CLOUDPICKLE,
    signature: Any = None,
    input_example: Any = None,
    pip_requirements: Any = None,
    extra_pip_requirements: Any = None,
    pyfunc_predict_fn: str = "predict",
    metadata: dict[str, Any] | None = None,
    skops_trusted_types: Sequence[str] | None = None,
) -> Model:
    """Save a scikit-learn estimator (or pipeline) as a model directory at ``path``."""
    if serialization_format not in serialization.FORMATS:
        raise InvalidArgumentError(
            f"Unknown serialization_format {serialization_format!r}; use one of {serialization.FORMATS}"
        )
    if pyfunc_predict_fn not in PREDICT_FNS:
        raise InvalidArgumentError(f"pyfunc_predict_fn must be one of {PREDICT_FNS}, got {pyfunc_predict_fn!r}")
    if not callable(getattr(sk_model, pyfunc_predict_fn, None)):
        raise InvalidArgumentError(f"{type(sk_model).__name__} has no {pyfunc_predict_fn}() method")
    data_file = _DATA_FILE.get(serialization_format, "model.pkl")
    with saved_model(path, default_pip=default_pip_requirements(serialization_format), mlflow_model=mlflow_model,
                     code_paths=code_paths, signature=signature, input_example=input_example, conda_env=conda_env,
                     pip_requirements=pip_requirements, extra_pip_requirements=extra_pip_requirements,
                     metadata=metadata) as draft:
        serialization.dump(sk_model, draft.dir / data_file, serialization_format)
        draft.add_flavor(
            FLAVOR_NAME,
            pickled_model=data_file,
            sklearn_version=installed_version("scikit-learn"),
            serialization_format=serialization_format,
            code=draft.code,
            skops_trusted_types=list(skops_trusted_types) if skops_trusted_types else None,
        )
        draft.set_pyfunc(FLAVOR.module, model_path=data_file, predict_fn=pyfunc_predict_fn, code=draft.code)
        draft.predict_for_signature = getattr(sk_model, pyfunc_predict_fn)
    return draft.model


def _load_native(context: LoadContext, trusted_types: Sequence[str] | None = None) -> Any:
    conf = context.flavor_conf(FLAVOR_NAME)
    if "pickled_model" not in conf:
        raise MalformedModelError(f"{context.model_dir / 'MLmodel'}: sklearn flavor has no 'pickled_model' entry")
    fmt = conf.get("serialization_format") or serialization.PICKLE
    if not context.allow_code:
        reason = _runs_code(context)
        if reason:
            raise refusal(context.model_dir, f"loading it {reason}")
    # The MLmodel is as untrusted as the model: with allow_code=False only the caller's types count.
    saved = (conf.get("skops_trusted_types") or []) if context.allow_code else []
    return serialization.load(context.path(conf["pickled_model"], "pickled_model"), fmt, [*saved, *(trusted_types or [])])


def load_model(model_uri: str | os.PathLike, dst_path: str | os.PathLike | None = None,
               skops_trusted_types: Sequence[str] | None = None, *, allow_code: bool | None = None) -> Any:
    """Load the scikit-learn estimator of a model with the sklearn flavor (``allow_code``: see
    :mod:`spark_models.flavors.trust`)."""
    return _load_native(open_model(model_uri, dst_path, allow_code=allow_code), skops_trusted_types)


def _runs_code(context: LoadContext) -> str | None:
    """Pickle formats run code when loaded; skops does not."""
    if FLAVOR_NAME not in context.model.flavors:
        return f"unpickles {context.pyfunc_conf.get('data', 'its data')}"
    conf = context.model.flavors[FLAVOR_NAME]
    fmt = conf.get("serialization_format") or serialization.PICKLE
    return None if fmt == serialization.SKOPS else f"unpickles {conf.get('pickled_model')} ({fmt})"


class _SklearnModelWrapper:
    """pyfunc adapter: ``predict`` calls the configured estimator method."""

    def __init__(self, sk_model: Any, predict_fn: str = "predict"):
        if not callable(getattr(sk_model, predict_fn, None)):
            raise InvalidArgumentError(f"{type(sk_model).__name__} has no {predict_fn}() method")
        self.sk_model = sk_model
        self.predict_fn = predict_fn
        self._predict = getattr(sk_model, predict_fn)

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        return self._predict(data)

    def get_raw_model(self) -> Any:
        return self.sk_model


def _load_pyfunc_context(context: LoadContext) -> _SklearnModelWrapper:
    """The pyfunc form; MLflow 1.x models without a sklearn entry name the pickle as ``data``."""
    if FLAVOR_NAME in context.model.flavors:
        sk_model = _load_native(context)
    else:
        if not context.allow_code:
            raise refusal(context.model_dir, f"loading it {_runs_code(context)}")
        sk_model = serialization.load_pickle(context.data_path)
    predict_fn = context.model_config.get("predict_fn") or context.pyfunc_conf.get("predict_fn") or "predict"
    return _SklearnModelWrapper(sk_model, predict_fn)


FLAVOR = Flavor(
    name=FLAVOR_NAME,
    save_model=save_model,
    load_model=load_model,
    load_pyfunc=_load_pyfunc_context,
    default_pip_requirements=default_pip_requirements,
    extra="sklearn",
    runs_code=_runs_code,
)
_load_pyfunc = FLAVOR.mlflow_loader()

__all__ = ["FLAVOR", "FLAVOR_NAME", "PREDICT_FNS", "default_pip_requirements", "load_model", "save_model", "_load_pyfunc"]
