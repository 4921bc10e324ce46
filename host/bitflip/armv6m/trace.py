"""Interpreter work of the firmware's training path, counted on the real MicroPython unix port.

The emulator (bitflip.armv6m.emu) prices the native kernels exactly, but the bytecode around
them — the learning rule's Python, the calls into the kernels — runs in the MicroPython VM,
which is not emulated. This module counts that work, per training sample, on the real unix
port running the Pico's module set (bitflip.armv6m.targets: platform rp2, armv6m, no GIL,
asm_thumb kernels replaced by their viper twins):

- statements executed in non-native firmware functions (a loop header counts once per
  iteration and once on entry), with a static "ops" weight per statement (expression nodes:
  names, attributes, subscripts, operators, constants, stores — a proxy for bytecode ops);
- bytecode function entries (firmware functions and methods);
- call expressions executed (all kinds: bytecode, native, builtins/constructors/C methods);
- every call into a native (viper or asm_thumb) function, with its name and its scalar
  arguments (ints, and the first words of small int parameter blocks), plus the data-dependent
  part of update_row's work (words whose confidence draws run).

It does so by transforming a temporary COPY of the firmware package with `ast` (counter
increments before statements and at function entries, a counting shim around every call
expression, native functions wrapped by a recorder), never the firmware itself. The second
core is replaced by a synchronous worker (`_tracew.SyncWorker`, a subclass of dual.Worker
without a thread) that runs each job right when it is started, counting its work on core 1,
and marks where the main core starts and stops waiting, so the parallel region can be priced.

The parts: instrument.py rewrites the package copy, trace_runtime.py is the MicroPython it
adds (the counters and the synchronous worker), this module runs the copy and reads the counts.

    >>> from bitflip.armv6m.trace import trace_dataset
    >>> t = trace_dataset("digits", epochs=1)           # doctest: +SKIP
    >>> t.summary()["per_sample"]["statements"]          # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .instrument import traced_package
from .targets import FIRMWARE, as_target


@dataclass
class Segment:
    tag: str  # "sample", or "pre": a block's prologue (train_block's entry, before its first sample)
    statements: tuple[int, int]  # core 0, core 1
    ops: tuple[int, int]
    fcalls: tuple[int, int]  # bytecode function entries
    calls: tuple[int, int]  # call expressions of every kind
    natives: list[tuple[int, str, list[Any], int]]  # (core, name, args, extra)
    marks: list[tuple[str, int, int, int, int, int]]  # (label, S0, O0, F0, C0, natives so far)

    def native_calls(self, core: int) -> int:
        return sum(1 for n in self.natives if n[0] == core)

    def builtin_calls(self, core: int) -> int:
        """Call expressions that were neither a bytecode function nor a native one (builtins,
        constructors, methods of built-in types)."""
        return self.calls[core] - self.fcalls[core] - self.native_calls(core)

    @property
    def kind(self) -> str:
        names = [n[1] for n in self.natives]
        if "init_row" in names:
            return "init"
        ups = sum(1 for n in names if n in ("update_row", "flip_row", "update_row_b2_asm", "flip_row_asm"))
        if self.tag != "sample":
            return self.tag
        return {0: "no update", 1: "learn, correct winner", 2: "learn, wrong winner"}.get(ups, f"{ups} updates")


@dataclass
class Trace:
    cfg: dict[str, Any]
    cores: int
    segments: list[Segment] = field(default_factory=list)
    eval_segments: list[Segment] = field(default_factory=list)
    functions: dict[str, list[int]] = field(default_factory=dict)  # statements per function, per core
    eval_functions: dict[str, list[int]] = field(default_factory=dict)
    digest: str = ""
    correct: int = 0

    @property
    def samples(self) -> list[Segment]:
        return [s for s in self.segments if s.tag == "sample"]

    def mix(self) -> dict[str, int]:
        return dict(Counter(s.kind for s in self.samples))

    def summary(self) -> dict[str, Any]:
        n = max(len(self.samples), 1)
        seg = self.segments

        def tot(f: Any) -> float:
            return sum(f(s) for s in seg) / n

        natives: Counter[str] = Counter()
        for s in seg:
            natives.update(x[1] for x in s.natives)
        return {
            "samples": len(self.samples),
            "mix": self.mix(),
            "per_sample": {
                "statements": tot(lambda s: s.statements[0]),
                "statements_core1": tot(lambda s: s.statements[1]),
                "ops": tot(lambda s: s.ops[0]),
                "fcalls": tot(lambda s: s.fcalls[0]),
                "builtin_calls": tot(lambda s: s.builtin_calls(0)),
                "native_calls": tot(lambda s: s.native_calls(0)),
                "native_calls_core1": tot(lambda s: s.native_calls(1)),
            },
            "natives_per_sample": {k: v / n for k, v in sorted(natives.items())},
        }


DRIVER = r"""
import json, hashlib, binascii
from bitflip import _trace as _T
from bitflip import dual
if {sync}:
    from bitflip import _tracew
    dual._worker = _tracew.SyncWorker()
from bitflip.{trainer} import Trainer
t = Trainer({cfg!r})
data = open({data!r}, 'rb').read()
buf = bytearray(len(data) + 8)
buf[8:] = data
blocks = {blocks!r}
_T.close("setup")
correct = 0
for lab_off, row_off, count, row_words in blocks:
    correct += t.train_block(buf, count, lab_off + 8, row_off + 8, row_words)
    _T.close("last")
fs = dict(_T.FS)
_T.close("setup")
n_train = len(_T.segs)
for lab_off, row_off, count, row_words in {eval_blocks!r}:
    t.eval_block(buf, count, lab_off + 8, row_off + 8, row_words)
    _T.close("last")
efs = dict(_T.FS)
h = hashlib.sha256()
for _, _, p in t.planes():
    h.update(p)
out = open({out!r}, 'w')
out.write(json.dumps({{'digest': binascii.hexlify(h.digest()).decode(), 'correct': correct,
                       'worker': t.worker is not None, 'functions': fs, 'eval_functions': efs}}) + '\n')
for s in _T.segs:
    out.write(json.dumps(s) + '\n')
out.close()
"""


def _micropython() -> str:
    return str(Path(sys.executable).parent / "micropython")


def _blocks(X: np.ndarray, y: np.ndarray, block: int) -> tuple[bytes, list[tuple[int, int, int, int]]]:
    """The samples laid out as the device's frame blocks (labels, padding to 4, rows), one
    after the other: (bytes, [(labels offset, rows offset, count, row words)])."""
    out = bytearray()
    blocks = []
    nw = X.shape[1]
    for s in range(0, len(y), block):
        xs, ys = X[s : s + block], y[s : s + block]
        lab_off = len(out)
        lab_pad = (len(ys) + 3) & ~3
        out += bytes(ys.astype(np.uint8)) + bytes(lab_pad - len(ys))
        row_off = len(out)
        out += np.ascontiguousarray(xs, dtype="<u4").tobytes()
        blocks.append((lab_off, row_off, len(ys), nw))
    return bytes(out), blocks


def run_trace(
    cfg: dict[str, Any],
    X: np.ndarray,
    y: np.ndarray,
    cores: int = 1,
    block: int = 0,
    X_eval: np.ndarray | None = None,
    y_eval: np.ndarray | None = None,
    heap: str = "64M",
    timeout: float = 1800,
    src: Path = FIRMWARE,
    trainer: str = "rule",
) -> Trace:
    """Train a fresh firmware Trainer(cfg) (rp2 module set, instrumented) on packed rows X and
    labels y through Trainer.train_block, in blocks of `block` samples (default: what fits a
    2048-byte frame, as a Pico link sends them), then (optionally) evaluate X_eval through
    eval_block. cores=2 gives it the synchronous worker (the dual-core split of layers >= 256
    rows). `src`: the firmware package to copy and `trainer` the module whose Trainer is used
    (e.g. the firmware at the calibration commit)."""
    from ..device import payload as PL
    from ..device import protocol as P

    cfg = {**cfg, "cores": cores}
    if not block:
        block = PL.max_block_samples(P.MAX_PAYLOAD, 4 * X.shape[1])
    with tempfile.TemporaryDirectory(prefix="bitflip-trace-") as tmp_s:
        tmp = Path(tmp_s)
        root, functions = traced_package(tmp / "pkg", src)
        data, blocks = _blocks(X, y, block)
        eval_blocks: list[tuple[int, int, int, int]] = []
        if X_eval is not None and y_eval is not None:
            edata, eval_blocks = _blocks(X_eval, y_eval, block)
            eval_blocks = [(lo + len(data), ro + len(data), c, w) for lo, ro, c, w in eval_blocks]
            data += edata
        (tmp / "data.bin").write_bytes(data)
        script = (
            as_target("rp2")
            + f"sys.path.insert(0, {str(root)!r})\n"
            + DRIVER.format(
                sync=cores > 1,
                cfg=cfg,
                trainer=trainer,
                data=str(tmp / "data.bin"),
                blocks=blocks,
                eval_blocks=eval_blocks,
                out=str(tmp / "trace.jsonl"),
            )
        )
        env = dict(os.environ, MICROPYPATH=f"{root}:.frozen")
        p = subprocess.run(
            [_micropython(), "-X", f"heapsize={heap}", "-c", script],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            cwd=tmp,
            check=False,
        )
        if p.returncode != 0:
            raise RuntimeError(f"traced run failed ({p.returncode}):\n{p.stdout[-2000:]}\n{p.stderr[-4000:]}")
        lines = (tmp / "trace.jsonl").read_text().splitlines()
    head = json.loads(lines[0])
    tr = Trace(cfg, cores, digest=head["digest"], correct=head["correct"])
    for key, attr in (("functions", "functions"), ("eval_functions", "eval_functions")):
        got: dict[str, list[int]] = {}
        for k, v in head[key].items():
            f, core = divmod(int(k), 2)
            got.setdefault(functions[f], [0, 0])[core] += v
        setattr(tr, attr, got)
    if cores > 1 and not head["worker"]:
        tr.cores = 1  # no layer large enough to split
    target = tr.segments
    for line in lines[1:]:
        tag, s0, s1, o0, o1, f0, f1, c0, c1, natives, marks = json.loads(line)
        if tag == "setup":
            if tr.segments:
                target = tr.eval_segments  # the second setup mark starts the evaluation
            continue
        # "last" closes a block's last sample and its epilogue (a few statements): a sample
        target.append(
            Segment(
                "sample" if tag == "last" else tag,
                (s0, s1),
                (o0, o1),
                (f0, f1),
                (c0, c1),
                [tuple(n) for n in natives],
                [tuple(m) for m in marks],
            )
        )
    return tr


def dataset_rows(
    dataset: str,
    limit: int = 0,
    epochs: int = 1,
    seed: int = 0,
    model: str | None = None,
    encoding: str | None = None,
    weights: str | None = None,
) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    """(rule config, packed rows, labels) of `bitflip train --dataset DATASET [--limit N]
    [--epochs E]` with the default model (or the one given), in the order the host sends them
    (plan.order)."""
    from ..training.plan import TrainRequest, prepare

    plan = prepare(
        TrainRequest(
            board="host",
            dataset=dataset,
            epochs=epochs,
            limit=limit or None,
            seed=seed,
            model=model,
            encoding=encoding,
            weights=weights,
            val=0,
            out=Path(tempfile.gettempdir()) / "bitflip-trace-unused",
        )
    )
    order = np.concatenate([plan.order(e) for e in range(epochs)])
    cfg = {k: v for k, v in plan.cfg.items() if k != "id"}
    return cfg, plan.x_train[order], plan.y_train[order].astype(np.uint8)


def trace_dataset(dataset: str, limit: int = 0, epochs: int = 1, cores: int = 1, **kw: Any) -> Trace:
    cfg, X, y = dataset_rows(dataset, limit, epochs)
    return run_trace(cfg, X, y, cores=cores, **kw)
