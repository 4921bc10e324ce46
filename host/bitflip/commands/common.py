"""What every command shares: the one place BitflipError becomes a line on stderr and an
exit code, the progress bar, KEY=VALUE options, and log lines."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

import click

from ..errors import BitflipError, one_line

# optional dependencies (pyproject [project.optional-dependencies]) by top-level module
EXTRAS = {"matplotlib": "plots", "sklearn": "sklearn", "unicorn": "emulator", "capstone": "emulator"}


def handled(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Run a command body: a BitflipError is one line (exit 2 for bad input, 1 for failures)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except BitflipError as e:
            click.echo(f"bitflip: error: {one_line(str(e))}", err=True)
            sys.exit(e.exit_code)
        except KeyboardInterrupt:
            click.echo("bitflip: interrupted", err=True)
            sys.exit(130)
        except ModuleNotFoundError as e:  # an optional part of bitflip that is not installed
            extra = EXTRAS.get((e.name or "").split(".")[0])
            if extra is None:
                raise
            click.echo(
                f"bitflip: error: this needs {e.name}, which is not installed: pip install 'bitflip[{extra}]'", err=True
            )
            sys.exit(1)

    return wrapper


def progress_bar(total: int) -> Any:
    from tqdm import tqdm

    return tqdm(
        total=total, unit="sample", file=sys.stderr, dynamic_ncols=True, leave=False, disable=not sys.stderr.isatty()
    )


def kv_pairs(pairs: tuple[str, ...], option: str = "--rule") -> dict[str, str]:
    """('k=v', ...) -> {k: v}."""
    out = {}
    for p in pairs:
        key, sep, value = p.partition("=")
        if not sep:
            raise click.BadParameter(f"'{p}' is not KEY=VALUE", param_hint=option)
        out[key] = value
    return out


def log(line: str) -> None:
    click.echo(line, err=True)
