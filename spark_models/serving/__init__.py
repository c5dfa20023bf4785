"""REST scoring of pyfunc models (``spark-models serve``), in MLflow's request formats.

``create_app(model)`` builds the Starlette app; ``serve(model_uri, ...)`` runs it with uvicorn.
Needs the ``serve`` extra: ``pip install 'spark-models[serve]'``.
"""

from spark_models.serving.app import create_app
from spark_models.serving.server import serve

__all__ = ["create_app", "serve"]
