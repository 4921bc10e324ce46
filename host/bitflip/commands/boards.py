"""Board commands: ports, deploy, flash, sim, memory. Thin click shells over ports.py,
build.py, deploy.py, flash.py, virtual.py and memory.py."""

from __future__ import annotations

import json
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import click

from .common import handled
from .common import log as _log


@click.command()
@click.option("--json", "as_json", is_flag=True)
@handled
def boards(as_json: bool) -> None:
    """List the boards in boards/."""
    from ..boards import all_boards

    bs = all_boards()
    if as_json:
        click.echo(json.dumps([{"name": b.name, "kind": b.kind, "title": b.title} for b in bs]))
        return
    for b in bs:
        d = b.data
        heap = f"{d['heap_bytes'] // 1024} KiB heap" if "heap_bytes" in d else ""
        arch = d.get("arch", "")
        click.echo(f"{b.name:<12} {b.kind:<8} {arch:<10} {heap:<14} {b.title}")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="one JSON object per port")
@handled
def ports(as_json: bool) -> None:
    """List serial ports and the boards they look like (by USB VID:PID)."""
    from ..link.ports import describe, list_ports, looks_like

    found = list_ports()
    if as_json:
        for p in found:
            click.echo(
                json.dumps(
                    {
                        "device": p.device,
                        "usb_id": p.usb_id,
                        "boards": looks_like(p),
                        "description": p.description,
                        "serial_number": p.serial_number,
                    }
                )
            )
        return
    if not found:
        click.echo("no serial ports found")
        return
    for p in found:
        click.echo(describe(p))


@click.command()
@click.option("--board", required=True, help="a board name (pico, pico2, esp32, esp32s3, esp32c3, sim-...)")
@click.option("--port", default=None, help="serial port, or 'auto' (default) for the single matching board")
@click.option("--dry-run", is_flag=True, help="build only; print the build folder")
@click.option("--force", is_flag=True, help="copy every file even when the board already has it")
@click.option("--build-dir", type=click.Path(path_type=Path), default=None, help="build root (default: build/)")
@handled
def deploy(board: str, port: str | None, dry_run: bool, force: bool, build_dir: Path | None) -> None:
    """Compile the firmware with mpy-cross for the board and copy it to its lib/bitflip."""
    from ..link.build import Build
    from ..link.deploy import deploy as run_deploy
    from ..paths import check_dir

    if build_dir is not None:
        check_dir(build_dir, "--build-dir")
    res = run_deploy(board, port, dry_run=dry_run, build_root=build_dir, log=_log, force=force)
    if isinstance(res, Build):
        click.echo(str(res.package))
        return
    click.echo(f"{res.board} on {res.port}: bitflip {res.device_version} (protocol {res.device_proto}) in {res.target}")


@click.command()
@click.option("--board", required=True, help="pico, pico2 (.uf2) or esp32, esp32s3, esp32c3 (.bin)")
@click.option("--firmware", required=True, type=click.Path(path_type=Path), help="MicroPython firmware file")
@click.option("--port", default=None, help="serial port for esptool (default: auto)")
@click.option("--drive", type=click.Path(path_type=Path), default=None, help="UF2 boot drive folder (default: found)")
@handled
def flash(board: str, firmware: Path, port: str | None, drive: Path | None) -> None:
    """Put a MicroPython firmware on a board (UF2 boot drive or esptool)."""
    from ..link.flash import flash as run_flash

    run_flash(board, firmware, port=port, drive=drive, log=_log)


@click.command()
@click.option("--board", default="sim-pico", show_default=True, help="a virtual board (sim-...)")
@click.option(
    "--flash",
    "flash_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="folder used as the board's flash (default: a new temp dir)",
)
@click.option("--with-sources", is_flag=True, help="start with firmware/bitflip/*.py in lib/bitflip")
@handled
def sim(board: str, flash_dir: Path | None, with_sources: bool) -> None:
    """Start a virtual board and print its port path; runs until Ctrl-C."""
    from ..boards import load
    from ..errors import UsageError
    from ..link.virtual import VirtualBoard

    b = load(board)
    if not b.is_virtual:
        raise UsageError(f"'{board}' is not a virtual board (try sim-{b.real})")
    flash_dir = flash_dir or Path(tempfile.mkdtemp(prefix=f"bitflip-{board}-"))
    vb = VirtualBoard(b, flash_dir, install=with_sources)
    vb.start()

    def _stop(*_: Any) -> None:  # `kill` stops it as cleanly as Ctrl-C
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    try:
        _log(f"{board}: MicroPython unix port, heap {b.heap_bytes} bytes, flash {flash_dir}; Ctrl-C to stop")
        click.echo(vb.port)
        sys.stdout.flush()
        while vb.alive:
            time.sleep(0.5)
        _log(f"{board}: the MicroPython process exited (a soft reset ends the unix port)")
    except KeyboardInterrupt:
        _log(f"{board}: stopped")
    finally:
        vb.stop()


@click.command()
@click.option("--board", required=True, help="a board name")
@click.option(
    "--model", default=None, help="as for train: hidden widths, then CLASSESxPROTOTYPES (default per dataset)"
)
@click.option("--dataset", default=None, help="the dataset whose encoded width is the input (default: digits)")
@click.option("--encoding", default=None, help="as for train (default per dataset)")
@click.option(
    "--inputs",
    default=None,
    type=click.IntRange(1, 1 << 20),
    help="input bits, instead of --dataset (no data loaded); classes then come from --model",
)
@click.option(
    "--weights",
    default=None,
    type=click.Choice(["binary", "binary2", "ternary"]),
    help="as for train (default per dataset)",
)
@click.option(
    "--pool",
    default=None,
    type=click.IntRange(0, 4096),
    help="the pool rule's evidence window in units (as --rule pool=M of train); 0: rule v1",
)
@click.option("--json", "as_json", is_flag=True)
@handled
def memory(
    board: str,
    model: str | None,
    dataset: str | None,
    encoding: str | None,
    inputs: int | None,
    weights: str | None,
    pool: int | None,
    as_json: bool,
) -> None:
    """Device heap a model needs on a board's genuine firmware, by part, and the largest that fits."""
    from ..boards import load
    from ..errors import UsageError
    from ..training.memory import largest_hidden, largest_prototypes, model_name, plan_memory
    from ..training.runner import model_sizes

    if inputs is not None and dataset is not None:
        raise UsageError("give --inputs or --dataset, not both")
    sizes, classes, weights, pool_rows = model_sizes(model, dataset, encoding, inputs, weights, pool)
    b = load(board)
    plan = plan_memory(sizes, weights, b, pool_rows=pool_rows, classes=classes)
    w = largest_hidden(sizes, weights, b, pool_rows=pool_rows, classes=classes)
    largest = model_name([sizes[0]] + [w] * (len(sizes) - 2) + [sizes[-1]], classes) if w else None
    if len(sizes) == 2:  # no hidden layer: grow the prototypes per class instead
        p = largest_prototypes(sizes, weights, b, classes)
        largest = model_name([sizes[0], classes * p], classes) if p else None
    name = model_name(sizes, classes)
    if as_json:
        click.echo(
            json.dumps(
                {**plan, "board": b.name, "model": name, "weights": weights, "pool": pool_rows, "largest": largest}
            )
        )
        return
    for key, value in plan.items():
        if isinstance(value, int) and key not in ("total", "heap"):
            click.echo(f"  {key:<16} {value:>9}")
    verdict = "fits" if plan["total"] <= plan["heap"] else "does NOT fit"
    rule = f", pool rule over {pool_rows}-unit windows" if pool_rows else ""
    click.echo(
        f"{name} {weights}{rule} on {b.name}: {plan['total']} of {plan['heap']} bytes, {verdict}"
        + (f"; largest that fits: {largest}" if largest else "")
    )
    click.echo(f"({plan['source']})")


COMMANDS = [boards, ports, deploy, flash, sim, memory]
