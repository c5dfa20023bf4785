"""The mleap flavor: a Spark pipeline as an MLeap bundle, scored in numpy (no Spark, no JVM).

Layout as MLflow 1.x wrote it: the bundle directory at ``mleap/model``, the Spark input
schema at ``mleap/schema.json``, and an ``mleap`` flavor (``mleap_version``, ``model_data``).
Unlike MLflow, a ``python_function`` flavor is added too: pyfunc ``predict`` and
``spark_udf`` score through :mod:`mleap_bridge`'s runtime.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pandas as pd

from spark_models.environment import default_requirements
from spark_models.exceptions import InvalidArgumentError, SchemaEnforcementError
from spark_models.mlmodel import Model
from spark_models.saving import finish_model, prepare_model_dir
from spark_models.uri import resolve_model_uri

FLAVOR_NAME = "mleap"
LOADER_MODULE = "spark_models.mleap"
MODEL_DATA = "mleap/model"


def add_to_model(mlflow_model: Model, path: str | os.PathLike, spark_model: Any, sample_input: Any) -> Model:
    """Write ``spark_model`` as a bundle under ``path/mleap`` and add the ``mleap`` flavor."""
    import mleap_bridge
    from mleap_bridge.bundle import BUNDLE_VERSION

    if sample_input is None or not hasattr(sample_input, "schema"):
        raise InvalidArgumentError("sample_input must be a Spark DataFrame with the model's input columns")
    root = Path(path) / "mleap"
    root.mkdir(parents=True, exist_ok=True)
    mleap_bridge.to_bundle(spark_model, Path(path) / MODEL_DATA, sample_df=sample_input)
    (root / "schema.json").write_text(json.dumps(json.loads(sample_input.schema.json()), indent=4))
    mlflow_model.add_flavor(FLAVOR_NAME, mleap_version=BUNDLE_VERSION, model_data=MODEL_DATA)
    return mlflow_model


def save_model(spark_model: Any, path: str | os.PathLike, sample_input: Any, mlflow_model: Model | None = None,
               signature: Any = None, input_example: Any = None, conda_env: Any = None, pip_requirements: Any = None,
               extra_pip_requirements: Any = None, metadata: dict[str, Any] | None = None) -> Model:
    """Save a fitted Spark pipeline as an MLeap bundle with ``mleap`` and ``python_function`` flavors."""
    model_dir = prepare_model_dir(path)
    try:
        mlflow_model = add_to_model(mlflow_model or Model(), model_dir, spark_model, sample_input)
        import mleap_bridge

        bundle = mleap_bridge.load_bundle(model_dir / MODEL_DATA)
        finish_model(model_dir, mlflow_model, {"loader_module": LOADER_MODULE, "data": MODEL_DATA},
                     default_requirements(), signature, input_example, conda_env, pip_requirements,
                     extra_pip_requirements, metadata, predict_for_signature=BundlePyfunc(bundle, None).predict)
    except BaseException:
        shutil.rmtree(model_dir, ignore_errors=True)
        raise
    return mlflow_model


def _load_from_dir(model_dir: Path) -> Any:
    import mleap_bridge

    conf = Model.load(model_dir).get_flavor(FLAVOR_NAME)
    return mleap_bridge.load_bundle(model_dir / conf.get("model_data", MODEL_DATA))


def load_model(model_uri: str | os.PathLike, dst_path: str | os.PathLike | None = None) -> Any:
    """The numpy runtime (:class:`mleap_bridge.BundleModel`) of a model with the mleap flavor."""
    return _load_from_dir(resolve_model_uri(model_uri, dst_path))


class BundlePyfunc:
    """pyfunc adapter: output columns are the signature's output names, else ``prediction``
    (else the last column the pipeline produces); vectors become lists of floats."""

    def __init__(self, bundle: Any, signature: Any):
        self.bundle = bundle
        outputs = getattr(signature, "outputs", None)
        if outputs is not None and outputs.inputs and outputs.has_input_names():
            self.columns = [str(n) for n in outputs.input_names()]
        else:
            produced = bundle.schema["outputs"]
            self.columns = ["prediction"] if "prediction" in produced else produced[-1:]

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> pd.Series | pd.DataFrame:
        frame = data if isinstance(data, pd.DataFrame) else pd.DataFrame(data)
        out = self.bundle.transform(frame.reset_index(drop=True))
        missing = [c for c in self.columns if c not in out.columns]
        if missing:
            raise SchemaEnforcementError(f"The MLeap pipeline produced no column(s) {missing}; it produces {self.bundle.schema['outputs']}")
        result = out[self.columns].apply(lambda s: s.map(lambda v: v.tolist() if hasattr(v, "tolist") else v)
                                         if s.dtype == object else s)
        return result[self.columns[0]] if len(self.columns) == 1 else result

    def get_raw_model(self) -> Any:
        return self.bundle


def _load_pyfunc(path: str, model_config: dict[str, Any] | None = None) -> BundlePyfunc:
    """Loader entry point; ``path`` is the bundle directory (``mleap/model``)."""
    import mleap_bridge

    bundle_dir = Path(path)
    model_dir = bundle_dir.parent.parent
    signature = Model.load(model_dir).signature if (model_dir / "MLmodel").is_file() else None
    return BundlePyfunc(mleap_bridge.load_bundle(bundle_dir), signature)
