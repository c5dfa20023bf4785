"""Flavors: the contract every flavor declares, the registry that finds them, the save helper.

- :class:`~spark_models.flavors.contract.Flavor` — what a flavor is (name, save/load
  functions, pyfunc loader, default requirements, MLflow module name, hooks);
  :class:`~spark_models.flavors.contract.LoadContext` — what its loaders get.
- :func:`get_flavor` / :func:`flavor_for_loader_module` — the one lookup path, by flavor name
  or by an MLmodel's ``loader_module``; third parties register through the
  ``spark_models.flavors`` entry-point group or :func:`register_flavor`.
- :func:`~spark_models.flavors.saving.saved_model` — the one way a flavor writes a model.
- :func:`~spark_models.flavors.testing.check_flavor` — the conformance suite.

README.md ("Writing a custom flavor") shows a complete flavor.
"""

from spark_models.flavors.contract import Flavor, LoadContext
from spark_models.flavors.opening import open_model
from spark_models.flavors.registry import (
    ENTRY_POINT_GROUP,
    available_flavors,
    flavor_for_loader_module,
    get_flavor,
    known_flavors,
    register_flavor,
)
from spark_models.flavors.saving import ModelDraft, saved_model

__all__ = ["ENTRY_POINT_GROUP", "Flavor", "LoadContext", "ModelDraft", "available_flavors", "flavor_for_loader_module",
           "get_flavor", "known_flavors", "open_model", "register_flavor", "saved_model"]
