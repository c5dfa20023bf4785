"""The mleap flavor: a Spark pipeline as an MLeap bundle, scored in numpy (no Spark, no JVM).

Layout as MLflow 1.x wrote it: the bundle directory at ``mleap/model``, the Spark input
schema at ``mleap/schema.json``, and an ``mleap`` flavor (``mleap_version``, ``model_data``).
Unlike MLflow, a ``python_function`` flavor is added too: pyfunc ``predict`` and
``spark_udf`` score through :mod:`mleap_bridge`'s runtime. :func:`write_bundle` is the one
writer of this flavor; the spark flavor uses it for the bundle it writes by default.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pandas as pd

from spark_models.environment import default_requirements
from spark_models.exceptions import InvalidArgumentError, SchemaEnforcementError, SchemaError
from spark_models.flavors.contract import Flavor, LoadContext, runs_no_code
from spark_models.flavors.opening import open_model
from spark_models.flavors.saving import saved_model
from spark_models.mlmodel import Model

FLAVOR_NAME = "mleap"
MODEL_DATA = "mleap/model"
SCHEMA_FILE = "mleap/schema.json"


def default_pip_requirements() -> list[str]:
    """spark-models alone: the bundle is scored by its own numpy runtime."""
    return default_requirements()


def write_bundle(model: Model, model_dir: Path, pipeline: Any, *, sample_input: Any = None,
                 spark_data_dir: Path | None = None) -> None:
    """Write ``pipeline`` as a bundle at ``mleap/model`` and add the ``mleap`` flavor to ``model``.

    ``sample_input`` (a Spark DataFrame) also records its schema in ``mleap/schema.json``;
    ``spark_data_dir`` is where Spark ML persistence saved the same pipeline (tree nodes are
    read from there instead of a temporary save).
    """
    from mleap_bridge.bundle import BUNDLE_VERSION
    from mleap_bridge.spark import to_bundle

    (model_dir / "mleap").mkdir(parents=True, exist_ok=True)
    to_bundle(pipeline, model_dir / MODEL_DATA, sample_input, spark_data_dir=spark_data_dir)
    if sample_input is not None:
        _write_schema(model_dir, json.loads(sample_input.schema.json()))
    model.add_flavor(FLAVOR_NAME, mleap_version=BUNDLE_VERSION, model_data=MODEL_DATA)


def write_schema_from_signature(model_dir: Path, signature: Any) -> None:
    """``mleap/schema.json`` from the signature's named inputs (MLflow 1.x wrote the sample
    input's Spark schema there); nothing when the inputs have no Spark form."""
    inputs = getattr(signature, "inputs", None)
    if inputs is None or not inputs.has_input_names():
        return
    try:
        schema = json.loads(inputs.to_spark().json())
    except SchemaError:
        return
    _write_schema(model_dir, schema)


def _write_schema(model_dir: Path, schema: dict) -> None:
    (model_dir / SCHEMA_FILE).write_text(json.dumps(schema, indent=4))


def _check_sample_input(sample_input: Any) -> None:
    if sample_input is None or not hasattr(sample_input, "schema"):
        raise InvalidArgumentError("sample_input must be a Spark DataFrame with the model's input columns")


def add_to_model(mlflow_model: Model, path: str | os.PathLike, spark_model: Any, sample_input: Any) -> Model:
    """MLflow's ``mlflow.mleap.add_to_model``: write the bundle under ``path/mleap`` and add the flavor."""
    _check_sample_input(sample_input)
    write_bundle(mlflow_model, Path(path), spark_model, sample_input=sample_input)
    return mlflow_model


def save_model(spark_model: Any, path: str | os.PathLike, sample_input: Any, mlflow_model: Model | None = None,
               signature: Any = None, input_example: Any = None, conda_env: Any = None, pip_requirements: Any = None,
               extra_pip_requirements: Any = None, metadata: dict[str, Any] | None = None) -> Model:
    """Save a fitted Spark pipeline as an MLeap bundle with ``mleap`` and ``python_function`` flavors."""
    import mleap_bridge

    _check_sample_input(sample_input)
    with saved_model(path, default_pip=default_pip_requirements(), mlflow_model=mlflow_model, signature=signature,
                     input_example=input_example, conda_env=conda_env, pip_requirements=pip_requirements,
                     extra_pip_requirements=extra_pip_requirements, metadata=metadata) as draft:
        write_bundle(draft.model, draft.dir, spark_model, sample_input=sample_input)
        draft.set_pyfunc(FLAVOR.module, data=MODEL_DATA)
        draft.predict_for_signature = BundlePyfunc(mleap_bridge.load_bundle(draft.dir / MODEL_DATA), None).predict
    return draft.model


def load_bundle(context: LoadContext) -> Any:
    """The numpy runtime of the model's ``mleap`` flavor."""
    import mleap_bridge

    conf = context.flavor_conf(FLAVOR_NAME)
    return mleap_bridge.load_bundle(context.path(conf.get("model_data", MODEL_DATA), "model_data"))


def load_model(model_uri: str | os.PathLike, dst_path: str | os.PathLike | None = None) -> Any:
    """The numpy runtime (:class:`mleap_bridge.BundleModel`) of a model with the mleap flavor."""
    return load_bundle(open_model(model_uri, dst_path))


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


def _load_pyfunc_context(context: LoadContext) -> BundlePyfunc:
    return BundlePyfunc(load_bundle(context), context.signature)


FLAVOR = Flavor(
    name=FLAVOR_NAME,
    save_model=save_model,
    load_model=load_model,
    load_pyfunc=_load_pyfunc_context,
    default_pip_requirements=default_pip_requirements,
    runs_code=runs_no_code,
)
_load_pyfunc = FLAVOR.mlflow_loader()

__all__ = ["FLAVOR", "FLAVOR_NAME", "MODEL_DATA", "add_to_model", "default_pip_requirements", "load_model",
           "save_model", "_load_pyfunc"]
