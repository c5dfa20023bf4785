"""``log_model`` for every flavor: save with the flavor's own ``save_model``, log with MLflow.

Logging is a training-side step and needs MLflow (``pip install mlflow``); loading and scoring
never do. The model is logged the way ``mlflow.<flavor>.log_model`` logs it, through MLflow's
``Model.log``: in MLflow 3 a LoggedModel (``models:/m-<id>``) linked to the active run (so
``runs:/<run_id>/<name>`` resolves too), in MLflow 2 the run's artifacts under ``artifact_path``.
The MLmodel written carries ``run_id``, ``artifact_path``, ``model_uuid`` and (MLflow 3)
``model_id`` exactly as MLflow's own flavors write them.

Every public flavor module gets one line: ``log_model = model_logger(FLAVOR)``.
"""

from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from spark_models.exceptions import InvalidArgumentError, MissingDependencyError, NotSupportedError
from spark_models.mlmodel import Model

_logger = logging.getLogger(__name__)

DEFAULT_AWAIT_REGISTRATION_SECONDS = 300

SaveFn = Callable[[str, Model, dict[str, Any]], Model]
"""``save(path, mlflow_model, save_kwargs) -> Model``: writes the model directory at ``path``."""

# Model.log arguments of MLflow 3 that MLflow 2 does not have; refused there rather than
# silently handed to save_model.
_MLFLOW3_ONLY = ("params", "tags", "model_type", "step", "model_id", "prompts", "auth_policy")


@dataclass(frozen=True)
class LoggedModelInfo:
    """What :func:`log_model` returns (the fields of MLflow's ``ModelInfo``).

    ``model_uri`` is ``models:/m-<id>`` in MLflow 3 and ``runs:/<run_id>/<artifact_path>`` in
    MLflow 2; ``run_id`` is None when MLflow 3 logged the model outside a run.
    """

    model_uri: str
    run_id: str | None
    artifact_path: str
    model_id: str | None
    registered_model_version: int | None
    flavors: dict[str, dict[str, Any]]
    signature: Any
    utc_time_created: str | None
    model_uuid: str | None = None
    artifact_uri: str | None = None  # where MLflow stored the files (the MLmodel's artifact_path)
    saved_input_example_info: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    mlflow_version: str | None = None

    @property
    def runs_uri(self) -> str | None:
        """``runs:/<run_id>/<artifact_path>`` (None without a run)."""
        return f"runs:/{self.run_id}/{self.artifact_path}" if self.run_id else None


def _import_mlflow() -> Any:
    try:
        import mlflow
        import mlflow.models
    except ImportError as e:
        raise MissingDependencyError(
            "Logging a model needs MLflow: logging is a training-side step (loading and scoring do not "
            f"need it). Install it with `pip install mlflow` ({e})"
        ) from e
    return mlflow


def _major(version: str) -> int:
    try:
        return int(version.split(".")[0])
    except ValueError:
        return 0


class _FlavorSaver:
    """The flavor object MLflow's ``Model.log`` calls ``save_model(path=, mlflow_model=, **kw)`` on.

    It hands our save function an MLmodel carrying MLflow's run/model ids, then copies what was
    written back into MLflow's ``Model`` so ``Model.log`` sees the real flavors and signature.
    """

    def __init__(self, save: SaveFn, module_name: str):
        self._save = save
        self.__name__ = module_name
        self.saved: Model | None = None

    def save_model(self, path: str, mlflow_model: Any, **kwargs: Any) -> None:
        import mlflow.models

        kwargs.pop("validate_serving_input", None)
        fields = {k: v for k, v in mlflow_model.to_dict().items()
                  if v is not None and k not in ("flavors", "signature", "saved_input_example_info")}
        self.saved = self._save(str(path), Model(**fields), kwargs)
        written = mlflow.models.Model.load(str(path))
        mlflow_model.__dict__.update(written.__dict__)


def _model_log_kwargs(log: Callable[..., Any], name: str, version: str, mlflow_args: Mapping[str, Any]) -> dict[str, Any]:
    accepted = inspect.signature(log).parameters
    kwargs: dict[str, Any] = {}
    if _major(version) >= 3 and "name" in accepted:
        kwargs.update(artifact_path=None, name=name)
    else:
        kwargs["artifact_path"] = name
    for key, value in mlflow_args.items():
        if key in _MLFLOW3_ONLY and key not in accepted:
            if value is not None and not (key == "step" and value == 0):
                raise NotSupportedError(f"log_model({key}=...) needs MLflow 3; MLflow {version} is installed")
            continue
        if value is not None or key in ("await_registration_for",):
            kwargs[key] = value
    return kwargs


def log_saved(
    save: SaveFn,
    *,
    flavor_name: str,
    module_name: str,
    name: str | None = None,
    artifact_path: str | None = None,
    save_kwargs: Mapping[str, Any] | None = None,
    **mlflow_args: Any,
) -> LoggedModelInfo:
    """Log the model ``save`` writes with MLflow's ``Model.log``; the engine behind every log_model.

    ``mlflow_args`` are ``Model.log``'s own (registered_model_name, await_registration_for,
    metadata, run_id, params, tags, model_type, step, model_id, resources, prompts, ...).
    """
    if name is not None and artifact_path is not None and name != artifact_path:
        raise InvalidArgumentError(
            f"Pass name= (MLflow 3) or artifact_path= (MLflow 2), not both: got {name!r} and {artifact_path!r}"
        )
    name = name or artifact_path or "model"
    mlflow = _import_mlflow()
    saver = _FlavorSaver(save, module_name)
    log_fn = mlflow.models.Model.log
    kwargs = _model_log_kwargs(log_fn, name, mlflow.__version__, mlflow_args)
    if _major(mlflow.__version__) >= 3:
        kwargs["flavor_name"] = module_name
    info = log_fn(flavor=saver, **kwargs, **dict(save_kwargs or {}))
    logged = _to_info(info, saver.saved, name)
    _logger.info("Logged %s model %s (run %s, registered version %s)", flavor_name, logged.model_uri,
                 logged.run_id, logged.registered_model_version)
    return logged


def _to_info(info: Any, saved: Model | None, name: str) -> LoggedModelInfo:
    version = getattr(info, "registered_model_version", None)
    return LoggedModelInfo(
        model_uri=info.model_uri,
        run_id=info.run_id,
        artifact_path=name,
        model_id=getattr(info, "model_id", None),
        registered_model_version=int(version) if version is not None else None,
        flavors=dict(saved.flavors if saved is not None else info.flavors),
        signature=saved.signature if saved is not None else None,
        utc_time_created=info.utc_time_created,
        model_uuid=info.model_uuid,
        artifact_uri=info.artifact_path if info.artifact_path != name else None,
        saved_input_example_info=info.saved_input_example_info,
        metadata=info.metadata,
        mlflow_version=info.mlflow_version,
    )


def model_logger(flavor: Any) -> Callable[..., LoggedModelInfo]:
    """The public ``log_model`` of ``flavor`` (a :class:`~spark_models.flavors.contract.Flavor`)."""

    def _save(path: str, mlflow_model: Model, kwargs: dict[str, Any]) -> Model:
        model = kwargs.pop("__model__")
        return flavor.save_model(model, path, mlflow_model=mlflow_model, **kwargs)

    def log_model(
        model: Any,
        name: str | None = None,
        *,
        artifact_path: str | None = None,
        registered_model_name: str | None = None,
        signature: Any = None,
        input_example: Any = None,
        await_registration_for: int | None = DEFAULT_AWAIT_REGISTRATION_SECONDS,
        metadata: dict[str, Any] | None = None,
        run_id: str | None = None,
        params: dict[str, Any] | None = None,
        tags: dict[str, Any] | None = None,
        model_type: str | None = None,
        step: int = 0,
        model_id: str | None = None,
        **save_kwargs: Any,
    ) -> LoggedModelInfo:
        save_kwargs.update(__model__=model, signature=signature, input_example=input_example)
        return log_saved(
            _save, flavor_name=flavor.name, module_name=flavor.module, name=name, artifact_path=artifact_path,
            save_kwargs=save_kwargs, registered_model_name=registered_model_name,
            await_registration_for=await_registration_for, metadata=metadata, run_id=run_id, params=params,
            tags=tags, model_type=model_type, step=step, model_id=model_id,
        )

    log_model.__name__ = log_model.__qualname__ = "log_model"
    log_model.__module__ = flavor.module
    log_model.__doc__ = (
        f"Log a {flavor.name} model with MLflow (needs ``pip install mlflow``) and return its "
        ":class:`~spark_models.tracking.log.LoggedModelInfo`.\n\n"
        "``name`` (MLflow 3) or ``artifact_path`` (MLflow 2) names it; ``registered_model_name`` also "
        "registers it; other keyword arguments go to ``save_model``. Without an active run MLflow 3 logs "
        "the model on its own (no run); MLflow 2 starts a run."
    )
    return log_model
