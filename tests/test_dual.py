"""Dual core (firmware dual.py): layers with >= 256 neurons split their forward pass over a
second thread. Under the unix port (threads, no GIL, like rp2) the weights after training
must be bit-identical to one core, with the heap locked (no allocation per sample)."""

from __future__ import annotations

import json

from conftest import run_micropython

SCRIPT = """
import json, hashlib, binascii, micropython
from bitflip.rule import Trainer
from bitflip import dual
def run(cores, sizes, weights):
    cfg = {"sizes": sizes, "classes": 4, "seed": 9, "margin": 2, "window": 6, "k": [2] * (len(sizes) - 1),
           "ks": 2, "weights": weights, "cores": cores}
    t = Trainer(cfg)
    nw = (sizes[0] + 31) >> 5
    count = 40
    buf = bytearray(40 + count * nw * 4)
    s = 12345
    for i in range(count):
        buf[i] = i % 4
    for i in range(40, len(buf)):
        s = (s * 1103515245 + 12345) & 0x7FFFFFFF
        buf[i] = (s >> 16) & 0xFF
    micropython.heap_lock()
    c = t.train_block(buf, count, 0, 40, nw)
    c2 = t.eval_block(buf, count, 0, 40, nw)
    micropython.heap_unlock()
    h = hashlib.sha256()
    for _, _, b in t.planes():
        h.update(b)
    return [binascii.hexlify(h.digest()).decode(), c, c2, t.worker is not None, t.step]
res = []
for sizes in ([64, 256], [70, 300, 12], [40, 8, 260]):
    for w in ("binary", "binary2", "ternary"):
        res.append([sizes, w, run(1, sizes, w), run(2, sizes, w)])
print(json.dumps({"available": dual.available(), "res": res}))
"""


def test_dual_core_forward_is_bit_identical_and_allocation_free() -> None:
    got = json.loads(run_micropython(SCRIPT, heap="8M", timeout=120))
    assert got["available"]
    for sizes, weights, one, two in got["res"]:
        assert not one[3] and two[3], (sizes, weights)  # cores=1: no worker; cores=2: a worker
        assert one[:3] == two[:3], (sizes, weights)
        assert one[4] == 40


def test_small_layers_and_default_stay_single_core() -> None:
    out = run_micropython("""
from bitflip.rule import Trainer
cfg = {"sizes": [64, 200], "classes": 4, "seed": 1, "margin": -1, "window": 4, "k": [2], "ks": 2, "weights": "binary2"}
a = Trainer(dict(cfg, cores=2)).worker
b = Trainer(dict(cfg, sizes=[64, 256])).worker  # not rp2: only on request
print(a is None, b is None)
""")
    assert out.split() == ["True", "True"]


FAST = """
import json, hashlib, binascii, micropython
from bitflip.rule import Trainer
def run(cores, sizes, blocks):
    cfg = {"sizes": sizes, "classes": 32, "seed": 3, "margin": -1, "window": 0, "k": [3], "ks": 2,
           "weights": "binary2", "cores": cores}
    t = Trainer(cfg)
    assert t.fast is not None
    nw = (sizes[0] + 31) >> 5
    count = 40
    buf = bytearray(40 + count * nw * 4)
    s = 777
    for i in range(count):
        buf[i] = (i * 7) % 32
    out = []
    for b in range(blocks):
        for i in range(40, len(buf)):
            s = (s * 1103515245 + 12345) & 0x7FFFFFFF
            buf[i] = (s >> 16) & 0xFF
        micropython.heap_lock()
        c = t.train_block(buf, count, 0, 40, nw)
        c2 = t.eval_block(buf, count, 0, 40, nw)
        micropython.heap_unlock()
        out.append([c, c2])
    h = hashlib.sha256()
    for _, _, p in t.planes():
        h.update(p)
    w = t.worker is not None
    t.close()
    return [binascii.hexlify(h.digest()).decode(), out, w, t.step, t.updates]
res = []
for sizes in ([64, 256], [100, 320], [33, 288]):
    res.append([sizes, run(1, sizes, 10), run(2, sizes, 10)])
print(json.dumps(res))
"""


def test_fast_path_split_is_bit_identical_and_allocation_free() -> None:
    """fast.py on two cores: core 1 serves inside the kernel (dense_argmax mode 2), core 0
    leads (mode 1): the same weights, training and evaluation counts as one core, heap locked,
    and the worker stops when the run closes (a second and third run start their own)."""
    for sizes, one, two in json.loads(run_micropython(FAST, heap="8M", timeout=180)):
        assert not one[2] and two[2], sizes
        assert one[:2] == two[:2], sizes
        assert one[3] == 400
        assert one[4] > 50, sizes  # prototypes filled: row updates ran
