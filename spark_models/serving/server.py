"""Running the scoring app with uvicorn, in one process or several.

Besides uvicorn's keep-alive timeout, every connection gets ``timeout`` seconds to send each
request's headers (:class:`~spark_models.serving.protocol.RequestTimeoutProtocol`) and each
chunk of its body (408 after that), and each worker answers at most ``max_connections``
connections or requests at once (HTTP 503 beyond: uvicorn's ``limit_concurrency``).
"""

from __future__ import annotations

import logging
import os

from spark_models.exceptions import InvalidArgumentError, MissingDependencyError
from spark_models.serving.app import (
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_TIMEOUT,
    ENV_MANAGER_ENV,
    MAX_BODY_ENV,
    MODEL_URI_ENV,
    TIMEOUT_ENV,
    create_app,
    served_model,
)

_logger = logging.getLogger(__name__)

DEFAULT_MAX_CONNECTIONS = 256
MAX_CONNECTIONS_ENV = "SPARK_MODELS_SERVE_MAX_CONNECTIONS"  # read by the serve command


def serve(
    model_uri: str,
    host: str = "127.0.0.1",
    port: int = 5000,
    workers: int = 1,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    timeout_keep_alive: int = 5,
    timeout: float = DEFAULT_TIMEOUT,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    *,
    allow_code: bool | None = None,
    env_manager: str = "local",
) -> None:
    """Serve ``model_uri`` on ``host:port`` until interrupted.

    The model is loaded here first, so a model that cannot load fails before the server
    starts. With ``workers > 1`` each worker process loads its own copy (uvicorn's
    multi-process mode); requests are spread across them by the operating system.
    ``timeout`` (seconds) bounds how long a client may take to send a request's headers and
    each chunk of its body; ``max_connections`` bounds concurrent connections per worker.
    ``allow_code`` is the trust mode (:mod:`spark_models.flavors.trust`), passed to every worker.
    ``env_manager`` other than ``"local"`` scores in the model's own environment: each worker keeps
    one scorer process there (:mod:`spark_models.envs`), built or found in the cache first.
    """
    from spark_models.flavors.trust import ALLOW_CODE_ENV, resolve_allow_code
    from spark_models.envs.options import check_env_manager

    check_env_manager(env_manager)
    if workers < 1:
        raise InvalidArgumentError(f"workers must be at least 1, got {workers}")
    if not timeout > 0:
        raise InvalidArgumentError(f"timeout must be a positive number of seconds, got {timeout}")
    if max_connections < 1:
        raise InvalidArgumentError(f"max_connections must be at least 1, got {max_connections}")
    uvicorn = _import_uvicorn()
    from spark_models.serving.protocol import RequestTimeoutProtocol

    allowed = resolve_allow_code(allow_code)
    model = served_model(model_uri, allow_code=allowed, env_manager=env_manager)
    os.environ[ENV_MANAGER_ENV] = env_manager
    os.environ[ALLOW_CODE_ENV] = "1" if allowed else "0"  # every worker loads in the same mode
    os.environ[TIMEOUT_ENV] = repr(float(timeout))  # read by the protocol, in every worker
    common = {
        "host": host,
        "port": port,
        "timeout_keep_alive": timeout_keep_alive,
        "log_level": "info",
        "http": RequestTimeoutProtocol,
        # uvicorn counts the connection asking too, so allow one more than the number served at once
        "limit_concurrency": max_connections + 1,
    }
    _logger.info("Serving %s on http://%s:%d with %d worker(s); timeout %g s, at most %d connections per worker",
                 model_uri, host, port, workers, timeout, max_connections)
    if workers == 1:
        uvicorn.run(create_app(model, max_body_bytes, timeout), **common)
        return
    if hasattr(model, "close"):
        model.close()
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
