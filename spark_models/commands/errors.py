"""One clear line and a non-zero exit for a failed command; the traceback only with --verbose."""

from __future__ import annotations

import functools
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
            text = str(e).strip()
            message = text.splitlines()[0] if text else ""
            click.echo(f"Error: {type(e).__name__}: {message}".rstrip(": "), err=True)
            sys.exit(1)

    return wrapper
