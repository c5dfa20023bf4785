"""The scoring server: a Starlette app around one loaded pyfunc model.

Endpoints: ``POST /invocations`` (score), ``GET /ping`` and ``/health`` (200 once the model
is loaded), ``GET /version``. Bad requests get HTTP 400 (415 for an unsupported
Content-Type, 413 for a body over the limit, 408 for a body that stops arriving) and model
failures 500, each with a JSON body ``{"error_code": ..., "message": ...}``. The stages and
where each request runs (event loop or thread pool) are in :mod:`spark_models.serving.scoring`.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any, Awaitable

from spark_models.exceptions import InvalidArgumentError, MissingDependencyError
from spark_models.serving.parsing import RequestError
from spark_models.serving.responses import error_json
from spark_models.serving.scoring import INLINE_BODY_BYTES, InlinePolicy

_logger = logging.getLogger(__name__)

DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024
DEFAULT_TIMEOUT = 30.0
ENV_MANAGER_ENV = "SPARK_MODELS_SERVE_ENV_MANAGER"  # the serve command's --env-manager, for every worker
MODEL_URI_ENV = "SPARK_MODELS_SERVE_MODEL_URI"
MAX_BODY_ENV = "SPARK_MODELS_SERVE_MAX_BODY_BYTES"
TIMEOUT_ENV = "SPARK_MODELS_SERVE_TIMEOUT"
__all__ = ["DEFAULT_MAX_BODY_BYTES", "DEFAULT_TIMEOUT", "INLINE_BODY_BYTES", "create_app", "app_from_environment"]


def create_app(model: Any, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES, timeout: float = DEFAULT_TIMEOUT, *,
               inline_seconds: float | None = None):
    """A Starlette application scoring ``model`` (a :class:`~spark_models.pyfunc.PyFuncModel`).

    ``timeout`` bounds the wait for each chunk of a request body (408 after it);
    ``inline_seconds`` is the average scoring time below which small requests are scored on the
    event loop (default 2 ms).

    >>> from spark_models.serving import create_app  # doctest: +SKIP
    >>> app = create_app(spark_models.pyfunc.load_model("my_model"))  # doctest: +SKIP
    >>> uvicorn.run(app, port=5000)  # doctest: +SKIP
    """
    starlette = _import_starlette()
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import ClientDisconnect
    from starlette.responses import JSONResponse, PlainTextResponse, Response
    from starlette.routing import Route

    from spark_models import __version__

    signature = getattr(model, "signature", None)
    policy = InlinePolicy() if inline_seconds is None else InlinePolicy(threshold=inline_seconds)

    async def invocations(request) -> Response:
        try:
            body = await _read_body(request, max_body_bytes, timeout)
        except ClientDisconnect:
            _logger.debug("The client disconnected while sending its request")
            return Response(status_code=400)
        except RequestError as e:
            headers = {"Connection": "close"} if e.status == 408 else None
            return Response(error_json(str(e), e.error_code), status_code=e.status, headers=headers,
                            media_type="application/json")
        content_type = request.headers.get("content-type")
        if policy.inline(len(body)):
            outcome = policy.timed_score(model, signature, body, content_type, True)
        else:
            outcome = await run_in_threadpool(policy.timed_score, model, signature, body, content_type, False)
        return Response(outcome.body, status_code=outcome.status, media_type="application/json")

    async def ping(request) -> Response:
        return JSONResponse({"status": "ok"})

    async def version(request) -> Response:
        return PlainTextResponse(__version__)

    routes = [
        Route("/invocations", invocations, methods=["POST"]),
        Route("/ping", ping, methods=["GET"]),
        Route("/health", ping, methods=["GET"]),
        Route("/version", version, methods=["GET"]),
    ]
    app = starlette.Starlette(routes=routes)
    app.state.inline_policy = policy
    return app


def served_model(uri: str, *, allow_code: bool | None = None, env_manager: str | None = None) -> Any:
    """The model a server scores: loaded here, or (``env_manager`` uv/virtualenv/conda, default
    ``$SPARK_MODELS_SERVE_ENV_MANAGER``) by a scorer process in the model's own environment."""
    manager = env_manager or os.environ.get(ENV_MANAGER_ENV) or "local"
    if manager == "local":
        from spark_models.pyfunc import load_model

        return load_model(uri, allow_code=allow_code)
    from spark_models.envs.provision import load_env_model

    return load_env_model(uri, env_manager=manager, allow_code=allow_code)


def app_from_environment():
    """The app for ``uvicorn --factory``: the model URI, body limit and timeout come from the environment."""
    uri = os.environ.get(MODEL_URI_ENV)
    if not uri:
        raise InvalidArgumentError(f"Set {MODEL_URI_ENV} to the model to serve")
    max_body = int(os.environ.get(MAX_BODY_ENV, DEFAULT_MAX_BODY_BYTES))
    return create_app(served_model(uri), max_body, float(os.environ.get(TIMEOUT_ENV, DEFAULT_TIMEOUT)))


async def _read_body(request, limit: int, timeout: float) -> bytes:
    """The body: 413 as soon as it is known to exceed ``limit`` bytes, 408 if a chunk takes over ``timeout`` s."""
    from starlette.requests import ClientDisconnect

    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks, size = [], 0
    while True:
        message = await _within(request.receive(), timeout)
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _within(receive: Awaitable[dict], timeout: float) -> dict:
    try:
        if hasattr(asyncio, "timeout"):  # Python 3.11+: no extra task per chunk
            async with asyncio.timeout(timeout):
                return await receive
        return await asyncio.wait_for(receive, timeout)
    except asyncio.TimeoutError:
        raise RequestError(
            f"The request body stopped arriving: nothing for {timeout:g} s (the server's --timeout)",
            status=408,
            error_code="REQUEST_TIMEOUT",
        ) from None


def _too_large(limit: int) -> RequestError:
    return RequestError(
        f"The request body exceeds the server's limit of {limit} bytes; send smaller batches or raise --max-body-size",
        status=413,
        error_code="REQUEST_LIMIT_EXCEEDED",
    )


def _import_starlette():
    try:
        import starlette.applications as applications
    except ImportError:
        raise MissingDependencyError(
            "The scoring server needs starlette and uvicorn: pip install 'spark-models[serve]'"
        ) from None
    return applications
