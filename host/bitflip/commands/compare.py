"""`bitflip compare`: the learning rule against gradient baselines, one table."""

from __future__ import annotations

import json

import click

from .common import handled


@click.command()
@click.option("--dataset", default="digits", show_default=True, help="digits, mnist, fashion or a file")
@click.option(
    "--model",
    default=None,
    help="the rule's model, e.g. 256-10x16 (default per dataset); "
    "baselines use its hidden widths and a plain CLASSES-way output",
)
@click.option(
    "--weights",
    default=None,
    type=click.Choice(["binary", "binary2", "ternary"]),
    help="the rule's weights (default per dataset)",
)
@click.option(
    "--encoding",
    default=None,
    help="[deskew+][crop:C+][pool:F+]thermo:K, thermo:t1,t2,... or threshold:T (default per dataset)",
)
@click.option("--rule", multiple=True, metavar="KEY=VALUE", help="override a rule hyper-parameter (as for train)")
@click.option("--epochs", default=10, show_default=True, type=int, help="the same budget for every method")
@click.option("--limit", default=None, type=int, help="use the first N training samples only")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--batch", default=32, show_default=True, type=int, help="mini-batch size of the baselines")
@click.option(
    "--matched",
    is_flag=True,
    help="also run baselines with as many weights as the rule: a one-hidden-layer MLP and "
    "(with several prototypes per class) nets of the rule's own shape, class score = max of its units",
)
@click.option(
    "--only",
    default="",
    help="comma-separated methods to run: rule, mlp-sgd, ste, logreg; mlp-adam when the model "
    "has hidden layers; mlp-sgd-matched, ste-matched, mlp-sgd-shape, ste-shape with --matched",
)
@click.option("--json", "as_json", is_flag=True, help="print one JSON object")
@handled
def compare(
    dataset: str,
    model: str | None,
    weights: str | None,
    encoding: str | None,
    rule: tuple[str, ...],
    epochs: int,
    limit: int | None,
    seed: int,
    batch: int,
    matched: bool,
    only: str,
    as_json: bool,
) -> None:
    """Compare the learning rule with gradient baselines on the same bits and epochs."""
    from ..measure.compare import CompareRequest, markdown, plan, run, total_work
    from .common import kv_pairs, progress_bar

    req = CompareRequest(
        dataset=dataset,
        model=model,
        weights=weights,
        encoding=encoding,
        rule=kv_pairs(rule),
        epochs=epochs,
        seed=seed,
        limit=limit,
        batch=batch,
        matched=matched,
        only=tuple(m.strip() for m in only.split(",") if m.strip()),
    )
    p = plan(req)
    bar = progress_bar(total_work(p, req))
    try:
        result = run(req, bar.update, p)
    finally:
        bar.close()
    if as_json:
        click.echo(json.dumps(result, sort_keys=True))
        return
    click.echo(
        f"{result['dataset']} ({result['n_train']} train / {result['n_test']} test, {result['encoding']}), "
        f"rule model {result['model']} {result['weights']}, {result['epochs']} epochs, seed {result['seed']}, "
        f"baseline batch {result['batch']}"
    )
    click.echo(markdown(result))


COMMANDS = [compare]
