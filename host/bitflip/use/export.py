"""`bitflip export`: a finished run directory -> a model file (.bfm) or a C header.

The run directory holds the planes and the configuration (model.npz) and what the run was
(summary.json, events.jsonl); the dataset it names is loaded again for what a model file
adds: the raw feature count and value range, the scaling of raw values and the rule state
(prototypes still to fill, pool window positions) after the run's steps."""

from __future__ import annotations

import dataclasses
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..data import load_dataset
from ..data.encoding import parse_encoding
from ..device import spec
from ..errors import UsageError
from ..training.rundir import read_epoch_records
from .modelfile import ModelFile, state_after_training


def read_run(run_dir: Path) -> tuple[dict[str, Any], dict[str, Any], list[tuple[int, str, bytes]]]:
    """(summary, cfg, planes in spec.planes order) of a finished run directory."""
    d = Path(run_dir)
    if not d.is_dir():
        raise UsageError(f"{d}: not a run directory (bitflip train --out DIR writes one)")
    try:
        summary = json.loads((d / "summary.json").read_text())
    except FileNotFoundError:
        raise UsageError(f"{d}: no summary.json: the run did not finish (or this is not a run directory)") from None
    except (OSError, ValueError) as e:
        raise UsageError(f"{d}/summary.json: unreadable ({e})") from None
    try:
        with np.load(d / "model.npz") as z:
            cfg = json.loads(str(z["config"]))
            arrays = {k: z[k] for k in z.files if k != "config"}
    except FileNotFoundError:
        raise UsageError(f"{d}: no model.npz") from None
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:
        raise UsageError(f"{d}/model.npz: unreadable ({type(e).__name__}: {e})") from None
    planes = []
    for li, name, size in spec.planes(cfg):
        key = f"layer{li}_{name}"
        if key not in arrays:
            raise UsageError(f"{d}/model.npz: no array {key}")
        b = np.ascontiguousarray(arrays[key]).view(np.uint32).astype("<u4").tobytes()
        if len(b) != size:
            raise UsageError(f"{d}/model.npz: {key} has {len(b)} bytes, the configuration needs {size}")
        planes.append((li, name, b))
    return summary, cfg, planes


def export_run(run_dir: Path, dataset: str | None = None) -> ModelFile:
    summary, cfg, planes = read_run(run_dir)
    digest = spec.digest([p for _, _, p in planes])
    if summary.get("weights_sha256") and summary["weights_sha256"] != digest:
        raise UsageError(
            f"{run_dir}: model.npz does not hold the weights the run ended with "
            f"(digest {digest[:12]}, summary {summary['weights_sha256'][:12]})"
        )
    name = dataset or summary.get("dataset_arg") or summary.get("dataset")
    if not name:
        raise UsageError(f"{run_dir}: summary.json names no dataset: pass --dataset")
    data = load_dataset(str(name))
    enc = parse_encoding(summary.get("encoding") or data.default_encoding, data.max_value)
    if enc.select:  # mi:PCT: the bits the run kept (chosen on its training rows)
        keep = summary.get("encoding_keep")
        if not keep:
            raise UsageError(f"{run_dir}: summary.json has no encoding_keep for encoding {enc.spec}")
        enc = dataclasses.replace(enc, keep=tuple(int(i) for i in keep))
    if enc.n_bits(data.n_features) != cfg["sizes"][0] or data.n_classes != cfg["classes"]:
        raise UsageError(
            f"dataset {name} ({data.n_features} features -> {enc.n_bits(data.n_features)} bits, "
            f"{data.n_classes} classes) is not the one this run trained on "
            f"({cfg['sizes'][0]} bits, {cfg['classes']} classes): pass --dataset"
        )
    epochs, _ = read_epoch_records(Path(run_dir))
    limit = int(summary.get("limit") or 0)
    y_train = data.y_train[:limit] if limit else data.y_train
    n_epochs = len(epochs) or int(summary.get("epochs", 0))
    step = int(epochs[max(epochs)]["step"]) if epochs and "step" in epochs[max(epochs)] else n_epochs * len(y_train)
    fill, pos = state_after_training(cfg, step, y_train, n_epochs)
    meta = {
        "job": cfg.get("id", ""),
        "digest": digest,
        "dataset": data.name,
        "encoding": enc.spec,
        "board": summary.get("board"),
        "epochs": summary.get("epochs"),
        "test_accuracy": summary.get("test_accuracy"),
        "writer": f"bitflip {__version__} export",
    }
    return ModelFile(
        cfg=cfg,
        planes=planes,
        encoding=enc,
        n_features=data.n_features,
        max_value=data.max_value,
        scaling=data.scaling,
        labels=list(data.labels) if data.labels else [str(i) for i in range(int(cfg["classes"]))],
        step=step,
        fill=fill,
        pos=pos,
        meta=meta,
    )
