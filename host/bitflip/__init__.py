"""bitflip host: datasets, links, runs, the numpy reference trainer and the CLI.

Library entry points (imported on first use, so `import bitflip` stays cheap):
  bitflip.train(dataset, board, ...)   -> the run summary (bitflip.api)
  bitflip.compare(dataset, ...)        -> the rule against gradient baselines (bitflip.api)
  bitflip.BitflipClassifier            -> a scikit-learn estimator (bitflip.estimator)
  bitflip.ModelFile                    -> a .bfm model file (bitflip.use.modelfile)
"""

__version__ = "0.1.0"

_LAZY = {
    "train": ("bitflip.api", "train"),
    "compare": ("bitflip.api", "compare"),
    "BitflipClassifier": ("bitflip.estimator", "BitflipClassifier"),
    "ModelFile": ("bitflip.use.modelfile", "ModelFile"),
}
__all__ = ["BitflipClassifier", "ModelFile", "__version__", "compare", "train"]


def __getattr__(name: str) -> object:  # no `typing` import: it would double the cost of `import bitflip`
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'bitflip' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
