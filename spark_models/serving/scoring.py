"""One ``/invocations`` request, in stages that each map their errors to one HTTP status.

1. **prepare** — parse the body and enforce the signature (input schema and params). Anything
   that goes wrong here is the client's data: HTTP 400 (or the :class:`RequestError`'s own
   status, e.g. 415), with a message naming the column and row where it can.
2. **run** — the model's ``predict``. Anything it raises is the model's failure: HTTP 500.
3. **check** — the output must have one row per input row (a 500 naming both counts) and comes
   back in the input's row order (:mod:`spark_models.pyfunc.outputs`); then it is encoded.

:class:`InlinePolicy` decides where a request runs: on the event loop (a thread hop costs more
than a fast model) or in the thread pool (a slow model must not hold up ``/ping``).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from spark_models.exceptions import InvalidArgumentError, SchemaEnforcementError, describe
from spark_models.pyfunc.outputs import align_output, check_row_count, row_count
from spark_models.serving.parsing import RequestError, parse_request
from spark_models.serving.responses import error_json, predictions_json

_logger = logging.getLogger(__name__)

# Bodies above this are always scored in the thread pool (parsing them alone takes a while).
INLINE_BODY_BYTES = 256 * 1024
# A request is scored on the event loop only while scoring small requests takes less than this
# on average (an exponential moving average of the time parse + predict + encode took).
INLINE_SECONDS = 0.002


@dataclass
class Outcome:
    """What to answer: the HTTP status and the JSON body."""

    status: int
    body: bytes
    ran_model: bool = False

    @classmethod
    def error(cls, message: str, status: int, code: str, ran_model: bool = False) -> "Outcome":
        return cls(status, error_json(message, code), ran_model)


def score(model: Any, signature: Any, body: bytes, content_type: str | None) -> Outcome:
    """Prepare, run, check and encode one request; never raises for a bad request or a bad model."""
    try:
        data, params = prepare(body, content_type, signature, model)
    except RequestError as e:
        return Outcome.error(str(e), e.status, e.error_code)
    try:
        output = _run(model, data, params)
    except Exception as e:  # the model's own failure: logged with its traceback
        _logger.exception("Prediction failed")
        return Outcome.error(f"Model prediction failed: {describe(e)}", 500, "INTERNAL_ERROR", True)
    try:
        return Outcome(200, predictions_json(checked_output(output, data)), True)
    except Exception as e:  # the output breaks the contract or cannot be written as JSON
        _logger.error("The model's output was refused: %s: %s", type(e).__name__, e)
        return Outcome.error(f"Model output refused: {type(e).__name__}: {e}", 500, "INTERNAL_ERROR", True)


def _run(model: Any, data: Any, params: dict | None) -> Any:
    """The model on prepared input (a PyFuncModel does not enforce the signature a second time)."""
    run = getattr(model, "predict_prepared", None)
    return run(data, params) if run is not None else model.predict(data, params=params)


def prepare(body: bytes, content_type: str | None, signature: Any, model: Any = None) -> tuple[Any, dict | None]:
    """(model input, params), decoded and enforced; every failure is a :class:`RequestError`."""
    from spark_models.schema.enforcement import enforce_params, enforce_schema

    try:
        data, params = parse_request(body, content_type, signature)
        if model is not None and hasattr(model, "prepare_input"):
            return model.prepare_input(data, params)
        if signature is not None:
            data = enforce_schema(data, signature.inputs)
            params = enforce_params(params, signature.params)
        return data, params
    except RequestError:
        raise
    except (SchemaEnforcementError, InvalidArgumentError) as e:
        raise RequestError(str(e)) from None
    except RecursionError:
        raise RequestError("The request is nested too deeply to decode") from None
    except MemoryError:
        raise
    except Exception as e:  # still the request's data, but worth a look: logged with the traceback
        _logger.warning("Could not decode a request", exc_info=True)
        raise RequestError(f"Cannot decode the request: {type(e).__name__}: {e}") from None


def checked_output(output: Any, model_input: Any) -> Any:
    """``output`` with one row per input row (else :class:`ModelOutputError`), in the input's row order."""
    rows = row_count(model_input)
    if rows is not None:
        check_row_count(output, rows, "The model")
    return align_output(output, model_input)


@dataclass
class InlinePolicy:
    """Where to score a request: inline on the event loop only while the model is fast.

    The average (an exponential moving average of small requests' scoring time) starts unknown,
    so the first requests go to the thread pool; a slow model then never runs inline, and
    ``/ping`` keeps answering while it works. Times measured in the thread pool include waiting
    for the GIL behind other requests, so a fast model can look slow there under load: while the
    average is below ``probe_below``, one request per ``probe_every`` seconds runs inline to
    measure it cleanly, and a fast inline run resets the average.
    """

    threshold: float = INLINE_SECONDS
    probe_below: float = 0.025
    probe_every: float = 1.0
    alpha: float = 0.2
    average: float | None = None
    _last_probe: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def inline(self, body_bytes: int) -> bool:
        """Whether to score a request with a body of ``body_bytes`` on the event loop."""
        average = self.average
        if body_bytes > INLINE_BODY_BYTES or average is None:
            return False
        if average < self.threshold:
            return True
        now = time.monotonic()
        if average < self.probe_below and now - self._last_probe >= self.probe_every:
            self._last_probe = now
            return True
        return False

    def record(self, seconds: float, inline: bool, body_bytes: int) -> None:
        """Fold in the time one small request took to score (large ones do not predict small ones)."""
        if body_bytes > INLINE_BODY_BYTES:
            return
        with self._lock:
            average = self.average
            if average is None:
                self.average = seconds
            elif inline and average >= self.threshold and seconds < self.threshold:
                self.average = seconds  # a clean measurement beats ones inflated by GIL waits
            elif inline or average >= self.threshold:
                self.average = average + self.alpha * (seconds - average)
            # else: a thread-pool time while inline scoring is on, inflated by the GIL: ignored

    def timed_score(self, model: Any, signature: Any, body: bytes, content_type: str | None,
                    inline: bool) -> Outcome:
        """:func:`score`, timed and recorded when the model ran."""
        start = time.perf_counter()
        outcome = score(model, signature, body, content_type)
        if outcome.ran_model:
            self.record(time.perf_counter() - start, inline, len(body))
        return outcome
