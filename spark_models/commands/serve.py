"""``spark-models serve``: a REST scoring server (Starlette on uvicorn) for one model."""

from __future__ import annotations

import click

from spark_models.commands.errors import env_manager_option, one_line_errors, verbose_option
from spark_models.serving.app import DEFAULT_MAX_BODY_BYTES, DEFAULT_TIMEOUT, TIMEOUT_ENV
from spark_models.serving.server import DEFAULT_MAX_CONNECTIONS, MAX_CONNECTIONS_ENV


@click.command("serve")
@click.option("-m", "--model-uri", required=True, help="Model directory or URI.")
@click.option("-h", "--host", default="127.0.0.1", show_default=True, help="Interface to listen on (0.0.0.0 for all).")
@click.option("-p", "--port", default=5000, show_default=True, type=click.IntRange(0, 65535), help="Port.")
@click.option("-w", "--workers", default=1, show_default=True, type=click.IntRange(1), help="Server processes.")
@click.option("--max-body-size", default=DEFAULT_MAX_BODY_BYTES, show_default=True, type=click.IntRange(1),
              help="Largest request body accepted, in bytes (larger ones get HTTP 413).")
@click.option("--timeout", default=DEFAULT_TIMEOUT, show_default=True, type=click.FloatRange(0, min_open=True),
              envvar=TIMEOUT_ENV, show_envvar=True,
              help="Seconds a client has to send a request's headers (from connecting, or from the previous "
                   "response) and each chunk of its body; slower connections are closed (408 once the headers "
                   "are in). It does not limit how long the model takes.")
@click.option("--max-connections", default=DEFAULT_MAX_CONNECTIONS, show_default=True, type=click.IntRange(1),
              envvar=MAX_CONNECTIONS_ENV, show_envvar=True,
              help="Connections each worker serves at once, idle ones included; requests beyond get HTTP 503.")
@click.option("--allow-code/--no-allow-code", default=None,
              help="Whether the model may run its own code (pickles, code/); default: $SPARK_MODELS_ALLOW_CODE, else yes.")
@env_manager_option
@verbose_option
@one_line_errors
def serve(model_uri: str, host: str, port: int, workers: int, max_body_size: int, timeout: float,
          max_connections: int, allow_code: bool | None, env_manager: str) -> None:
    """Serve a model over HTTP: POST /invocations, GET /ping, /health, /version.

    Request formats are MLflow's: split-oriented JSON (application/json), records JSON
    (application/json; format=pandas-records), CSV (text/csv), TF-serving "instances" and
    "inputs", and the dataframe_split/dataframe_records keys of MLflow 2+.

    Bad input (unparseable, not strict JSON, not matching the signature) gets HTTP 400 naming
    the column or row; a failure of the model itself, or output without one row per input row,
    gets 500. A ``runs:/`` or ``models:/`` URI (``models:/name@champion``) is resolved once, at
    start, to one version (logged); restart the server to pick up a moved alias. Fast models are scored on the event loop; once scoring takes over 2 ms on
    average, requests go to a thread pool so /ping keeps answering.
    """
    from spark_models.commands.provenance import announce
    from spark_models.serving.server import serve as run
    from spark_models.tracking.resolve import resolve_model_source

    source = resolve_model_source(model_uri)  # once: every worker serves this version, even if an alias moves
    announce("Serving", source.as_dict())
    run(str(source.local_dir), host=host, port=port, workers=workers, max_body_bytes=max_body_size, timeout=timeout,
        max_connections=max_connections, allow_code=allow_code, env_manager=env_manager)
