"""The scoring server: a Starlette app around one loaded pyfunc model.

Endpoints: ``POST /invocations`` (score), ``GET /ping`` and ``/health`` (200 once the model
is loaded), ``GET /version``. Bad requests get HTTP 400 (415 for an unsupported
Content-Type, 413 for a body over the limit) and model failures 500, each with a JSON body
``{"error_code": ..., "message": ...}``.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from spark_models.exceptions import InvalidArgumentError, MissingDependencyError, SchemaEnforcementError
from spark_models.serving.parsing import RequestError, parse_request
from spark_models.serving.responses import error_json, predictions_json

_logger = logging.getLogger(__name__)

DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024
MODEL_URI_ENV = "SPARK_MODELS_SERVE_MODEL_URI"
MAX_BODY_ENV = "SPARK_MODELS_SERVE_MAX_BODY_BYTES"
# Small requests are scored on the event loop: a thread hop costs more than the model
# (measured: 2.3x the throughput of a thread pool for 1-row requests, bench/serve.py). Large
# ones go to a thread so /ping keeps answering and numpy can run outside the GIL.
INLINE_BODY_BYTES = 256 * 1024
_CLIENT_ERRORS = (SchemaEnforcementError, InvalidArgumentError)


def create_app(model: Any, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES):
    """A Starlette application scoring ``model`` (a :class:`~spark_models.pyfunc.PyFuncModel`).

    >>> from spark_models.serving import create_app  # doctest: +SKIP
    >>> app = create_app(spark_models.pyfunc.load_model("my_model"))  # doctest: +SKIP
    >>> uvicorn.run(app, port=5000)  # doctest: +SKIP
    """
    starlette = _import_starlette()
    from starlette.concurrency import run_in_threadpool
    from starlette.responses import JSONResponse, PlainTextResponse, Response
    from starlette.routing import Route

    from spark_models import __version__

    signature = getattr(model, "signature", None)

    def _error(message: str, status: int, code: str) -> Response:
        return Response(error_json(message, code), status_code=status, media_type="application/json")

    async def invocations(request) -> Response:
        try:
            body = await _read_body(request, max_body_bytes)
            data, params = parse_request(body, request.headers.get("content-type"), signature)
            if len(body) <= INLINE_BODY_BYTES:
                predictions = _predict(model, data, params)
            else:
                predictions = await run_in_threadpool(_predict, model, data, params)
        except RequestError as e:
            return _error(str(e), e.status, e.error_code)
        except _CLIENT_ERRORS as e:
            return _error(str(e), 400, "BAD_REQUEST")
        except Exception as e:  # the model's own failure: logged with its traceback
            _logger.exception("Prediction failed")
            return _error(f"Model prediction failed: {type(e).__name__}: {e}", 500, "INTERNAL_ERROR")
        return Response(predictions_json(predictions), media_type="application/json")

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
    return starlette.Starlette(routes=routes)


def app_from_environment():
    """The app for ``uvicorn --factory``: the model URI and body limit come from the environment."""
    from spark_models.pyfunc import load_model

    uri = os.environ.get(MODEL_URI_ENV)
    if not uri:
        raise InvalidArgumentError(f"Set {MODEL_URI_ENV} to the model to serve")
    return create_app(load_model(uri), int(os.environ.get(MAX_BODY_ENV, DEFAULT_MAX_BODY_BYTES)))


def _predict(model: Any, data: Any, params: dict | None) -> Any:
    return model.predict(data, params=params)


async def _read_body(request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it is known to exceed ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


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
