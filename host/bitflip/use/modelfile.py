"""The model file on the host: a typed view over bitflip.device.modelfile (the one module
that reads and writes .bfm files, on the board too), the host twin of the board's Model
(predict, scores, learn on the numpy reference) and conversions from a run directory's
pieces. Bad or truncated files are one UsageError line (exit 2)."""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..data.encoding import Encoding
from ..data.scaling import Scaling
from ..device import modelfile as MF
from ..device import spec
from ..errors import UsageError
from ..training.reference import Reference


@dataclass
class ModelFile:
    cfg: dict[str, Any]
    planes: list[tuple[int, str, bytes]]  # spec.planes order
    encoding: Encoding
    n_features: int
    max_value: int
    scaling: Scaling
    labels: list[str]
    step: int = 0
    fill: list[int] = field(default_factory=list)
    pos: list[int] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    # --- shape ----------------------------------------------------------------------------
    @property
    def sizes(self) -> list[int]:
        return list(self.cfg["sizes"])

    @property
    def classes(self) -> int:
        return int(self.cfg["classes"])

    @property
    def prototypes(self) -> int:
        return self.sizes[-1] // self.classes

    def digest(self) -> str:
        return spec.digest([p for _, _, p in self.planes])

    # --- the file -------------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        """The dict bitflip.device.modelfile writes."""
        sc = self.scaling
        if sc.kind == "none":
            scal: dict[str, Any] = {"kind": MF.SC_NONE}
        elif sc.kind == "unit":
            scal = {"kind": MF.SC_UNIT}
        else:
            assert sc.low is not None and sc.span is not None
            if sc.integer():
                scal = {"kind": MF.SC_MINMAX_INT, "low": [int(v) for v in sc.low], "span": [int(v) for v in sc.span]}
            else:
                scal = {
                    "kind": MF.SC_MINMAX_FLOAT,
                    "low": [float(v) for v in sc.low],
                    "span": [float(v) for v in sc.span],
                }
        layers = [
            {"type": MF.LT_DENSE, "kind": kind, "n_in": n_in, "n_out": n_out}
            for n_in, n_out, kind in spec.layers(self.cfg)
        ]
        return {
            "meta": {**self.meta, "digest": self.digest()},
            "cfg": self.cfg,
            "layers": layers,
            "encoding": {
                "features": self.n_features,
                "max_value": self.max_value,
                "steps": [list(s) for s in self.encoding.steps],
                "levels": list(self.encoding.thresholds),
                "keep": list(self.encoding.keep),
            },
            "scaling": scal,
            "labels": self.labels,
            "state": {"step": self.step, "fill": bytes(self.fill or [0] * self.classes), "pos": list(self.pos)},
        }

    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        MF.write(buf, self.info(), self.planes)
        return buf.getvalue()

    def write(self, path: str | Path) -> int:
        """Write atomically (a new file, then renamed); returns its size."""
        p = Path(path)
        data = self.to_bytes()
        tmp = p.with_name(p.name + ".tmp")
        try:
            tmp.write_bytes(data)
            os.replace(tmp, p)
        except OSError as e:
            raise UsageError(f"cannot write {p}: {e.strerror or e}") from None
        return len(data)

    @classmethod
    def from_bytes(cls, data: bytes, where: str = "model file") -> ModelFile:
        try:
            info = MF.read(io.BytesIO(data), size=len(data))
            return cls.from_info(info)
        except ValueError as e:
            raise UsageError(f"{where}: {e}") from None

    @classmethod
    def read(cls, path: str | Path) -> ModelFile:
        p = Path(path)
        try:
            data = p.read_bytes()
        except FileNotFoundError:
            raise UsageError(f"{p}: no such file") from None
        except IsADirectoryError:
            raise UsageError(f"{p}: is a directory, expected a {MF.SUFFIX} model file") from None
        except OSError as e:
            raise UsageError(f"{p}: cannot read ({e.strerror or e})") from None
        return cls.from_bytes(data, str(p))

    @classmethod
    def from_info(cls, info: dict[str, Any]) -> ModelFile:
        cfg = info["cfg"]
        try:
            from ..device.payload import check_config

            check_config(cfg)
            want = spec.planes(cfg)
            layers = spec.layers(cfg)
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"bad model file: configuration: {e}") from None
        got = [(li, name, len(b)) for li, name, b in info["planes"]]
        if got != want:
            raise ValueError(f"bad model file: planes {got[:4]}... do not match the configuration's {want[:4]}...")
        lay = [(ly["n_in"], ly["n_out"], ly["kind"]) for ly in info["layers"]]
        if lay != [tuple(x) for x in layers]:
            raise ValueError("bad model file: the layers section does not match the configuration")
        enc = info["encoding"]
        steps = tuple((str(n), int(a)) for n, a in enc["steps"])
        text = "+".join(
            [n if n == "deskew" else f"{n}:{a}" for n, a in steps]
            + ["thermo:" + ",".join(str(t) for t in enc["levels"])]
        )
        keep = tuple(int(i) for i in enc.get("keep", ()))
        if keep:
            text += f"+keep:{len(keep)}"
        encoding = Encoding(info["meta"].get("encoding", text), tuple(int(t) for t in enc["levels"]), steps, 0, keep)
        sc = info["scaling"]
        if sc["kind"] == MF.SC_NONE:
            scaling = Scaling("none")
        elif sc["kind"] == MF.SC_UNIT:
            scaling = Scaling("unit")
        else:
            scaling = Scaling(
                "minmax",
                np.array(sc["low"], dtype=np.float64),
                np.array(sc["span"], dtype=np.float64),
                sc["kind"] == MF.SC_MINMAX_INT,
            )
        try:
            n_bits = encoding.n_bits(int(enc["features"]))
        except UsageError as e:
            raise ValueError(f"bad model file: {e}") from None
        if n_bits != cfg["sizes"][0]:
            raise ValueError(f"bad model file: the encoding gives {n_bits} bits, the model takes {cfg['sizes'][0]}")
        if len(info["labels"]) != int(cfg["classes"]):
            raise ValueError(f"bad model file: {len(info['labels'])} labels for {cfg['classes']} classes")
        st = info["state"]
        return cls(
            cfg=cfg,
            planes=[(li, n, bytes(b)) for li, n, b in info["planes"]],
            encoding=encoding,
            n_features=int(enc["features"]),
            max_value=int(enc["max_value"]),
            scaling=scaling,
            labels=list(info["labels"]),
            step=int(st["step"]),
            fill=list(st["fill"]),
            pos=list(st["pos"]),
            meta=dict(info["meta"]),
        )

    # --- the reference ----------------------------------------------------------------------
    def reference(self) -> Reference:
        """The numpy reference holding this model and its rule state (what Model.load builds
        on a board): train_sample continues exactly as the board's learn()."""
        ref = Reference(self.cfg)
        for (li, name, dst), (_, _, data) in zip(ref.planes(), self.planes):
            dst[...] = np.frombuffer(data, dtype="<u4").reshape(dst.shape).astype(dst.dtype, copy=False)
        ref.step = self.step
        ref.fill = list(self.fill) if self.fill else [0] * self.classes
        pools = getattr(ref.hidden, "pools", [])
        for pool, p in zip(pools, self.pos):
            pool.pos = int(p)
        return ref

    def take(self, ref: Reference) -> None:
        """Planes and rule state from a reference (after training or learning)."""
        self.planes = [(li, name, np.ascontiguousarray(p).astype("<u4").tobytes()) for li, name, p in ref.planes()]
        self.step = ref.step
        self.fill = [int(f) for f in ref.fill]
        self.pos = [int(pool.pos) for pool in getattr(ref.hidden, "pools", [])]

    # --- using it ----------------------------------------------------------------------------
    def encode(self, x: np.ndarray) -> np.ndarray:
        """Raw feature values (N, F) -> packed rows, as the board encodes them."""
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise UsageError(f"the model takes {self.n_features} features per sample, got shape {x.shape}")
        return self.encoding.pack(self.scaling.apply(x))

    def scores(self, x: np.ndarray, ref: Reference | None = None) -> np.ndarray:
        """Per-class margins (N, classes): the largest pre-activation of each class's
        prototypes (Model.scores on the board)."""
        pre = (ref or self.reference()).scores(self.encode(x))
        return pre.reshape(len(pre), self.classes, self.prototypes).max(axis=2)

    def predict(self, x: np.ndarray, ref: Reference | None = None) -> np.ndarray:
        """Class indices (N,); labels[i] names them."""
        return (ref or self.reference()).predict(self.encode(x))


def state_after_training(
    cfg: dict[str, Any], step: int, y_train: np.ndarray, epochs: int
) -> tuple[list[int], list[int]]:
    """(fill, pool window positions) of a model trained `epochs` passes over labels y_train
    (rule.py: the first P samples of a class fill its prototypes; a pool flushes every
    `every` steps and moves its window on by `rows`)."""
    classes = int(cfg["classes"])
    P = cfg["sizes"][-1] // classes
    seen = np.bincount(np.asarray(y_train, dtype=np.int64), minlength=classes)[:classes] * epochs
    fill = [int(max(0, P - s)) for s in seen]
    pos = []
    if spec.hidden_rule(cfg) == "pool":
        every = int(cfg["pool"]["every"])
        for _, n_out, _ in spec.layers(cfg)[:-1]:
            rows = spec.pool_rows(cfg, n_out)
            pos.append((step // every) * rows % n_out)
    return fill, pos
