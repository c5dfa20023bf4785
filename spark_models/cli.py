"""The ``spark-models`` command line (click)."""

from __future__ import annotations

import click

from spark_models import __version__


@click.group()
@click.version_option(__version__, prog_name="spark-models")
def cli() -> None:
    """Save, inspect and score MLflow-format models with Spark."""


def _register() -> None:
    from spark_models.commands.info import info
    from spark_models.commands.predict import predict

    cli.add_command(info)
    cli.add_command(predict)


_register()


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
