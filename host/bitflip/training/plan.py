"""A training job, checked: `prepare` turns a request into a Plan or raises UsageError (exit 2)
before anything is started, created or written — it reads the dataset, the board file and
(read-only) the run directory, and returns a new Plan; the request is never changed."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import boards as boards_mod
from ..boards import Board
from ..data import Dataset, load_dataset
from ..data.dataset import stratified_split
from ..data.encoding import Encoding, parse_encoding
from ..device import spec
from ..errors import UsageError
from ..measure.energy import meter_config
from ..paths import check_dir
from . import defaults, rundir
from .hparams import DEFAULT_MODEL, DEFAULT_WEIGHTS, rule_config
from .memory import check_fits

MAX_SEED = (1 << 32) - 1
VAL_FRACTION = 0.1  # the default validation split: this much of the training data, stratified
VAL_SPLIT_SEED = 0  # fixed: every seed and every method of a dataset validates on the same samples
_MODEL_RE = re.compile(r"^(?:[1-9][0-9]*-)*[1-9][0-9]*(?:x[1-9][0-9]*)?$")


@dataclass(frozen=True)
class TrainRequest:
    board: str = "sim-pico"
    dataset: str = "digits"
    model: str | None = None  # default per dataset (hparams.DEFAULT_MODEL)
    epochs: int = 10
    seed: int = 0
    out: Path | None = None  # default: ./runs/<dataset>-<board>-<time>
    weights: str | None = None  # default per dataset (hparams.DEFAULT_WEIGHTS)
    encoding: str | None = None
    port: str | None = None
    rule: dict[str, Any] = field(default_factory=dict)
    eval_every: int = 1
    resume: bool = False
    force: bool = False  # a non-empty --out that is not this job's: move it aside
    limit: int | None = None  # train on the first N training samples only (quick runs, tests)
    val: float | None = None  # validation split, a fraction of the training data (None: VAL_FRACTION; 0: none)
    ckpt_every: int = 1000
    cores: int | None = None  # 1 or 2 (dual-core forward); default: the board's
    fault_in: Any = None  # test hooks: byte-level faults on the virtual board's link
    fault_out: Any = None


@dataclass(frozen=True)
class Plan:
    req: TrainRequest
    board: Board
    data: Dataset
    enc: Encoding
    model: str  # as given or the dataset's default, e.g. "10x96"
    weights: str
    sizes: list[int]
    cfg: dict[str, Any]  # what the device and the reference receive (payload.CONFIG_KEYS)
    job: dict[str, Any]  # what makes this job this job (rundir.job_file); cfg["id"] is its hash
    x_train: np.ndarray  # packed (N, words) uint32, the training split without the validation samples
    x_test: np.ndarray
    out: Path  # absolute
    port: str | None  # resolved ('auto' -> the device path)
    x_val: np.ndarray  # packed validation rows (carved from the training data; may be empty)
    y_train: np.ndarray
    y_val: np.ndarray
    train_index: np.ndarray  # rows of data.x_train that train (the others validate)
    chosen: str = ""  # how the defaults were derived from the data (training/defaults.py), if they were

    def order(self, epoch: int) -> np.ndarray:
        """Sample order of an epoch: the same on every board for a given seed."""
        rng = np.random.default_rng([self.req.seed, epoch])
        return rng.permutation(len(self.x_train))

    @property
    def epochs(self) -> int:
        return self.req.epochs

    @property
    def total_samples(self) -> int:
        n_eval = sum(1 for e in range(self.req.epochs) if self.eval_after(e))
        return self.req.epochs * len(self.x_train) + n_eval * len(self.x_val) + len(self.x_test)

    def plane_sizes(self) -> dict[tuple[int, str], int]:
        """Bytes of every model plane the device reports: (layer, plane) -> size."""
        return {(li, name): n for li, name, n in spec.planes(self.cfg)}

    def eval_after(self, epoch: int) -> bool:
        """Is the model evaluated on the validation split after this epoch? (The test split is
        read once, at the end, by the best model on validation.)"""
        return len(self.y_val) > 0 and ((epoch + 1) % self.req.eval_every == 0 or epoch == self.req.epochs - 1)


def parse_model(text: str, n_in: int, n_classes: int) -> list[int]:
    """'256-10x16' -> [n_in, 256, 160]: hidden widths, then the classes and P prototypes
    per class of the competitive output layer ('10' means one per class)."""
    if not _MODEL_RE.match(text):
        raise UsageError(
            f"bad model '{text}': use hidden widths and CLASSESxPROTOTYPES, e.g. 256-10x16 "
            "(positive integers, no spaces)"
        )
    *hidden, last = text.split("-")
    cls, _, per = last.partition("x")
    c, p = int(cls), int(per or 1)
    if c != n_classes:
        raise UsageError(f"bad model '{text}': the last layer must have {n_classes} outputs (one per class)")
    return [n_in] + [int(w) for w in hidden] + [c * p]


def model_sizes(
    model: str | None,
    dataset: str | None,
    encoding: str | None,
    inputs: int | None,
    weights: str | None,
    pool: int | None,
) -> tuple[list[int], int, str, int]:
    """(layer sizes, classes, weights, pool rule window) of a model given as `train --model`
    takes it, with the input width from a dataset's encoding or given directly."""
    if inputs is not None:
        if not model:
            raise UsageError("--inputs needs --model (hidden widths, then CLASSESxPROTOTYPES)")
        cls = model.split("-")[-1].partition("x")[0]
        if not cls.isdigit() or int(cls) < 2:
            raise UsageError(f"bad model '{model}': the last part must be CLASSES or CLASSESxPROTOTYPES")
        n_in, n_classes, name = inputs, int(cls), ""
    else:
        data = load_dataset(dataset or "digits")
        enc = parse_encoding(encoding or data.default_encoding, data.max_value, data.n_features)
        n_in, n_classes, name = enc.n_bits(data.n_features), data.n_classes, data.name
        model = model or defaults.model_for(
            data,
            n_in,
            weights or DEFAULT_WEIGHTS.get(name, "binary2"),
            boards_mod.load(defaults.PLAN_BOARD),
            data.y_train,
        )
    sizes = parse_model(model, n_in, n_classes)
    weights = weights or DEFAULT_WEIGHTS.get(name, "binary2")
    cfg = rule_config(name, sizes, weights, 0, n_classes, {} if pool is None else {"pool": pool})
    return sizes, n_classes, weights, int(cfg.get("pool", {}).get("rows", 0))


def _check_numbers(req: TrainRequest) -> None:
    for name, v, lo in (
        ("--epochs", req.epochs, 1),
        ("--eval-every", req.eval_every, 1),
        ("--ckpt-every", req.ckpt_every, 1),
    ):
        if not isinstance(v, int) or v < lo:
            raise UsageError(f"{name} must be positive (got {v})")
    if not isinstance(req.seed, int) or not 0 <= req.seed <= MAX_SEED:
        raise UsageError(f"--seed must be an integer within 0..{MAX_SEED} (got {req.seed})")
    if req.limit is not None and (not isinstance(req.limit, int) or req.limit < 1):
        raise UsageError(f"--limit must be positive (got {req.limit})")
    if req.val is not None and not (isinstance(req.val, (int, float)) and 0 <= req.val < 1):
        raise UsageError(f"--val must be a fraction within 0..1 (got {req.val})")
    if req.cores not in (None, 1, 2):
        raise UsageError(f"--cores must be 1 or 2 (got {req.cores})")
    if req.resume and req.force:
        raise UsageError("--resume continues the job in --out; --force moves it aside: give one of them")


def default_out(dataset: str, board: str) -> Path:
    """./runs/<dataset>-<board>-<date>-<time> (a name that does not exist yet)."""
    stem = f"{Path(dataset).name or 'data'}-{board}-{time.strftime('%Y%m%d-%H%M%S')}"
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", stem)
    out, n = Path("runs") / stem, 1
    while out.exists():
        n += 1
        out = Path("runs") / f"{stem}-{n}"
    return out.resolve()


def _check_out(out: Path) -> None:
    """--out must be creatable: a directory (or nothing yet) under a writable directory."""
    check_dir(out, "--out")


def data_digest(data: Dataset) -> str:
    h = hashlib.sha256()
    for a in (data.x_train, data.y_train, data.x_test, data.y_test):
        h.update(np.ascontiguousarray(a).tobytes())
        h.update(str(a.shape).encode())
    if data.labels:  # class names: renaming a class makes another job
        h.update(json.dumps(list(data.labels)).encode())
    return h.hexdigest()[:16]


def prepare(req: TrainRequest) -> Plan:
    """Every check that can fail on bad input, before anything is started or written."""
    _check_numbers(req)
    if req.out is not None and str(req.out).strip() == "":
        raise UsageError("--out must name a directory (got an empty string)")
    if req.resume and req.out is None:
        raise UsageError("--resume needs the --out directory of the job to continue")
    board = boards_mod.load(req.board)
    port = req.port
    if board.kind == "board" and not port:
        raise UsageError(f"board '{board.name}' is a real board: give --port (or use sim-{board.real})")
    if port and board.is_host:
        raise UsageError("--port is for boards: the host reference runs in this process")
    if port:
        from ..link.ports import resolve_port

        port = resolve_port(port, board)  # 'auto': the single port that looks like it
    data = load_dataset(req.dataset)
    if req.limit is not None:
        data = dataclasses.replace(data, x_train=data.x_train[: req.limit], y_train=data.y_train[: req.limit])
    weights = req.weights or DEFAULT_WEIGHTS.get(data.name, "binary2")
    if weights not in spec.KINDS:
        raise UsageError(f"--weights must be binary, binary2 or ternary (got {weights})")
    frac = VAL_FRACTION if req.val is None else float(req.val)
    tr, va = (
        stratified_split(data.y_train, VAL_SPLIT_SEED, frac)
        if frac > 0
        else (np.arange(len(data.y_train)), np.zeros(0, np.int64))
    )
    chosen, chosen_rule = "", {}
    if req.encoding is None and req.model is None and data.name not in DEFAULT_MODEL:
        choice = defaults.choose(data, data_digest(data), weights, board, tr, va, _log)
        enc_spec, model, chosen, chosen_rule = choice.encoding, choice.model, choice.how, choice.rule
    else:
        enc_spec, model = req.encoding or data.default_encoding, req.model or ""
        large = defaults.large_default(data, len(tr), weights, board) if not (req.encoding or req.model) else None
        if large:  # enough rows for the tuned set's larger model (hparams.LARGE_DEFAULT)
            enc_spec, model = large
    enc = parse_encoding(enc_spec, data.max_value, data.n_features)
    enc = enc.fit(data.x_train[tr], data.y_train[tr], data.n_classes)  # mi:PCT: on the training rows only
    n_in = enc.n_bits(data.n_features)
    if req.model is None and not model:  # tuned sets too: their model, shrunk to the board's plan
        model = defaults.model_for(data, n_in, weights, board, data.y_train[tr])
    sizes = parse_model(model, n_in, data.n_classes)
    rule = {**chosen_rule, **req.rule}  # --rule wins over what the defaults chose
    cfg = rule_config(data.name, sizes, weights, req.seed, data.n_classes, rule, len(tr))
    if req.cores is not None:
        cfg["cores"] = req.cores
    check_fits(sizes, weights, board, classes=data.n_classes, pool_rows=cfg.get("pool", {}).get("rows", 0))
    meter = meter_config(board)  # INA219/INA226 on the board: the device integrates its readings
    if meter:
        cfg["meter"] = meter
    job = {
        "dataset": data.name,
        "data": data_digest(data),
        "model": model,
        "weights": weights,
        "encoding": enc.spec,
        "seed": req.seed,
        "epochs": req.epochs,
        "eval_every": req.eval_every,
        "limit": req.limit,
        "val": frac,
        "rule": {k: v for k, v in cfg.items() if k not in ("id", "meter", "cores", "seed")},
    }
    cfg["id"] = hashlib.sha256(json.dumps(job, sort_keys=True).encode()).hexdigest()[:16]
    out = Path(req.out).expanduser().resolve() if req.out is not None else default_out(data.name, board.name)
    _check_out(out)
    rundir.check(out, job, resume=req.resume, force=req.force)  # read-only: refuses before anything is touched
    x_all = enc.pack(data.x_train)
    return Plan(
        req,
        board,
        data,
        enc,
        model,
        weights,
        sizes,
        cfg,
        job,
        x_all[tr],
        enc.pack(data.x_test),
        out,
        port,
        x_all[va],
        data.y_train[tr],
        data.y_train[va],
        tr,
        chosen,
    )


def _log(msg: str) -> None:
    print(f"bitflip: {msg}", file=sys.stderr, flush=True)
