"""User files (`--dataset PATH`) -> Dataset, through dataset.build:
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
"""

from __future__ import annotations

import gzip
import re
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np

from ..errors import UsageError
from .dataset import Dataset, _labels, build, stratified_split
from .idx import read_idx

CSV_SPLIT_SEED = 0  # fixed: every method and every run sees the same split of a CSV file without a test sibling
CSV_TEST_FRACTION = 0.2
MAX_NPY_BYTES = 1 << 32  # per array; a bigger size field in a .npz is damage, not data


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
        raise UsageError(
            f"{d}: several {_IDX_ROLES[r][0]} files ({', '.join(p.name for p in ps)}); put one dataset per directory"
        )
    return {r: ps[0] for r, ps in found.items()}


def _idx_arrays(arrays: dict[str, np.ndarray], names: dict[str, str]) -> dict[str, np.ndarray]:
    """Shape checks across the four IDX arrays; `names` says which file each came from."""
    for r in ("x_train", "x_test"):
        if arrays[r].ndim not in (2, 3):
            raise UsageError(f"{names[r]}: images must be (N, H, W) or (N, F), got shape {arrays[r].shape}")
    if arrays["x_test"].shape[1:] != arrays["x_train"].shape[1:]:
        raise UsageError(
            f"{names['x_test']}: image shape {arrays['x_test'].shape[1:]} differs from the "
            f"training images' {arrays['x_train'].shape[1:]}"
        )
    for r in ("y_train", "y_test"):
        if arrays[r].ndim != 1:
            raise UsageError(f"{names[r]}: labels must be 1-D (N,), got shape {arrays[r].shape}")
    for x, y in (("x_train", "y_train"), ("x_test", "y_test")):
        if arrays[x].shape[0] != arrays[y].shape[0]:
            raise UsageError(
                f"{names[x]}: {arrays[x].shape[0]} images but {Path(names[y]).name} has {arrays[y].shape[0]} labels"
            )
    return arrays


def load_idx_dir(path: str | Path) -> Dataset:
    d = Path(path)
    files = _idx_files(d)
    a = _idx_arrays({r: read_idx(f) for r, f in files.items()}, {r: str(f) for r, f in files.items()})
    return build(d.name or str(d), a["x_train"], a["y_train"], a["x_test"], a["y_test"], str(d), f"IDX files in {d}")


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
_ZIP_DAMAGE = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    zlib.error,
    EOFError,
    struct.error,
    ValueError,
    NotImplementedError,
    RuntimeError,
    SyntaxError,
    TypeError,
    OverflowError,
)


def load_npz(path: str | Path) -> Dataset:
    p = Path(path)
    where = str(p)
    try:
        with zipfile.ZipFile(p) as zf:
            members = {n.removesuffix(".npy"): n for n in zf.namelist()}
            missing = [k for k in _NPZ_KEYS if k not in members]
            if missing:
                has = ", ".join(sorted(members)[:8]) or "nothing"
                raise UsageError(
                    f"{where}: missing array(s) {', '.join(missing)} (the file has {has}); "
                    "a .npz needs x_train, y_train, x_test, y_test"
                )
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
    return build(
        p.stem, arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"], where, f"npz file {p}"
    )


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
        raise UsageError(f"{where}: no data rows (label first, then features, separated by commas, semicolons or tabs)")
    first_line, first_row = rows[0]
    ncols = first_row.count(sep) + 1
    if header is not None and header[1].count(sep) + 1 != ncols:
        raise UsageError(
            f"{where}: the header (line {header[0]}) has {header[1].count(sep) + 1} fields, "
            f"line {first_line} has {ncols} (read as {how})"
        )
    if ncols < 2:
        raise UsageError(
            f"{where}: line {first_line} has 1 field; need a label column and feature columns "
            f"(read as {how}: separate them by commas, semicolons or tabs)"
        )
    for i, ln in rows:  # str.count is C-fast: an exact line number for ragged rows
        if ln.count(sep) + 1 != ncols:
            raise UsageError(
                f"{where}: line {i} has {ln.count(sep) + 1} fields, line {first_line} has {ncols} (read as {how})"
            )
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
                    raise UsageError(
                        f"{where}: line {i}, column {j}: '{f.strip()[:24]}' is not a number (read as {how})"
                    ) from None
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
        return build(name, x, y, xt, yt, f"{p} + {test.name}", f"CSV files {p} (train) and {test} (test)", labels=names)
    y8 = _labels(y, str(p), "the label column")
    tr, te = stratified_split(y8, CSV_SPLIT_SEED, CSV_TEST_FRACTION)
    if te.size == 0:
        raise UsageError(
            f"{p}: {len(y)} rows are too few to hold out a test split; add rows, or a test file "
            "next to it named like this one with 'test' for 'train'"
        )
    return build(
        name,
        x[tr],
        y[tr],
        x[te],
        y[te],
        str(p),
        f"CSV file {p}, stratified {1 - CSV_TEST_FRACTION:.0%}/{CSV_TEST_FRACTION:.0%} split, seed {CSV_SPLIT_SEED}",
        labels=names,
    )


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


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split())[:200] or type(e).__name__
