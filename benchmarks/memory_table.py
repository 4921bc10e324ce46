"""Device RAM each model needs on each board, from the memory planner (bitflip.memory), next
to the board's heap budget: the numbers `bitflip train` checks before it sends anything.

    .venv/bin/python benchmarks/memory_table.py            # markdown tables
    .venv/bin/python benchmarks/memory_table.py --json

Models are written as `bitflip train --model` takes them (hidden widths, then
CLASSESxPROTOTYPES) with the dataset that fixes the input width: digits 256 bits (64
features x 4 thermometer levels, its default thermo:4), MNIST 400 bits (default deskew+crop:20+threshold:32) or
784 bits (the whole image, threshold:32). The plan is an upper bound
built from the firmware's buffers plus a fixed part measured on the unix port (see
host/bitflip/memory.py); on the sim- boards it is checked by tests/test_memory.py, which
trains the largest model the planner accepts. Real boards: planned, not measured.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "host"))

from bitflip import boards as boards_mod
from bitflip import gitinfo
from bitflip.link.build import firmware_versions
from bitflip.training.hparams import DEFAULT_MODEL, DEFAULT_WEIGHTS
from bitflip.training.memory import largest_hidden, largest_prototypes, model_name, plan_memory
from bitflip.training.runner import parse_model

# input bits: digits thermo:4 (tests/test_datasets.py checks 256); MNIST's default encoding (deskew+crop:20+threshold:32) gives
# 400; the 784-512-10 rows use the whole 28x28 image (threshold:32)
INPUT_BITS = {"digits": 256, "mnist": 400, "mnist 28x28": 784, "fashion": 784}
CLASSES = 10
# (dataset, model, weights, why it is in the table, pool rule window: 0 = rule v1)
MODELS = [
    ("digits", DEFAULT_MODEL["digits"], DEFAULT_WEIGHTS["digits"], "digits default", 0),
    ("mnist", DEFAULT_MODEL["mnist"], DEFAULT_WEIGHTS["mnist"], "MNIST default", 0),
    ("digits", "256-10x16", "binary2", "hidden layer + prototypes, rule v1", 0),
    ("mnist 28x28", "256-10x16", "binary2", "hidden layer + prototypes, rule v1", 0),
    ("mnist 28x28", "256-10x16", "binary2", "the same, pool rule (the default for hidden layers)", 32),
    ("mnist 28x28", "512-10", "binary", "784-512-10, 1-bit", 0),
    ("mnist 28x28", "512-10", "binary2", "784-512-10, sign + confidence", 0),
    ("mnist 28x28", "512-10", "ternary", "784-512-10 ternary (issue 3: must fit the Pico)", 0),
    ("fashion", "560-10x29", "binary2", "Fashion 85 % recipe, evidence window over every unit", 560),
    ("fashion", "560-10x29", "binary2", "Fashion recipe with the window a Pico 2 holds", 280),
]
BOARDS = ["pico", "pico2", "esp32", "esp32s3", "esp32c3", "sim-pico", "sim-esp32"]


def firmware_commit() -> str:
    return gitinfo.commit(("firmware",))


def sizes_of(dataset: str, model: str) -> list[int]:
    return parse_model(model, INPUT_BITS[dataset], CLASSES)


def largest(sizes: list[int], weights: str, board: Any, pool: int = 0) -> str:
    """The largest model of the same shape that fits: wider hidden layers, or (no hidden
    layer) more prototypes per class."""
    if len(sizes) > 2:
        w = largest_hidden(sizes, weights, board, pool_rows=pool)
        return model_name([sizes[0]] + [w] * (len(sizes) - 2) + [sizes[-1]], CLASSES) if w else "none"
    p = largest_prototypes(sizes, weights, board, CLASSES)
    return model_name([sizes[0], CLASSES * p], CLASSES) if p else "none"


def collect() -> dict[str, Any]:
    boards = [boards_mod.load(b) for b in BOARDS]
    rows = []
    for dataset, model, weights, why, pool in MODELS:
        sizes = sizes_of(dataset, model)
        cells = {}
        for b in boards:
            plan = plan_memory(sizes, weights, b, pool_rows=pool)
            cells[b.name] = {
                "needed": plan["total"],
                "heap": plan["heap"],  # free at the point the app builds the model, by the board's plan
                "fits": plan["total"] <= plan["heap"],
                "spare": plan["heap"] - plan["total"],
                "largest": largest(sizes, weights, b, pool),
                "source": plan["source"],
            }
        rows.append(
            {
                "dataset": dataset,
                "model": model,
                "weights": weights,
                "why": why,
                "pool": pool,
                "name": model_name(sizes, CLASSES),
                "sizes": sizes,
                "boards": cells,
            }
        )
    pico = boards_mod.load("pico")
    t_sizes = sizes_of("mnist 28x28", "512-10")
    detail = plan_memory(t_sizes, "ternary", pico)
    return {
        "boards": [
            {
                "name": b.name,
                "heap": plan_memory([8, CLASSES], "binary", b)["heap"],
                "word": b.word_bytes,
                "heap_source": b.data.get("heap_source", ""),
            }
            for b in boards
        ],
        "rows": rows,
        "pico_ternary_784_512_10": detail,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    cmd = " ".join(["python benchmarks/memory_table.py"] + [shlex.quote(a) for a in sys.argv[1:]])
    data = collect()
    if args.json:
        print(json.dumps({"command": cmd, **data}, indent=1))
        return
    version, proto = firmware_versions()
    sources = {c["source"] for r in data["rows"] for c in r["boards"].values()}
    print("### Device RAM per model (planned)\n")
    print(
        f"`{cmd}` — firmware {version} (protocol {proto}) at commit {firmware_commit()}; bytes of heap from the memory "
        f"planner against the heap free when the app builds the model. Sources: {'; '.join(sorted(sources))}. "
        "Planned, not measured on a board.\n"
    )
    heads = [f"{b['name']} ({b['heap']:,})" for b in data["boards"]]
    print("| model (dataset, weights) | " + " | ".join(heads) + " |")
    print("|---|" + "---:|" * len(heads))
    for r in data["rows"]:
        cells = []
        for b in data["boards"]:
            c = r["boards"][b["name"]]
            cells.append(f"{c['needed']:,} {'yes' if c['fits'] else '**no**'}")
        rule = f", pool={r['pool']}" if r["pool"] else ""
        print(f"| `{r['model']}` = {r['name']} ({r['dataset']}, {r['weights']}{rule}) | " + " | ".join(cells) + " |")
    print(
        "\nColumn heads: board (heap budget in bytes, from boards/*.json). Cells: bytes needed, and whether "
        "that is within the budget. The sim- boards run the 64-bit unix port (32-byte GC blocks, bigger "
        "objects) but keep no machine code in their heap, so their figures differ from the real board's.\n"
    )
    print("### Largest model of the same shape that fits (planned)\n")
    print("| model shape (weights) | " + " | ".join(b["name"] for b in data["boards"]) + " |")
    print("|---|" + "---|" * len(data["boards"]))
    seen = set()
    for r in data["rows"]:
        key = (r["dataset"], len(r["sizes"]), r["weights"], r["pool"])
        if key in seen:
            continue
        seen.add(key)
        shape = (
            f"{r['sizes'][0]}-W-10"
            if len(r["sizes"]) > 2 and r["sizes"][-1] == CLASSES
            else (
                f"{r['sizes'][0]}-W-10x{r['sizes'][-1] // CLASSES}" if len(r["sizes"]) > 2 else f"{r['sizes'][0]}-10xP"
            )
        )
        rule = f", pool={r['pool']}" if r["pool"] else ""
        print(
            f"| {shape} ({r['weights']}{rule}) | "
            + " | ".join(r["boards"][b["name"]]["largest"] for b in data["boards"])
            + " |"
        )
    d = data["pico_ternary_784_512_10"]
    spare = d["heap"] - d["total"]
    print("\n### 784-512-10 ternary on the Pico, by part (planned)\n")
    print(
        f"`bitflip memory --board pico --model 784-512-10 --weights ternary`: **{d['total']:,} of {d['heap']:,} "
        f"bytes, {spare:,} bytes ({100 * spare / d['heap']:.1f}%) to spare** in the Pico's {d['heap'] // 1024} KiB budget (the ~210 KB MicroPython reports free at boot, less "
        "a ~5 KB margin; the plan itself counts the firmware's code and objects with 64-bit sizes, an upper bound: "
        "boards/pico.json).\n"
    )
    print("| part | bytes |")
    print("|---|---:|")
    for key, value in d.items():
        if isinstance(value, int) and key not in ("total", "heap", "word_bytes"):
            print(f"| {key} | {value:,} |")
    print(f"| **total** | **{d['total']:,}** |")


if __name__ == "__main__":
    main()
