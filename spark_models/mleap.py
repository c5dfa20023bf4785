"""The mleap flavor (MLflow 1.x's ``mlflow.mleap``); implemented in ``spark_models.flavors.mleap``."""

from spark_models.flavors.mleap import FLAVOR_NAME, _load_pyfunc, add_to_model, load_model, save_model

__all__ = ["FLAVOR_NAME", "add_to_model", "load_model", "save_model", "_load_pyfunc"]
