"""The python_function flavor: load any model as a ``PyFuncModel`` and score it.

Drop-in names for MLflow's ``mlflow.pyfunc``::

    import spark_models.pyfunc

    class AddN(spark_models.pyfunc.PythonModel):
        def __init__(self, n):
            self.n = n

        def predict(self, context, model_input):
            return model_input.apply(lambda column: column + self.n)

    spark_models.pyfunc.save_model(path="add_n_model", python_model=AddN(n=5))
    model = spark_models.pyfunc.load_model("add_n_model")
    model.predict(pandas_df)

Loading a ``python_model.pkl`` unpickles it, which runs code: load only trusted models.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Sequence

from spark_models.environment import default_requirements
from spark_models.exceptions import InvalidArgumentError
from spark_models.flavors.contract import PYFUNC as FLAVOR_NAME
from spark_models.flavors.saving import saved_model
from spark_models.mlmodel import Model
from spark_models.pyfunc.loading import load_model
from spark_models.pyfunc.model import PythonModel, PythonModelContext
from spark_models.pyfunc.model import save_model as _save_python_model
from spark_models.pyfunc.pyfunc_model import PyFuncModel
from spark_models.tracking.log import DEFAULT_AWAIT_REGISTRATION_SECONDS, LoggedModelInfo, log_saved

__all__ = [
    "FLAVOR_NAME",
    "PyFuncModel",
    "PythonModel",
    "PythonModelContext",
    "load_model",
    "save_model",
    "log_model",
    "add_to_model",
    "spark_udf",
]


def add_to_model(model: Model, loader_module: str, data: str | None = None, code: str | None = None, **kwargs: Any) -> Model:
    """Add a ``python_function`` flavor entry to an MLmodel (for custom flavors)."""
    params = {"loader_module": loader_module, **kwargs}
    if data is not None:
        params["data"] = data
    if code is not None:
        params["code"] = code
    return model.add_flavor(FLAVOR_NAME, **params)


def save_model(
    path: str | os.PathLike,
    loader_module: str | None = None,
    data_path: str | os.PathLike | None = None,
    code_paths: Sequence[str | os.PathLike] | None = None,
    conda_env: Any = None,
    mlflow_model: Model | None = None,
    python_model: PythonModel | None = None,
    artifacts: dict[str, str] | None = None,
    signature: Any = None,
    input_example: Any = None,
    pip_requirements: Any = None,
    extra_pip_requirements: Any = None,
    metadata: dict[str, Any] | None = None,
    model_config: dict[str, Any] | None = None,
) -> Model:
    """Save a python_function model, in one of two ways (as in MLflow):

    - ``python_model`` (+ ``artifacts``): a custom :class:`PythonModel`;
    - ``loader_module`` (+ ``data_path``): your own module with ``_load_pyfunc(path)``,
      shipped through ``code_paths`` or installed.
    """
    if (python_model is None) == (loader_module is None):
        raise InvalidArgumentError("Pass exactly one of python_model= or loader_module=")
    if python_model is not None:
        if data_path is not None:
            raise InvalidArgumentError("data_path goes with loader_module=, not python_model=")
        return _save_python_model(
            path, python_model, artifacts, code_paths, conda_env, pip_requirements, extra_pip_requirements,
            signature, input_example, metadata, model_config, mlflow_model,
        )
    if artifacts is not None:
        raise InvalidArgumentError("artifacts go with python_model=, not loader_module=")
    return _save_with_loader_module(
        path, loader_module, data_path, code_paths, conda_env, mlflow_model, signature, input_example,
        pip_requirements, extra_pip_requirements, metadata,
    )


def _save_with_loader_module(
    path, loader_module, data_path, code_paths, conda_env, mlflow_model, signature, input_example,
    pip_requirements, extra_pip_requirements, metadata,
) -> Model:
    with saved_model(path, default_pip=default_requirements(), mlflow_model=mlflow_model, code_paths=code_paths,
                     signature=signature, input_example=input_example, conda_env=conda_env,
                     pip_requirements=pip_requirements, extra_pip_requirements=extra_pip_requirements,
                     metadata=metadata) as draft:
        data = {}
        if data_path is not None:
            src = Path(data_path)
            if not src.exists():
                raise InvalidArgumentError(f"data_path {str(src)!r} does not exist")
            data = {"data": src.name}
            (shutil.copytree if src.is_dir() else shutil.copy2)(src, draft.dir / src.name)
        draft.set_pyfunc(loader_module, code=draft.code, **data)
    return draft.model


def log_model(
    artifact_path: str | None = None,
    loader_module: str | None = None,
    data_path: str | os.PathLike | None = None,
    code_paths: Sequence[str | os.PathLike] | None = None,
    infer_code_paths: bool = False,
    conda_env: Any = None,
    python_model: PythonModel | None = None,
    artifacts: dict[str, str] | None = None,
    registered_model_name: str | None = None,
    signature: Any = None,
    input_example: Any = None,
    await_registration_for: int | None = DEFAULT_AWAIT_REGISTRATION_SECONDS,
    pip_requirements: Any = None,
    extra_pip_requirements: Any = None,
    metadata: dict[str, Any] | None = None,
    model_config: dict[str, Any] | None = None,
    resources: Any = None,
    prompts: list[str] | None = None,
    name: str | None = None,
    params: dict[str, Any] | None = None,
    tags: dict[str, Any] | None = None,
    model_type: str | None = None,
    step: int = 0,
    model_id: str | None = None,
) -> LoggedModelInfo:
    """Log a python_function model with MLflow (MLflow's ``mlflow.pyfunc.log_model`` arguments;
    needs ``pip install mlflow``): saved as :func:`save_model` saves it, then logged under ``name``
    (MLflow 3) or ``artifact_path`` (MLflow 2), registered when ``registered_model_name`` is given."""
    if infer_code_paths:
        raise InvalidArgumentError("infer_code_paths=True is not supported: list the files in code_paths=")
    if (python_model is None) == (loader_module is None):  # before anything is logged
        raise InvalidArgumentError("Pass exactly one of python_model= or loader_module=")
    save_kwargs = dict(
        loader_module=loader_module, data_path=data_path, code_paths=code_paths, conda_env=conda_env,
        python_model=python_model, artifacts=artifacts, signature=signature, input_example=input_example,
        pip_requirements=pip_requirements, extra_pip_requirements=extra_pip_requirements, model_config=model_config,
    )

    def _save(path: str, mlflow_model: Model, kwargs: dict[str, Any]) -> Model:
        return save_model(path, mlflow_model=mlflow_model, **kwargs)

    return log_saved(
        _save, flavor_name=FLAVOR_NAME, module_name=__name__, name=name, artifact_path=artifact_path,
        save_kwargs=save_kwargs, registered_model_name=registered_model_name,
        await_registration_for=await_registration_for, metadata=metadata, resources=resources, prompts=prompts,
        params=params, tags=tags, model_type=model_type, step=step, model_id=model_id,
    )


def __getattr__(name: str) -> Any:
    if name == "spark_udf":  # lives in the udf package; imported only when asked for
        from udf import spark_udf

        return spark_udf
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
