"""The instrumented copy of the firmware package that bitflip.armv6m.trace runs: each module's
source transformed with `ast` (counter increments before statements and at function entries,
a counting shim around every call expression, native functions wrapped by a recorder), never
the firmware itself; the counters are trace_runtime.RUNTIME, written into the copy.
"""

from __future__ import annotations

import ast
from pathlib import Path

from .targets import FIRMWARE
from .trace_runtime import RUNTIME, SYNC_WORKER

NATIVE_DECORATORS = ("micropython.viper", "micropython.native", "micropython.asm_thumb")
# the loop of Trainer.train_block: one sample per iteration
SAMPLE_LOOPS = {
    ("rule", "Trainer.train_block"),
    ("rule", "Trainer.eval_block"),
    ("fast", "Fast.train_block"),
    ("fast", "Fast.eval_block"),
}
# the synchronous worker (trace_runtime.SYNC_WORKER), instrumented like the firmware:
NO_ENTRY = {"_trace_loop_body"}  # its body is the loop's, not a call on the board
# trace machinery around the real dual.Worker.start / wait: not counted (what they call is)
UNCOUNTED = {("_tracew", "SyncWorker.__init__"), ("_tracew", "SyncWorker.start"), ("_tracew", "SyncWorker.wait")}


def _decorated_native(node: ast.FunctionDef) -> bool:
    return any(ast.unparse(d) in NATIVE_DECORATORS for d in node.decorator_list)


_OP_NODES = (
    ast.Name,
    ast.Attribute,
    ast.Subscript,
    ast.BinOp,
    ast.UnaryOp,
    ast.Compare,
    ast.Call,
    ast.Constant,
    ast.BoolOp,
    ast.IfExp,
    ast.Tuple,
    ast.List,
    ast.Dict,
)


def ops_weight(stmt: ast.stmt) -> int:
    """Expression nodes of a statement itself (not of the statements nested in it): the
    statement's bytecode ops, roughly (each load, attribute, subscript, operator, call,
    constant and store is about one op)."""
    own: list[ast.AST] = []
    for name, value in ast.iter_fields(stmt):
        if name in ("body", "orelse", "finalbody", "handlers", "decorator_list"):
            continue
        if isinstance(value, list):
            own += [v for v in value if isinstance(v, ast.AST)]
        elif isinstance(value, ast.AST):
            own.append(value)
    n = 0
    for top in own:
        for node in ast.walk(top):
            if isinstance(node, (ast.Lambda, ast.ListComp, ast.GeneratorExp, ast.DictComp, ast.SetComp)):
                n += 1
                continue
            if isinstance(node, _OP_NODES):
                n += 1
    return max(n, 1)


def _counter(fn: str, *args: ast.expr) -> ast.stmt:
    return ast.Expr(ast.Call(ast.Attribute(ast.Name("_T", ast.Load()), fn, ast.Load()), list(args), []))


class _WrapCalls(ast.NodeTransformer):
    """f(args) -> _T.call(f)(args) in one function's own code (nested defs are left to their
    own pass)."""

    def visit_Call(self, node: ast.Call) -> ast.AST:
        self.generic_visit(node)
        shim = ast.Call(ast.Attribute(ast.Name("_T", ast.Load()), "call", ast.Load()), [node.func], [])
        return ast.Call(shim, node.args, node.keywords)

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.AST:
        return node

    def visit_ClassDef(self, node: ast.ClassDef) -> ast.AST:
        return node


_SKIP = (ast.Global, ast.Nonlocal, ast.Pass)
_BODIES = ("body", "orelse", "finalbody")


FUNCTIONS: list[str] = []  # function id -> "module.Qual.name" (ids are global over one package)


def _fid(name: str) -> int:
    if name not in FUNCTIONS:
        FUNCTIONS.append(name)
    return FUNCTIONS.index(name)


def _count_block(stmts: list[ast.stmt], fid: int, loop_body: bool = False) -> list[ast.stmt]:
    out: list[ast.stmt] = []
    f = ast.Constant(fid)
    if loop_body:  # the loop header, once per iteration
        out.append(_counter("st", ast.Constant(2), f))
    for s in stmts:
        if isinstance(s, ast.FunctionDef | ast.ClassDef):
            out.append(s)
            continue
        if not isinstance(s, _SKIP):
            out.append(_counter("st", ast.Constant(ops_weight(s)), f))
        _count_children(s, fid)
        out.append(s)
    return out or [ast.Pass()]


def _count_children(s: ast.stmt, fid: int) -> None:
    for name in _BODIES:
        body = getattr(s, name, None)
        if not isinstance(body, list) or not body:
            continue
        setattr(s, name, _count_block(body, fid, loop_body=name == "body" and isinstance(s, ast.For | ast.While)))
    if isinstance(s, ast.Try):
        for h in s.handlers:
            h.body = _count_block(h.body, fid)


class _Instrument(ast.NodeTransformer):
    def __init__(self, module: str):
        self.module = module
        self.scope: list[str] = []
        self.natives: list[str] = []

    def visit_ClassDef(self, node: ast.ClassDef) -> ast.AST:
        self.scope.append(node.name)
        node.body = [self.visit(n) if isinstance(n, ast.FunctionDef | ast.ClassDef) else n for n in node.body]
        self.scope.pop()
        return node

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.AST:
        if _decorated_native(node):
            if not self.scope:
                self.natives.append(node.name)
            return node
        qual = ".".join([*self.scope, node.name])
        if (self.module, qual) in UNCOUNTED:
            return node
        for stmt in node.body:  # this function's own calls first, then its nested defs
            _WrapCalls().visit(stmt)
        self.scope.append(node.name)
        node.body = [self.visit(n) if isinstance(n, ast.FunctionDef | ast.ClassDef) else n for n in node.body]
        self.scope.pop()
        body = _count_block(node.body, _fid(f"{self.module}.{qual}"))
        if (self.module, qual) in SAMPLE_LOOPS:  # mark the iterations of its first for loop
            for s in body:
                if isinstance(s, ast.For):
                    s.body = [_counter("sample"), *s.body]
                    break
        head = [] if node.name in NO_ENTRY else [_counter("fn")]
        node.body = head + body
        return node


def instrument(module: str, source: str) -> str:
    """The module's source with counters (see the module docstring); native functions are
    kept as they are and re-bound to a recorder right after their definition."""
    tree = ast.parse(source)
    ins = _Instrument(module)
    body: list[ast.stmt] = []
    for node in tree.body:
        new = ins.visit(node)
        body.append(new)
        if isinstance(node, ast.FunctionDef) and node.name in ins.natives:
            body.append(ast.parse(f"{node.name} = _T.native({node.name!r}, {node.name})").body[0])
    # the import goes after a module docstring / __future__ imports (there are none) at the top
    imp = ast.parse("from . import _trace as _T").body[0]
    tree.body = [imp, *body]
    ast.fix_missing_locations(tree)
    return ast.unparse(tree) + "\n"


def traced_package(tmp: Path, src: Path = FIRMWARE) -> tuple[Path, list[str]]:
    """An instrumented rp2 copy of the firmware package under tmp; returns the sys.path root
    and the function names of the statement counters' ids."""
    from .targets import asm_standins

    FUNCTIONS.clear()
    root = tmp / "lib"
    pkg = root / "bitflip"
    pkg.mkdir(parents=True)
    for f in sorted(src.glob("*.py")):
        text = f.read_text()
        if f.stem == "__init__":
            (pkg / f.name).write_text(text)
            continue
        text = instrument(f.stem, text)
        if f.stem == "kernels_thumb":
            text = asm_standins(text)  # after instrumenting: the asm functions were wrapped as natives
        (pkg / f.name).write_text(text)
    (pkg / "_trace.py").write_text(RUNTIME)
    (pkg / "_tracew.py").write_text(instrument("_tracew", SYNC_WORKER))
    return root, list(FUNCTIONS)
