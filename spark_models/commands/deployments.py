"""``spark-models deployments ...``: the reference doc's deployment commands, for any installed target."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from spark_models.commands.errors import one_line_errors, verbose_option

target_option = click.option("--target", "-t", required=True,
                             help="Deployment target URI: 'local', 'local:/state/dir' or '<plugin>:/...'; "
                                  "`spark-models deployments help -t TARGET` describes one.")
name_option = click.option("--name", "name", required=True, help="Name of the deployment.")
config_option = click.option("--config", "-C", metavar="NAME=VALUE", multiple=True,
                             help="Target-specific configuration, repeatable: -C port=5001 -C workers=2.")
endpoint_option = click.option("--endpoint", default=None, help="Name of the endpoint (targets that have endpoints).")
flavor_option = click.option("--flavor", "-f", default=None, help="Flavor to deploy (default: the target's choice).")


def config_dict(pairs: tuple[str, ...]) -> dict[str, str]:
    """``("a=1", "b=x=y")`` → ``{"a": "1", "b": "x=y"}``; a pair without ``=`` or a repeated name is a usage error."""
    config: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r}: config options are NAME=VALUE", param_hint="'-C'")
        if key in config:
            raise click.BadParameter(f"{key!r} is given twice", param_hint="'-C'")
        config[key] = value
    return config


def _client(target: str) -> Any:
    from spark_models.deployments import get_deploy_client

    return get_deploy_client(target)


def _echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, default=str))


@click.group("deployments")
def deployments() -> None:
    """Deploy models to targets: the built-in 'local' target (supervised `serve` processes) and any
    plugin installed under the entry-point group 'spark_models.deployments'."""


@deployments.command("create")
@target_option
@name_option
@click.option("-m", "--model-uri", required=True, help="Model directory or URI.")
@flavor_option
@config_option
@endpoint_option
@verbose_option
@one_line_errors
def create(target: str, name: str, model_uri: str, flavor: str | None, config: tuple[str, ...],
           endpoint: str | None) -> None:
    """Deploy the model at MODEL_URI as NAME."""
    options = config_dict(config)  # a usage error before any target is contacted
    deployment = _client(target).create_deployment(name, model_uri, flavor, config=options, endpoint=endpoint)
    click.echo(f"{deployment.get('flavor', 'python_function')} deployment {deployment['name']} is created")


@deployments.command("update")
@target_option
@name_option
@click.option("-m", "--model-uri", default=None, help="The model to serve now (default: the same).")
@flavor_option
@config_option
@endpoint_option
@verbose_option
@one_line_errors
def update(target: str, name: str, model_uri: str | None, flavor: str | None, config: tuple[str, ...],
           endpoint: str | None) -> None:
    """Serve another model or configuration under NAME."""
    options = config_dict(config)
    deployment = _client(target).update_deployment(name, model_uri, flavor, config=options, endpoint=endpoint)
    click.echo(f"{deployment.get('flavor', 'python_function')} deployment {deployment['name']} is updated")


@deployments.command("delete")
@target_option
@name_option
@config_option
@endpoint_option
@verbose_option
@one_line_errors
def delete(target: str, name: str, config: tuple[str, ...], endpoint: str | None) -> None:
    """Remove deployment NAME."""
    options = config_dict(config)
    _client(target).delete_deployment(name, config=options, endpoint=endpoint)
    click.echo(f"Deployment {name} is deleted")


@deployments.command("list")
@target_option
@endpoint_option
@verbose_option
@one_line_errors
def list_(target: str, endpoint: str | None) -> None:
    """Every deployment of the target (JSON)."""
    _echo_json(_client(target).list_deployments(endpoint=endpoint))


@deployments.command("get")
@target_option
@name_option
@endpoint_option
@verbose_option
@one_line_errors
def get(target: str, name: str, endpoint: str | None) -> None:
    """The description of deployment NAME (JSON)."""
    _echo_json(_client(target).get_deployment(name, endpoint=endpoint))


@deployments.command("predict")
@target_option
@click.option("--name", "name", default=None, help="Name of the deployment (or --endpoint).")
@endpoint_option
@click.option("--input-path", "-I", required=True, help="Input: CSV, JSON (split or records) or Parquet file.")
@click.option("--output-path", "-O", default=None, help="Write the predictions JSON here (default: stdout).")
@click.option("--overwrite", is_flag=True, help="Replace an existing --output-path.")
@verbose_option
@one_line_errors
def predict(target: str, name: str | None, endpoint: str | None, input_path: str, output_path: str | None,
            overwrite: bool) -> None:
    """Score INPUT_PATH with a deployment."""
    from spark_models.commands.save_modes import replace_with, staged_output
    from spark_models.commands.tabular_io import infer_format, read_pandas

    if (name is None) == (endpoint is None):
        raise click.UsageError("Pass exactly one of --name or --endpoint")
    if output_path and Path(output_path).exists() and not overwrite:
        raise click.UsageError(f"{output_path} exists; pass --overwrite to replace it")
    frame = read_pandas(input_path, infer_format(input_path, None))
    result = _client(target).predict(name, frame, endpoint=endpoint)
    text = json.dumps(dict(result) if isinstance(result, dict) else result, default=str)
    if not output_path:
        click.echo(text)
        return
    with staged_output(output_path) as staged:
        Path(staged).write_text(text)
        replace_with(output_path, staged)


@deployments.command("help")
@target_option
@verbose_option
@one_line_errors
def help_(target: str) -> None:
    """The target's URI format and config options."""
    from spark_models.deployments import target_help

    click.echo(target_help(target))


@deployments.command("run-local")
@target_option
@name_option
@click.option("-m", "--model-uri", required=True, help="Model directory or URI.")
@flavor_option
@config_option
@verbose_option
@one_line_errors
def run_local(target: str, name: str, model_uri: str, flavor: str | None, config: tuple[str, ...]) -> None:
    """Serve the model in the foreground the way TARGET would, for testing (Ctrl-C stops it)."""
    from spark_models.deployments import run_local as run

    run(target, name, model_uri, flavor, config_dict(config))
