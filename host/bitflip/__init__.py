"""bitflip host: datasets, links, runs, the numpy reference trainer and the CLI."""

__version__ = "0.1.0"
