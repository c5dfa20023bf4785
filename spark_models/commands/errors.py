"""One clear line and a non-zero exit for a failed command; the traceback only with --verbose."""

from __future__ import annotations

import functools
import re
import sys
from typing import Any, Callable

import click

verbose_option = click.option("-v", "--verbose", is_flag=True, help="Show tracebacks on errors.")


def one_line_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a click command body that takes ``verbose``: exceptions become ``Error: ...`` and exit 1."""

    @functools.wraps(command)
    def wrapper(*args: Any, verbose: bool = False, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except (click.exceptions.Exit, click.ClickException, KeyboardInterrupt):
            raise
        except Exception as e:
            if verbose:
                raise
            click.echo(one_line(e), err=True)
            sys.exit(1)

    return wrapper


# What the scoring worker raises (udf/worker.py), as it appears inside Spark's task error text.
_TASK_ERROR = re.compile(
    r"spark_models\.exceptions\.SparkModelsError: Model (?P<model>'[^\n]*?') (?P<what>failed|output does not convert to "
    r"[^\n]*?) on a batch of \d+ rows with columns \[[^\n]*?\]: (?P<error>[A-Za-z_][\w.]*: [^\n]*|[A-Za-z_][\w.]*)")
_JVM_REFUSAL = re.compile(r"\[USER_RAISED_EXCEPTION\] (?P<message>spark_udf: [^\n]*?)(?: SQLSTATE: \w+)?$", re.M)
_PYTHON_ERROR = re.compile(r"^(?P<error>(?:[a-z_][\w]*\.)*[A-Z]\w*(?:Error|Exception)(?:: [^\n]*)?)$", re.M)


def one_line(error: BaseException) -> str:
    """``Error: Type: message``; for a failure inside a Spark task, the model's own exception."""
    text = str(error).strip()
    if type(error).__module__.startswith(("pyspark", "py4j")):
        match = list(_TASK_ERROR.finditer(text))
        if match:
            last = match[-1]
            where = "the model" if last["what"] == "failed" else f"converting the model's output ({last['what']})"
            return f"Error: {last['error']} (raised by {where} {last['model']} in a Spark task; --verbose shows all)"
        refused = _JVM_REFUSAL.search(text)
        if refused:
            return f"Error: {refused['message'].strip()}"
        raised = [m["error"] for m in _PYTHON_ERROR.finditer(text) if not m["error"].startswith(("py4j", "org."))]
        if raised:
            return f"Error: {raised[-1]} (in a Spark task; --verbose shows all)"
    message = text.splitlines()[0] if text else ""
    return f"Error: {type(error).__name__}: {message}".rstrip(": ")


def env_manager_option(command: Callable) -> Callable:
    """``--env-manager``: score in this environment (local) or in the model's own (uv, virtualenv, conda)."""
    from spark_models.envs.options import ENV_MANAGERS

    return click.option("--env-manager", type=click.Choice(ENV_MANAGERS), default="local", show_default=True,
                        help="local: this Python environment; uv/virtualenv/conda: the model's own, built once per "
                             "machine from its python_env.yaml/requirements.txt (conda.yaml) and cached.")(command)
