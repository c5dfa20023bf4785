"""Deployment targets: target name → plugin module, built-ins plus the ``spark_models.deployments``
entry points. This registry is the lookup path: ``get_deploy_client`` asks it, and nothing else.

A plugin module defines ``target_help()``, ``run_local(target, name, model_uri, flavor=None,
config=None)`` and exactly one subclass of :class:`~spark_models.deployments.base.BaseDeploymentClient`
(the reference doc's plugin layout). A third-party package registers one in its metadata::

    [project.entry-points."spark_models.deployments"]
    my-target = "my_package.deployment_plugin"
"""

from __future__ import annotations

import importlib
import inspect
import re
from importlib import metadata
from types import ModuleType
from typing import Any

from spark_models.deployments.base import BaseDeploymentClient
from spark_models.exceptions import DeploymentError, DeploymentNotFoundError, InvalidArgumentError, MissingDependencyError

ENTRY_POINT_GROUP = "spark_models.deployments"
_REQUIRED = ("target_help", "run_local")
_NAME = re.compile(r"^[A-Za-z][\w.+-]*$")

# name -> (module, what to install when its import fails)
BUILTIN: dict[str, tuple[str, str]] = {
    "local": ("spark_models.deployments.local", "pip install 'spark-models[serve]'"),
}


def target_name(target_uri: str) -> str:
    """The target of ``target_uri``: ``"local"`` for ``local`` and ``local:/state/dir``."""
    name = str(target_uri or "").strip().split(":", 1)[0]
    if not _NAME.match(name):
        raise InvalidArgumentError(f"{target_uri!r} is not a deployment target URI: use 'target' or 'target:/suffix'")
    return name


def _entry_points() -> dict[str, metadata.EntryPoint]:
    return {ep.name: ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}


def installed_targets() -> list[str]:
    """Every target this environment can deploy to: the built-ins and the installed plugins."""
    return sorted(set(BUILTIN) | set(_entry_points()))


def _load(name: str) -> ModuleType:
    if name in BUILTIN:
        module, install = BUILTIN[name]
        try:
            return importlib.import_module(module)
        except ImportError as e:
            raise MissingDependencyError(f"The {name!r} deployment target needs {e.name}: {install}") from None
    entry = _entry_points().get(name)
    if entry is None:
        raise DeploymentNotFoundError(f"No deployment target {name!r}; installed targets: {installed_targets()} "
                                      f"(plugins register under the entry-point group {ENTRY_POINT_GROUP!r})")
    try:
        loaded = entry.load()
    except Exception as e:
        raise DeploymentError(f"The deployment plugin {name!r} ({entry.value}) failed to load: {type(e).__name__}: {e}") from e
    return loaded if isinstance(loaded, ModuleType) else importlib.import_module(loaded.__module__)


def client_class(plugin: ModuleType, name: str) -> type[BaseDeploymentClient]:
    """The plugin's one client class, after checking that the plugin has the whole interface."""
    missing = [f for f in _REQUIRED if not callable(getattr(plugin, f, None))]
    classes = [obj for _, obj in inspect.getmembers(plugin, inspect.isclass)
               if issubclass(obj, BaseDeploymentClient) and obj is not BaseDeploymentClient and not inspect.isabstract(obj)]
    if missing:
        raise DeploymentError(f"The deployment plugin {name!r} ({plugin.__name__}) lacks {missing}")
    if len(classes) != 1:
        found = [c.__name__ for c in classes]
        raise DeploymentError(f"The deployment plugin {name!r} ({plugin.__name__}) must define exactly one "
                              f"BaseDeploymentClient subclass; it has {found or 'none'}")
    return classes[0]


def plugin_for(target_uri: str) -> tuple[ModuleType, type[BaseDeploymentClient]]:
    """(plugin module, client class) for ``target_uri``."""
    name = target_name(target_uri)
    plugin = _load(name)
    return plugin, client_class(plugin, name)


def call_hook(target_uri: str, hook: str, *args: Any, **kwargs: Any) -> Any:
    """Run the plugin's module-level ``target_help`` or ``run_local``."""
    plugin, _ = plugin_for(target_uri)
    return getattr(plugin, hook)(*args, **kwargs)
