"""CLI command groups by area; each module defines click commands that cli.py registers.
Commands stay thin: parse options, call one library function, print."""
