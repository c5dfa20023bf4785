"""Flavors: the contract every flavor module meets, and the registry that finds them.

A flavor is a module with:

- ``FLAVOR_NAME``: the key it writes under ``flavors:`` in MLmodel;
- ``save_model(model, path, **kwargs)``: writes a model directory (MLmodel, environment
  files, the flavor's data) and adds a ``python_function`` entry pointing at itself;
- ``load_model(model_uri)``: returns the native model object;
- ``_load_pyfunc(path, model_config=None)``: returns an object with
  ``predict(model_input, params=None)``, used by :func:`spark_models.pyfunc.load_model`.

Register a third-party flavor in its ``pyproject.toml``::

    [project.entry-points."spark_models.flavors"]
    my_flavor = "my_package.my_flavor"

and check it with :func:`spark_models.flavors.testing.check_flavor`.
"""

from spark_models.flavors.registry import (
    ENTRY_POINT_GROUP,
    available_flavors,
    get_flavor_module,
    known_flavors,
    register_flavor,
)

__all__ = ["ENTRY_POINT_GROUP", "available_flavors", "get_flavor_module", "known_flavors", "register_flavor"]
