"""The sklearn flavor (MLflow's ``mlflow.sklearn``); implemented in ``spark_models.flavors.sklearn``."""

from spark_models.flavors.sklearn import FLAVOR_NAME, _load_pyfunc, load_model, save_model

__all__ = ["FLAVOR_NAME", "load_model", "save_model", "_load_pyfunc"]
