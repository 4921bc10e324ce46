"""The library face of the CLI: `bitflip.train(...)` and `bitflip.compare(...)` take the
options `bitflip train` / `bitflip compare` take (as keyword arguments) and return the same
summary dictionaries. Thin wrappers over bitflip.training.runner.train and
bitflip.measure.compare.run; errors are bitflip.errors exceptions (UsageError: bad input)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def train(
    dataset: str = "digits",
    board: str = "host",
    *,
    model: str | None = None,
    epochs: int = 10,
    seed: int = 0,
    out: str | Path | None = None,
    weights: str | None = None,
    encoding: str | None = None,
    port: str | None = None,
    rule: dict[str, Any] | None = None,
    eval_every: int = 1,
    limit: int | None = None,
    resume: bool = False,
    force: bool = False,
    cores: int | None = None,
    ckpt_every: int = 1000,
    val: float | None = None,
    say: Any = None,
    progress_factory: Any = None,
) -> dict[str, Any]:
    """Train on `board` ("host": the numpy reference; "sim-pico": the virtual Pico; a real
    board with `port`) and return the run's summary (summary.json of its run directory, `out`
    or a new ./runs/<dataset>-<board>-<time>: summary["run_dir"]). val: the validation fraction
    (default 0.1: the best epoch on it is the model; 0: none). say(line): per-epoch lines;
    progress_factory: a progress bar maker (the CLI's), None for none."""
    from .training.runner import TrainRequest
    from .training.runner import train as run_train

    req = TrainRequest(
        board=board,
        dataset=dataset,
        model=model,
        epochs=epochs,
        seed=seed,
        out=Path(out) if out is not None else None,
        weights=weights,
        encoding=encoding,
        port=port,
        rule=dict(rule or {}),
        eval_every=eval_every,
        resume=resume,
        force=force,
        cores=cores,
        ckpt_every=ckpt_every,
        limit=limit,
        val=val,
    )
    if progress_factory is None:
        return run_train(req, say=say)
    return run_train(req, progress_factory=progress_factory, say=say)


def compare(
    dataset: str = "digits",
    *,
    model: str | None = None,
    weights: str | None = None,
    encoding: str | None = None,
    rule: dict[str, Any] | None = None,
    epochs: int = 10,
    seed: int = 0,
    limit: int | None = None,
    batch: int = 32,
    matched: bool = False,
    only: tuple[str, ...] = (),
) -> dict[str, Any]:
    """The rule against the gradient baselines on the same bits: {settings..., "rows": [one
    dict per method: method, test_accuracy, param_updates, ...]}."""
    from .measure.compare import CompareRequest, run

    return run(
        CompareRequest(
            dataset=dataset,
            model=model,
            weights=weights,
            encoding=encoding,
            rule=dict(rule or {}),
            epochs=epochs,
            seed=seed,
            limit=limit,
            batch=batch,
            matched=matched,
            only=tuple(only),
        )
    )
