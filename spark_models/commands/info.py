"""``spark-models info -m URI``: flavors, signature, input example and environment."""

from __future__ import annotations

import json
from typing import Any

import click

from spark_models.commands.errors import one_line_errors, verbose_option


def describe(model_uri: str) -> dict[str, Any]:
    """What ``info`` prints, as a dict."""
    from spark_models.environment import read_requirements
    from spark_models.flavors.opening import open_model
    from spark_models.tracking.resolve import resolve_model_source

    source = resolve_model_source(model_uri)
    context = open_model(source.local_dir)
    local, meta = context.model_dir, context.model
    example = None
    if meta.saved_input_example_info:
        loaded = meta.load_input_example(local)
        example = loaded.head(5).to_dict(orient="records") if hasattr(loaded, "to_dict") else repr(loaded)[:500]
    return {
        "model_uri": model_uri,
        "local_path": str(local),
        "provenance": source.as_dict(),
        "flavors": {name: conf for name, conf in meta.flavors.items()},
        "signature": meta.signature.to_dict() if meta.signature is not None else None,
        "input_example": example,
        "requirements": read_requirements(local),
        "python_version": meta.flavors.get("python_function", {}).get("python_version"),
    }


def _echo_provenance(source: dict[str, str]) -> None:
    """The registered model, version, alias and run a tracking URI resolved to (nothing for paths)."""
    if source.get("registered_name"):
        alias = f" (alias {source['alias']})" if source.get("alias") else ""
        click.echo(f"Registered model: {source['registered_name']} version {source.get('version', '?')}{alias}")
    for key, label in (("model_id", "Logged model"), ("run_id", "Run"), ("artifact_uri", "Artifacts"),
                       ("tracking_uri", "Tracking server")):
        if source.get(key):
            click.echo(f"{label}: {source[key]}")


@click.command("info")
@click.option("-m", "--model-uri", required=True, help="Model directory or URI.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@verbose_option
@one_line_errors
def info(model_uri: str, as_json: bool) -> None:
    """Print a model's flavors, signature, input example and environment; for ``runs:/`` and
    ``models:/`` URIs also the registered version, alias and run they resolve to now."""
    data = describe(model_uri)
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str))
        return
    click.echo(f"Model: {data['model_uri']} ({data['local_path']})")
    _echo_provenance(data["provenance"])
    click.echo("Flavors:")
    for name, conf in data["flavors"].items():
        details = ", ".join(f"{k}={v}" for k, v in conf.items() if k not in ("env",) and v is not None)
        click.echo(f"  {name}: {details}")
    sig = data["signature"]
    click.echo("Signature:" if sig else "Signature: none")
    if sig:
        for part in ("inputs", "outputs", "params"):
            if sig.get(part):
                click.echo(f"  {part}: {sig[part]}")
    if data["input_example"] is not None:
        click.echo(f"Input example: {json.dumps(data['input_example'], default=str)}")
    click.echo(f"Python: {data['python_version'] or 'unknown'}")
    click.echo("Requirements: " + (", ".join(data["requirements"]) or "none"))
