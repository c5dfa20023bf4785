"""``spark-models serve``: a REST scoring server (Starlette on uvicorn) for one model."""

from __future__ import annotations

import click

from spark_models.commands.errors import one_line_errors, verbose_option
from spark_models.serving.app import DEFAULT_MAX_BODY_BYTES


@click.command("serve")
@click.option("-m", "--model-uri", required=True, help="Model directory or URI.")
@click.option("-h", "--host", default="127.0.0.1", show_default=True, help="Interface to listen on (0.0.0.0 for all).")
@click.option("-p", "--port", default=5000, show_default=True, type=click.IntRange(0, 65535), help="Port.")
@click.option("-w", "--workers", default=1, show_default=True, type=click.IntRange(1), help="Server processes.")
@click.option("--max-body-size", default=DEFAULT_MAX_BODY_BYTES, show_default=True, type=click.IntRange(1),
              help="Largest request body accepted, in bytes (larger ones get HTTP 413).")
@verbose_option
@one_line_errors
def serve(model_uri: str, host: str, port: int, workers: int, max_body_size: int) -> None:
    """Serve a model over HTTP: POST /invocations, GET /ping, /health, /version.

    Request formats are MLflow's: split-oriented JSON (application/json), records JSON
    (application/json; format=pandas-records), CSV (text/csv), TF-serving "instances" and
    "inputs", and the dataframe_split/dataframe_records keys of MLflow 2+.
    """
    from spark_models.serving.server import serve as run

    run(model_uri, host=host, port=port, workers=workers, max_body_bytes=max_body_size)
