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
import shutil
from pathlib import Path
from typing import Any, Sequence

from spark_models import serialization
from spark_models.environment import default_requirements, installed_version
from spark_models.exceptions import InvalidArgumentError, MalformedModelError
from spark_models.mlmodel import Model
from spark_models.saving import copy_code_paths, finish_model, prepare_model_dir
from spark_models.uri import resolve_model_uri

_logger = logging.getLogger(__name__)

FLAVOR_NAME = "sklearn"
LOADER_MODULE = "spark_models.sklearn"
PREDICT_FNS = ("predict", "predict_proba", "predict_log_proba", "predict_joint_log_proba", "decision_function", "transform", "score")
_DATA_FILE = {serialization.SKOPS: "model.skops"}


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
    model_dir = prepare_model_dir(path)
    try:
        data_file = _DATA_FILE.get(serialization_format, "model.pkl")
        serialization.dump(sk_model, model_dir / data_file, serialization_format)
        mlflow_model = mlflow_model or Model()
        code = copy_code_paths(code_paths, model_dir)
        mlflow_model.add_flavor(
            FLAVOR_NAME,
            pickled_model=data_file,
            sklearn_version=installed_version("scikit-learn"),
            serialization_format=serialization_format,
            code=code,
            skops_trusted_types=list(skops_trusted_types) if skops_trusted_types else None,
        )
        extra = {serialization.CLOUDPICKLE: ["cloudpickle"], serialization.SKOPS: ["skops"]}.get(serialization_format, [])
        pyfunc_conf = {"loader_module": LOADER_MODULE, "model_path": data_file, "predict_fn": pyfunc_predict_fn, "code": code}
        finish_model(
            model_dir, mlflow_model, pyfunc_conf, default_requirements("scikit-learn", *extra), signature,
            input_example, conda_env, pip_requirements, extra_pip_requirements, metadata,
            predict_for_signature=getattr(sk_model, pyfunc_predict_fn),
        )
    except BaseException:
        shutil.rmtree(model_dir, ignore_errors=True)
        raise
    return mlflow_model


def _load_from_dir(model_dir: Path, trusted_types: Sequence[str] | None = None) -> Any:
    conf = Model.load(model_dir).get_flavor(FLAVOR_NAME)
    if "pickled_model" not in conf:
        raise MalformedModelError(f"{model_dir / 'MLmodel'}: sklearn flavor has no 'pickled_model' entry")
    fmt = conf.get("serialization_format") or serialization.PICKLE
    trusted = [*(conf.get("skops_trusted_types") or []), *(trusted_types or [])]
    return serialization.load(model_dir / conf["pickled_model"], fmt, trusted)


def load_model(model_uri: str | os.PathLike, dst_path: str | os.PathLike | None = None, skops_trusted_types: Sequence[str] | None = None) -> Any:
    """Load the scikit-learn estimator of a model with the sklearn flavor."""
    return _load_from_dir(resolve_model_uri(model_uri, dst_path), skops_trusted_types)


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


def _load_pyfunc(path: str, model_config: dict[str, Any] | None = None) -> _SklearnModelWrapper:
    """Loader entry point; ``path`` is the model dir, or the pickle file (MLflow 1.x ``data``)."""
    p = Path(path)
    if p.is_file():  # MLflow 1.x: python_function.data points at model.pkl
        model_dir, pyfunc_conf = p.parent, {}
        if (model_dir / "MLmodel").is_file():
            pyfunc_conf = Model.load(model_dir).flavors.get("python_function", {})
        sk_model = _load_from_dir(model_dir) if (model_dir / "MLmodel").is_file() else serialization.load_pickle(p)
    else:
        pyfunc_conf = Model.load(p).get_flavor("python_function")
        sk_model = _load_from_dir(p)
    predict_fn = (model_config or {}).get("predict_fn") or pyfunc_conf.get("predict_fn") or "predict"
    return _SklearnModelWrapper(sk_model, predict_fn)
