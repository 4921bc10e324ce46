"""Per-word cost of the firmware kernels on armv6m (RP2040), measured by running the exact
machine code mpy-cross emits in the unicorn emulator (bitflip.armv6m).

    .venv/bin/python benchmarks/kernel_costs.py            # table
    .venv/bin/python benchmarks/kernel_costs.py --json     # {kernel: {arch: {variant: {...}}}}
    .venv/bin/python benchmarks/kernel_costs.py --write    # regenerate host/bitflip/measure/kernel_costs.json

"inner loop" is the marginal cost of one more 32-bit word (two sizes, difference), what the
per-op cost model of the virtual boards uses. "layer" is everything a call pays (entry,
argument conversion, per-row work) on a concrete layer, divided by its words. Cycles follow
the model in bitflip/armv6m/isa.py (Cortex-M0+ timings, RP2040 single-cycle multiplier,
zero-wait-state SRAM); they are estimates, not measurements on a board. Every number comes
from a run whose result matched numpy; a mismatch aborts the script.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "host"))

from bitflip.armv6m import FUNCTIONS, measure_kernel, row_cost

ARCH = "armv6m"
VARIANT_NAMES = {"viper": "viper", "asm": "asm_thumb"}  # measure's name -> published name
CLOCK_HZ = 125_000_000  # RP2040 default clock under MicroPython
# a layer shape per kernel for the "layer" columns: MNIST input layer of the default model
LAYER = {"dense_binary": (784, 256), "dense_ternary": (784, 256), "flip_row": (784, 3)}


def collect(kernels: list[str], words: int, layers: bool) -> dict[str, dict[str, dict[str, dict[str, float]]]]:
    table: dict[str, dict[str, dict[str, dict[str, float]]]] = {}
    for kernel in kernels:
        per_variant: dict[str, dict[str, float]] = {}
        for variant in FUNCTIONS[kernel]:
            m = measure_kernel(kernel, words, variant)
            if not m["ok"]:
                raise SystemExit(f"{kernel} ({variant}) does not match numpy: {m.get('error')}")
            row: dict[str, float] = {
                "instructions_per_word": round(float(m["instructions_per_word"]), 2),
                "cycles_per_word": round(float(m["cycles_per_word"]), 2),
            }
            if layers:
                n_in, rows = LAYER[kernel]
                lc = row_cost(kernel, n_in, rows, variant)
                if not lc["ok"]:
                    raise SystemExit(f"{kernel} ({variant}) layer run does not match numpy")
                row["layer_instructions_per_word"] = round(float(lc["instructions_per_word"]), 2)
                row["layer_cycles_per_word"] = round(float(lc["cycles_per_word"]), 2)
            per_variant[VARIANT_NAMES[variant]] = row
        table[kernel] = {ARCH: per_variant}
    return table


def print_table(table: dict[str, dict[str, dict[str, dict[str, float]]]], words: int) -> None:
    print(f"armv6m (RP2040) kernel cost, emulated; inner loop measured at {words} -> {2 * words} words/row")
    head = f"{'kernel':<14} {'variant':<10} {'instr/word':>10} {'cycles/word':>11} {'ns/word@125MHz':>15}"
    has_layer = any("layer_cycles_per_word" in v for k in table.values() for v in k[ARCH].values())
    if has_layer:
        head += f" {'layer instr/word':>17} {'layer cycles/word':>18}"
    print(head)
    print("-" * len(head))
    for kernel, arches in table.items():
        for variant, r in arches[ARCH].items():
            ns = r["cycles_per_word"] / CLOCK_HZ * 1e9
            line = f"{kernel:<14} {variant:<10} {r['instructions_per_word']:>10.2f} {r['cycles_per_word']:>11.2f} {ns:>15.0f}"
            if has_layer:
                line += f" {r['layer_instructions_per_word']:>17.2f} {r['layer_cycles_per_word']:>18.2f}"
            print(line)
    if has_layer:
        shapes = ", ".join(f"{k} {n_in} in x {rows} rows" for k, (n_in, rows) in LAYER.items() if k in table)
        print(f"layer = one whole call: {shapes} (flip_row: one row, k=2)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", action="store_true", help="print {kernel: {arch: {variant: {...}}}} as JSON")
    ap.add_argument("--kernels", nargs="+", default=list(FUNCTIONS), choices=list(FUNCTIONS))
    ap.add_argument("--words", type=int, default=48, help="words per row of the smaller run (default 48)")
    ap.add_argument("--no-layer", action="store_true", help="skip the whole-call layer columns")
    ap.add_argument(
        "--write",
        action="store_true",
        help="regenerate host/bitflip/measure/kernel_costs.json, the per-op costs of the energy model",
    )
    args = ap.parse_args(argv)
    if args.write:
        from bitflip.measure.bench import write_costs

        print(f"wrote {write_costs()}")
        return 0
    table = collect(args.kernels, args.words, layers=not args.no_layer)
    if args.json:
        print(json.dumps(table, indent=2))
    else:
        print_table(table, args.words)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
