"""The bitflip command line: one table of commands, each a thin click shell (commands/*.py)
over one library function. Errors are turned into one line and an exit code in one place,
commands/common.py `handled`."""

from __future__ import annotations

import click

from . import __version__
from .commands import bench, boards, compare, data, report, train, use


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="bitflip")
def main() -> None:
    """Gradient-free training of binary and ternary networks on microcontrollers."""


for _module in (train, boards, data, compare, bench, report, use):
    for _command in _module.COMMANDS:
        main.add_command(_command)


if __name__ == "__main__":
    main()
