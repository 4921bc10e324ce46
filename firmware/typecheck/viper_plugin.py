"""mypy plugin: what a call to a viper function accepts.

Inside an @micropython.viper function a parameter annotated ptr8/ptr16/ptr32 is a raw
pointer (ptrN in the MicroPython stubs' builtins: subscriptable, an int). At the call,
MicroPython makes that pointer from the argument: an int address or any object with the
buffer protocol (bytearray, array, memoryview, bytes). This plugin widens such parameters,
at every call site, to what the stubs' own `ptr(value)` constructor accepts, so
`K.dense_binary(x_bytes, w_array, out, ...)` is fine and `K.dense_binary(x_list, ...)` or a
missing argument is still an error. Nothing else changes.
"""

from __future__ import annotations

from collections.abc import Callable

from mypy.plugin import FunctionSigContext, Plugin
from mypy.types import CallableType, Instance, Type, UnionType, get_proper_type

POINTERS = frozenset({"builtins.ptr8", "builtins.ptr16", "builtins.ptr32"})


def _pointer(t: Type) -> Instance | None:
    p = get_proper_type(t)
    return p if isinstance(p, Instance) and p.type.fullname in POINTERS else None


def _made_from(ptr: Instance) -> Type | None:
    """The type of `value` in the stubs' `ptr.__new__(cls, value)`."""
    node = ptr.type.get("__new__")
    sig = get_proper_type(getattr(node.node, "type", None)) if node is not None else None
    if isinstance(sig, CallableType) and len(sig.arg_types) >= 2:
        return sig.arg_types[1]
    return None


def widen_pointers(ctx: FunctionSigContext) -> CallableType:
    sig = ctx.default_signature
    if not any(_pointer(t) for t in sig.arg_types):
        return sig
    args: list[Type] = []
    for t in sig.arg_types:
        ptr = _pointer(t)
        source = _made_from(ptr) if ptr is not None else None
        args.append(UnionType.make_union([t, source]) if source is not None else t)
    return sig.copy_modified(arg_types=args)


class ViperPlugin(Plugin):
    def get_function_signature_hook(self, fullname: str) -> Callable[[FunctionSigContext], CallableType] | None:
        return widen_pointers


def plugin(version: str) -> type[Plugin]:
    return ViperPlugin
