"""`bitflip bench`: kernel costs (emulated armv6m), virtual-board and host samples/s, and the
estimated time and energy per MNIST training sample on RP2040 and ESP32. Thin shell over
bitflip.measure.bench."""

from __future__ import annotations

import json
from typing import Any

import click

from .common import handled


def _fmt(v: float | None, unit: str, scale: float = 1.0, digits: int = 3) -> str:
    return "-" if v is None else f"{v * scale:.{digits}f} {unit}"


def print_report(r: dict[str, Any]) -> None:
    click.echo("Kernel cost per 32-bit word, inner loop, emulated armv6m (RP2040 cycle model)")
    click.echo(f"{'kernel':<14} {'variant':<10} {'instr/word':>10} {'cycles/word':>11}")
    for kernel, arches in r["kernels"].items():
        for variants in arches.values():
            for variant, c in variants.items():
                click.echo(
                    f"{kernel:<14} {variant:<10} {c['instructions_per_word']:>10.2f} {c['cycles_per_word']:>11.2f}"
                )
    h, v = r["host"], r["virtual"]
    click.echo("")
    click.echo(
        f"host reference (numpy), MNIST default model {h['model']} {h['weights']}: "
        f"{h['samples_per_s']:.0f} training samples/s ({h['samples']} samples, {h['data']})"
    )
    sps = v["samples_per_s"]
    click.echo(
        f"virtual board {v['board']} ({v['dataset']} {v['model']} {v['weights']}, unix port on this host): "
        f"{sps:.0f} samples/s of device busy time, {v['samples_per_s_wall']:.0f} samples/s wall"
        if sps
        else f"virtual board {v['board']}: no busy time recorded"
    )
    ps = r["per_sample"]
    click.echo("")
    click.echo(f"Estimated per MNIST training sample, default model {ps['model']} {ps['weights']} (steady state)")
    click.echo(
        f"{'board':<8} {'chip':<8} {'kernel':<10} {'cores':>5} {'time/sample':>13} {'energy/sample':>14} "
        f"{'samples/s':>10} {'power':>8}"
    )
    for name, row in ps["boards"].items():
        one_core = row["dual_core"]["cores_used"] == row["single_core"]["cores_used"]
        for label in ("single_core",) if one_core else ("single_core", "dual_core"):  # one row where _thread has a GIL
            c = row[label]
            click.echo(
                f"{name:<8} {row['chip']:<8} {row['kernel']:<10} {c['cores_used']:>5} "
                f"{_fmt(c['seconds'], 'ms', 1e3):>13} {_fmt(c['joules'], 'mJ', 1e3):>14} "
                f"{1 / c['seconds']:>10.0f} {c['power_w']:>6.3f} W"
            )
        click.echo(
            f"{'':<8} dual-core gain {row['dual_core_gain']:.2f}x per sample; "
            f"forward of the {ps['model'][-1]}-neuron layer "
            f"{row['single_core']['forward_dense_cycles'] / row['dual_core']['forward_dense_cycles']:.2f}x; "
            f"{row['source']}"
        )
    pico = r.get("pico")
    if pico:
        t = pico["terms"]
        click.echo("")
        click.echo(f"Pico per training sample, by part (ms): {pico['label']}")
        click.echo(
            f"interpreter: {t['statement_cycles']:.0f} cycles per statement, {t['call_cycles']:.0f} per call; fit: "
            + ", ".join(
                f"{n} {f['estimate_ms']:.3f} vs genuine {f['genuine_ms']:.3f} ms" for n, f in pico["fit"].items()
            )
        )
        click.echo(
            f"{'workload':<44} {'samples':<9} {'total':>6} {'fwd':>6} {'update':>6} {'vote':>5} "
            f"{'stmts':>6} {'calls':>6} {'dual':>6}"
        )
        for which, what in (("steady", "learning"), ("run", "run avg")):
            for label, row in pico["rows"].items():
                c = row[which]
                click.echo(
                    f"{label:<44} {what:<9} {c['ms']:>6.3f} {c['forward']:>6.3f} {c['update']:>6.3f} "
                    f"{c['vote']:>5.2f} {c['statements']:>6.3f} {c['calls']:>6.3f} {c['handover']:>6.3f}"
                )
        click.echo(
            "fwd = dense + argmax + row load kernels; update = row updates, prototype initialisation, step key; "
            "stmts/calls = bytecode statements and calls x the calibrated terms; dual = core 1 finishing after "
            "core 0 (its serve call beyond the leader's own rows; before: Worker.start/wait, the sync kernels and "
            "core 1's Python), bus contention. 'learning' = samples after the prototypes are filled; 'run avg' = "
            "the whole run (digits: 1 epoch; MNIST: first 2,000 samples). digits (k_out 3) and MNIST 10x96 "
            "(k_out 5) as the genuine figures were measured; (default) = this checkout's default MNIST model, "
            "the headline table's. (before) = the firmware the genuine figures were measured on "
            "(pico_calibration.json calibration_commit), traced the same way."
        )
    click.echo("")
    click.echo(
        "Estimates, not measurements: emulated armv6m kernel cycles (kernel_costs.json) + interpreter terms "
        "calibrated on the genuine Pico firmware (pico_calibration.json) / clock x board supply power "
        "(boards/*.json)."
    )


@click.command()
@click.option("--json", "as_json", is_flag=True, help="print one JSON object")
@click.option("--quick", is_flag=True, help="smaller emulated runs and shorter throughput runs")
@handled
def bench(as_json: bool, quick: bool) -> None:
    """Kernel costs, samples/s, and estimated time and energy per training sample."""
    from ..measure.bench import run_bench

    r = run_bench(quick=quick, log=lambda s: click.echo(s, err=True))
    if as_json:
        click.echo(json.dumps(r, sort_keys=True))
    else:
        print_report(r)


COMMANDS = [bench]
