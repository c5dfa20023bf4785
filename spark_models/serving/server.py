"""Running the scoring app with uvicorn, in one process or several."""

from __future__ import annotations

import logging
import os

from spark_models.exceptions import InvalidArgumentError, MissingDependencyError
from spark_models.serving.app import DEFAULT_MAX_BODY_BYTES, MAX_BODY_ENV, MODEL_URI_ENV, create_app

_logger = logging.getLogger(__name__)


def serve(
    model_uri: str,
    host: str = "127.0.0.1",
    port: int = 5000,
    workers: int = 1,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    timeout_keep_alive: int = 5,
) -> None:
    """Serve ``model_uri`` on ``host:port`` until interrupted.

    The model is loaded here first, so a model that cannot load fails before the server
    starts. With ``workers > 1`` each worker process loads its own copy (uvicorn's
    multi-process mode); requests are spread across them by the operating system.
    """
    from spark_models.pyfunc import load_model

    if workers < 1:
        raise InvalidArgumentError(f"workers must be at least 1, got {workers}")
    uvicorn = _import_uvicorn()
    model = load_model(model_uri)
    common = {"host": host, "port": port, "timeout_keep_alive": timeout_keep_alive, "log_level": "info"}
    _logger.info("Serving %s on http://%s:%d with %d worker(s)", model_uri, host, port, workers)
    if workers == 1:
        uvicorn.run(create_app(model, max_body_bytes), **common)
        return
    del model  # each worker loads its own
    os.environ[MODEL_URI_ENV] = model_uri
    os.environ[MAX_BODY_ENV] = str(max_body_bytes)
    uvicorn.run("spark_models.serving.app:app_from_environment", factory=True, workers=workers, **common)


def _import_uvicorn():
    try:
        import uvicorn
    except ImportError:
        raise MissingDependencyError("The scoring server needs uvicorn: pip install 'spark-models[serve]'") from None
    return uvicorn
