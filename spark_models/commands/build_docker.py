"""``spark-models build-docker``: a Docker image (or its build context) that serves a model."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import click

from spark_models.commands.errors import one_line_errors, verbose_option


@click.command("build-docker")
@click.option("-m", "--model-uri", required=True, help="Model directory or URI.")
@click.option("-n", "--name", required=True, help="Image name, e.g. my-model:1.0.")
@click.option("-d", "--context-dir", default=None, type=click.Path(file_okay=False),
              help="Where to write the build context (default: ./<name>-docker).")
@click.option("--install-java/--no-install-java", default=None,
              help="Install a JRE in the image (default: only for spark-flavor models without an MLeap bundle).")
@click.option("--no-build", is_flag=True, help="Only write the context and print the docker build command.")
@verbose_option
@one_line_errors
def build_docker(model_uri: str, name: str, context_dir: str | None, install_java: bool | None, no_build: bool) -> None:
    """Write a Dockerfile and build context that serve the model on port 8080, and build it.

    With no Docker engine on this machine, the context is written and the docker build
    command printed. Run the image with: docker run -p 8080:8080 NAME
    """
    from spark_models.serving.docker import build_command, build_context, docker_engine_available

    target = Path(context_dir or re.sub(r"[^\w.-]", "-", name) + "-docker")
    command = build_command(target, name)  # validates the name before anything is written
    build_context(model_uri, target, install_java=install_java)
    click.echo(f"Wrote build context {target}")
    if no_build or not docker_engine_available():
        reason = "" if no_build else " (no Docker engine answers here)"
        click.echo(f"Build the image with{reason}:\n  {shlex.join(command)}")
        return
    subprocess.run(command, check=True)
    click.echo(f"Built {name}; run it with: docker run -p 8080:8080 {name}")
