"""Deploying models to targets: MLflow's ``mlflow.deployments`` API, with a real ``local`` target.

>>> from spark_models.deployments import get_deploy_client
>>> client = get_deploy_client("local")                                   # doctest: +SKIP
>>> client.create_deployment("churn", "models:/churn@champion")            # doctest: +SKIP
>>> client.predict("churn", df)                                           # doctest: +SKIP
>>> client.update_deployment("churn", "models:/churn/7")  # no failed request while it switches  # doctest: +SKIP

Targets come from :mod:`spark_models.deployments.plugins`: the built-in ``local`` and every
package registering the entry-point group ``spark_models.deployments``.
"""

from __future__ import annotations

import os
from typing import Any

from spark_models.deployments.base import BaseDeploymentClient, PredictionsResponse
from spark_models.deployments.plugins import call_hook, installed_targets, plugin_for
from spark_models.exceptions import InvalidArgumentError

__all__ = ["BaseDeploymentClient", "PredictionsResponse", "get_deploy_client", "installed_targets", "run_local",
           "target_help"]

TARGET_ENV = "SPARK_MODELS_DEPLOYMENTS_TARGET"  # the target when none is given


def _target(target_uri: str | None) -> str:
    target = target_uri or os.environ.get(TARGET_ENV)
    if not target:
        raise InvalidArgumentError(f"No deployment target: pass one (e.g. 'local') or set {TARGET_ENV}; "
                                   f"installed targets: {installed_targets()}")
    return target


def get_deploy_client(target_uri: str | None = None) -> BaseDeploymentClient:
    """The client of ``target_uri`` (``"local"``, ``"local:/state/dir"``, ``"<plugin>:/..."``; default
    ``$SPARK_MODELS_DEPLOYMENTS_TARGET``). An unknown target is an error listing the installed ones."""
    target = _target(target_uri)
    _, cls = plugin_for(target)
    return cls(target)


def run_local(target: str, name: str, model_uri: str, flavor: str | None = None, config: dict | None = None) -> Any:
    """Deploy ``model_uri`` locally for testing, the way ``target`` would run it (the plugin's ``run_local``)."""
    return call_hook(_target(target), "run_local", target, name, model_uri, flavor, config)


def target_help(target: str) -> str:
    """The target's help text: its URI format and config options (the plugin's ``target_help``)."""
    return call_hook(_target(target), "target_help")
