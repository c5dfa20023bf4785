"""The deployment client contract: MLflow's ``BaseDeploymentClient`` method names and arguments.

A target implements the five deployment methods and ``predict``; the endpoint methods,
``predict_stream`` and ``explain`` are optional and refuse with NotSupportedError by default.
"""

from __future__ import annotations

import abc
from typing import Any, Iterator

from spark_models.exceptions import NotSupportedError


class PredictionsResponse(dict):
    """A ``predict`` answer: the server's JSON document (``{"predictions": ...}``)."""

    def get_predictions(self, predictions_format: str = "dataframe", dtype: Any = None) -> Any:
        """The predictions as a pandas DataFrame (``"dataframe"``) or a numpy array (``"ndarray"``)."""
        import numpy as np
        import pandas as pd

        values = self["predictions"]
        if predictions_format == "ndarray":
            return np.array(values, dtype=dtype)
        if predictions_format != "dataframe":
            raise NotSupportedError(f"predictions_format must be 'dataframe' or 'ndarray', got {predictions_format!r}")
        frame = pd.DataFrame(values) if values and isinstance(values[0], dict) else pd.DataFrame({"predictions": values})
        return frame.astype(dtype) if dtype is not None else frame


class BaseDeploymentClient(abc.ABC):
    """One deployment target, named by ``target_uri`` (``"local"``, ``"local:/state/dir"``, ``"myplugin:/..."``)."""

    def __init__(self, target_uri: str):
        self.target_uri = target_uri

    @abc.abstractmethod
    def create_deployment(self, name: str, model_uri: str, flavor: str | None = None, config: dict | None = None,
                          endpoint: str | None = None) -> dict:
        """Deploy ``model_uri`` as ``name``; a dict with at least ``name`` and ``flavor``."""

    @abc.abstractmethod
    def update_deployment(self, name: str, model_uri: str | None = None, flavor: str | None = None,
                          config: dict | None = None, endpoint: str | None = None) -> dict:
        """Serve another model (or configuration) under ``name``; a dict with at least ``name`` and ``flavor``."""

    @abc.abstractmethod
    def delete_deployment(self, name: str, config: dict | None = None, endpoint: str | None = None) -> None:
        """Remove deployment ``name`` (deleting one that does not exist is not an error)."""

    @abc.abstractmethod
    def list_deployments(self, endpoint: str | None = None) -> list[dict]:
        """Every deployment: a list of dicts, each with at least ``name``."""

    @abc.abstractmethod
    def get_deployment(self, name: str, endpoint: str | None = None) -> dict:
        """The description of deployment ``name``."""

    @abc.abstractmethod
    def predict(self, deployment_name: str | None = None, inputs: Any = None, endpoint: str | None = None) -> Any:
        """Score ``inputs`` (a pandas DataFrame, or a JSON-able dict) with a deployment."""

    def predict_stream(self, deployment_name: str | None = None, inputs: Any = None,
                       endpoint: str | None = None) -> Iterator[Any]:
        raise NotSupportedError(f"{type(self).__name__} does not stream predictions")

    def explain(self, deployment_name: str | None = None, df: Any = None, endpoint: str | None = None) -> Any:
        raise NotSupportedError(f"{type(self).__name__} does not explain predictions")

    def create_endpoint(self, name: str, config: dict | None = None) -> dict:
        raise NotSupportedError(f"{type(self).__name__} has no endpoints")

    def update_endpoint(self, endpoint: str, config: dict | None = None) -> dict:
        raise NotSupportedError(f"{type(self).__name__} has no endpoints")

    def delete_endpoint(self, endpoint: str) -> None:
        raise NotSupportedError(f"{type(self).__name__} has no endpoints")

    def list_endpoints(self) -> list[dict]:
        raise NotSupportedError(f"{type(self).__name__} has no endpoints")

    def get_endpoint(self, endpoint: str) -> dict:
        raise NotSupportedError(f"{type(self).__name__} has no endpoints")
