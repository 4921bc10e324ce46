"""The bitflip command line: one table of commands, each a thin click shell (commands/*.py)
over one library function. Errors are turned into one line and an exit code in one place:
commands/common.py `handled` for the commands' own errors, `Main.main` below for click's
(unknown option, a value that is not a number, a missing argument)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import click

from . import __version__
from .commands import bench, boards, compare, data, report, train, use
from .errors import one_line


def click_error_line(e: click.ClickException) -> str:
    """click's error as one line: the message, then where the help is."""
    msg = " ".join(e.format_message().split())
    ctx = getattr(e, "ctx", None)
    if isinstance(e, click.UsageError) and ctx is not None:
        msg += f" (see `{ctx.command_path} --help`)"
    return f"bitflip: error: {one_line(msg)}"


class Main(click.Group):
    """The top-level group: click's usage errors come out as one `bitflip: error: ...` line
    with exit code 2, not click's Usage/Try/Error block."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        try:
            rv = super().main(args, prog_name or "bitflip", complete_var, standalone_mode=False, **extra)
        except click.exceptions.NoArgsIsHelpError as e:  # bare `bitflip data`: the help, as click shows it
            e.show()
            sys.exit(e.exit_code)
        except click.ClickException as e:
            click.echo(click_error_line(e), err=True)
            sys.exit(2 if isinstance(e, click.UsageError) else e.exit_code)
        except click.exceptions.Abort:  # Ctrl-C in a prompt
            click.echo("bitflip: interrupted", err=True)
            sys.exit(130)
        if not standalone_mode:
            return rv
        sys.exit(rv if isinstance(rv, int) else 0)


@click.group(cls=Main, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="bitflip")
def main() -> None:
    """Gradient-free training of binary and ternary networks on microcontrollers."""


for _module in (train, boards, data, compare, bench, report, use):
    for _command in _module.COMMANDS:
        main.add_command(_command)


if __name__ == "__main__":
    main()
