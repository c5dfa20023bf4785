"""The ``spark-models`` command line (click)."""

from __future__ import annotations

import click

from spark_models import __version__


@click.group()
@click.version_option(__version__, prog_name="spark-models")
def cli() -> None:
    """Save, inspect and score MLflow-format models with Spark."""


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
