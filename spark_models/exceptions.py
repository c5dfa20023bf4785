"""Every error spark-models raises. Catch :class:`SparkModelsError` to catch them all.

Each subclass also derives from the closest built-in exception, so code that already
catches ``FileNotFoundError`` or ``ValueError`` keeps working.
"""

from __future__ import annotations


class SparkModelsError(Exception):
    """Base class of all spark-models errors."""


def describe(error: BaseException) -> str:
    """``Type: message``, with the notes added to it (e.g. how many values were missing)."""
    notes = getattr(error, "__notes__", None) or []
    return f"{type(error).__name__}: {error}" + "".join(f" ({note})" for note in notes)


class ModelNotFoundError(SparkModelsError, FileNotFoundError):
    """A model directory, or the MLmodel file inside it, does not exist."""


class MalformedModelError(SparkModelsError, ValueError):
    """An MLmodel file (or a file it points to) exists but cannot be understood."""


class FlavorNotFoundError(SparkModelsError, LookupError):
    """The model does not have the requested flavor."""


class UnknownFlavorError(SparkModelsError, LookupError):
    """No implementation is registered for a flavor name."""


class MissingDependencyError(SparkModelsError, ImportError):
    """A package the model or the requested feature needs is not installed."""


class ArtifactNotFoundError(SparkModelsError, FileNotFoundError):
    """A file the model refers to (artifact, pickled model, code path) is missing."""


class InvalidModelUriError(SparkModelsError, ValueError):
    """A model URI cannot be resolved."""


class InvalidArgumentError(SparkModelsError, ValueError):
    """An argument to a spark-models function is invalid."""


class UnsafeModelError(SparkModelsError):
    """Loading the model would run or trust code the caller has not allowed."""


class SchemaError(SparkModelsError, ValueError):
    """A signature or schema is malformed or uses an unsupported type."""


class SchemaEnforcementError(SparkModelsError, ValueError):
    """Model input does not match the model signature."""


class ModelOutputError(SparkModelsError, ValueError):
    """The model returned output that breaks the pyfunc contract (e.g. not one row per input row)."""


class NotSupportedError(SparkModelsError, NotImplementedError):
    """The operation is not supported for this model, session or version (the message says which)."""


class TrackingServerError(SparkModelsError, ConnectionError):
    """The MLflow tracking server is down, unreachable, or answered with a server error."""


class TrackingAuthError(TrackingServerError, PermissionError):
    """The MLflow tracking server refused the credentials (HTTP 401/403)."""


class ModelEnvironmentError(SparkModelsError, RuntimeError):
    """A model's Python environment cannot be built, found, unpacked or used (the message names
    the model, the environment hash and the log)."""


class ScorerProcessError(SparkModelsError, RuntimeError):
    """The process scoring a model in its own environment failed to start, crashed or broke the protocol."""


class ScorerTimeoutError(ScorerProcessError, TimeoutError):
    """The scorer process took longer than its timeout to load the model or to score a batch."""


class DeploymentError(SparkModelsError, RuntimeError):
    """A deployment could not be created, updated, deleted or reached (the message names it and its log)."""


class DeploymentNotFoundError(DeploymentError, LookupError):
    """No deployment (or deployment target) of that name exists."""
