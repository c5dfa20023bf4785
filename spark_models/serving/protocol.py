"""uvicorn's HTTP protocol with a deadline for each request's headers (against "slowloris" clients).

uvicorn closes a keep-alive connection that stays idle after a response, but a connection that
opens and sends nothing, or half a request line, or headers without their blank line, stays
open for good. :class:`RequestTimeoutProtocol` closes it when a complete request's headers
have not arrived within ``timeout`` seconds of the connection opening or of its previous
response. (The body has its own per-chunk timeout, in :mod:`spark_models.serving.app`; the
size of incomplete headers is bounded by h11 at 16 KiB.)

The timeout comes from the ``SPARK_MODELS_SERVE_TIMEOUT`` environment variable, so that
every worker process of ``--workers N`` reads the same value.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

from uvicorn.protocols.http.auto import AutoHTTPProtocol

from spark_models.serving.app import DEFAULT_TIMEOUT, TIMEOUT_ENV

_logger = logging.getLogger(__name__)


def request_timeout() -> float:
    """The configured timeout in seconds (``SPARK_MODELS_SERVE_TIMEOUT``, else the default)."""
    raw = os.environ.get(TIMEOUT_ENV, "").strip()
    return float(raw) if raw else DEFAULT_TIMEOUT


class RequestTimeoutProtocol(AutoHTTPProtocol):  # type: ignore[misc, valid-type]
    """uvicorn's protocol (h11 or httptools), closing connections that do not send a request in time."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._request_timeout = request_timeout()
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if not self._between_requests():
            self._disarm()

    def on_response_complete(self) -> None:
        self._arm()
        super().on_response_complete()
        if not self._between_requests():  # a pipelined request was already complete
            self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _between_requests(self) -> bool:
        cycle = getattr(self, "cycle", None)
        return cycle is None or cycle.response_complete

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(self._request_timeout, self._expire)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        self._deadline = None
        if self._between_requests() and not self.transport.is_closing():
            _logger.debug("Closing a connection from %s: no complete request within %g s",
                          getattr(self, "client", None), self._request_timeout)
            self.transport.close()
