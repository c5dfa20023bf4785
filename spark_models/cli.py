"""The ``spark-models`` command line (click)."""

from __future__ import annotations

import click

from spark_models import __version__


@click.group()
@click.version_option(__version__, prog_name="spark-models")
def cli() -> None:
    """Save, inspect and score MLflow-format models with Spark."""


def _register() -> None:
    from spark_models.commands.build_docker import build_docker
    from spark_models.commands.deployments import deployments
    from spark_models.commands.info import info
    from spark_models.commands.predict import predict
    from spark_models.commands.serve import serve

    for command in (predict, serve, info, build_docker, deployments):
        cli.add_command(command)


_register()


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
