"""Run the exact armv6m machine code of a viper or asm_thumb function in unicorn.

Viper ABI (py/emitnative.c; notes/micropython.md §3.3, §6): r0 = function object, r1 = n_args,
r2 = n_kw, r3 = pointer to the argument objects. The code finds mp_fun_table through
fun->context (+4) -> obj_table (+12) and calls a few of its slots; those are stubbed here:

    0..2  mp_const_none/false/true   data words: addresses of fake singleton objects
    3     mp_native_from_obj(o, t)   small int -> its value; buffer object -> buffer address
    4     mp_native_to_obj(v, t)     records (v, t) and returns a handle
    44    mp_arg_check_num_sig       checks the count against the signature, as the VM would
    other                            EmuError naming the slot: the kernel needs the runtime

asm_thumb functions are plain AAPCS: arguments already converted (buffer -> address, int ->
value) in r0..r3, result in r0.

Guard rails a board has and unicorn lacks: unaligned 32/16-bit accesses fault on a Cortex-M0+,
so they fail here too; reads and writes in the data area must land inside an argument buffer
(catches an unrolled loop reading past the end of a row); every executed instruction must be
one that isa.check_thumb1 accepted.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TypeAlias

import numpy as np
from unicorn import (
    UC_ARCH_ARM,
    UC_HOOK_CODE,
    UC_HOOK_MEM_READ,
    UC_HOOK_MEM_WRITE,
    UC_MEM_WRITE,
    UC_MODE_MCLASS,
    UC_MODE_THUMB,
    Uc,
    UcError,
)
from unicorn import arm_const as R

from .isa import COND, Insn, decode_reachable
from .mpy import KIND_ASM, KIND_VIPER, FunTable, Mpy, RawCode

# address map (all below the Cortex-M peripheral area)
CODE = 0x0001_0000
STUBS = 0x0002_0000  # slot k of mp_fun_table points at STUBS + 4k, which holds `bx lr`
TABLES = 0x0003_0000  # fun object, module context, obj table, mp_fun_table, fake objects
RET = 0x0004_0000  # return address of the outer call: emulation stops there
DATA = 0x2000_0000
DATA_SIZE = 0x0020_0000
STACK_TOP = 0x3001_0000
STACK_SIZE = 0x0001_0000

FUN_OBJ, CONTEXT, OBJ_TABLE, QSTR_TABLE, FUN_TABLE = (TABLES + o for o in (0x000, 0x040, 0x080, 0x400, 0x800))
NONE_OBJ, FALSE_OBJ, TRUE_OBJ = TABLES + 0x1000, TABLES + 0x1010, TABLES + 0x1020
ARG_OBJS = TABLES + 0x2000  # fake objects standing for buffer / big-int arguments
RESULT_OBJS = TABLES + 0x4000  # handles returned by mp_native_to_obj
ARGV = TABLES + 0x6000  # the args[] array passed in r3
N_SLOTS = 96

# MP_NATIVE_TYPE_* (py/runtime0.h)
T_OBJ, T_BOOL, T_INT, T_UINT, T_PTR, T_PTR8, T_PTR16, T_PTR32 = range(8)
SLOT_NAMES = {
    3: "mp_native_from_obj",
    4: "mp_native_to_obj",
    5: "swap_globals",
    6: "load_name",
    7: "load_global",
    9: "load_attr",
    10: "load_method",
    15: "obj_subscr",
    16: "obj_is_true",
    17: "unary_op",
    18: "binary_op",
    19: "new_tuple",
    20: "new_list",
    27: "call_function_n_kw",
    28: "call_method_n_kw",
    30: "getiter",
    31: "iternext",
    32: "nlr_push",
    33: "nlr_pop",
    34: "raise",
    44: "mp_arg_check_num_sig",
    46: "small_int_floor_divide",
    47: "small_int_modulo",
}

Arg: TypeAlias = "np.ndarray | int"  # a buffer argument, or an int


class EmuError(Exception):
    """The code did something a run on the board would not survive (or that needs the
    MicroPython runtime, which is not here)."""


@dataclass
class Run:
    """One emulated call: its result and what it cost."""

    ret: object
    instructions: int  # executed in the function itself (not in the stubs)
    cycles: int  # by the model in isa.py
    mix: Counter[str] = field(default_factory=Counter)  # instructions per cost class
    # calls into the (stubbed) runtime, e.g. one mp_native_from_obj per typed argument: on a
    # board each costs tens to hundreds of cycles that the counts above do not include
    runtime_calls: int = 0


class _Session:
    """One unicorn instance set up for one call."""

    def __init__(self, code: bytes):
        self.insns: dict[int, Insn] = decode_reachable(code)  # raises IsaError on Thumb-2
        self.uc = Uc(UC_ARCH_ARM, UC_MODE_THUMB | UC_MODE_MCLASS)
        for base, size in (
            (CODE, 0x1_0000),
            (STUBS, 0x1_0000),
            (TABLES, 0x1_0000),
            (RET, 0x1000),
            (DATA, DATA_SIZE),
            (STACK_TOP - STACK_SIZE, STACK_SIZE),
        ):
            self.uc.mem_map(base, size)
        self.uc.mem_write(CODE, code)
        self.uc.mem_write(RET, b"\x00\xbe")  # bkpt: never reached, the run stops at RET
        self.code_end = CODE + len(code)
        self.buffers: list[tuple[int, int, np.ndarray]] = []
        self.next_data = DATA + 64
        self.error: str | None = None
        self.n = 0
        self.cycles = 0
        self.mix: Counter[str] = Counter()
        self.pending_fallthrough = -1
        self.uc.hook_add(UC_HOOK_CODE, self._on_insn, begin=CODE, end=self.code_end - 1)
        self.uc.hook_add(UC_HOOK_MEM_READ | UC_HOOK_MEM_WRITE, self._on_mem)

    # -- arguments -----------------------------------------------------------------------
    def place(self, a: np.ndarray) -> int:
        """Copy a buffer into data memory, 16-byte aligned (as a GC heap block is) with a gap
        after it so an overrun hits no other buffer."""
        raw = np.ascontiguousarray(a).tobytes()
        addr = self.next_data
        if addr + len(raw) + 64 > DATA + DATA_SIZE:
            raise EmuError("arguments do not fit the emulated data area")
        self.uc.mem_write(addr, raw)
        self.buffers.append((addr, addr + len(raw), a))
        self.next_data = (addr + len(raw) + 64 + 15) & ~15
        return addr

    def copy_back(self) -> None:
        for start, end, a in self.buffers:
            if a.flags.writeable:
                a[...] = np.frombuffer(bytes(self.uc.mem_read(start, end - start)), dtype=a.dtype).reshape(a.shape)

    # -- hooks ----------------------------------------------------------------------------
    def _fail(self, msg: str) -> None:
        if self.error is None:
            self.error = msg
        self.uc.emu_stop()

    def _on_insn(self, uc: Uc, addr: int, size: int, _: object) -> None:
        ins = self.insns.get(addr - CODE)
        if ins is None:
            self._fail(f"executed an instruction the static check never reached: +{addr - CODE:#x}")
            return
        self.n += 1
        self.cycles += ins.cycles
        self.mix[ins.cls] += 1
        if self.pending_fallthrough >= 0:
            if addr != self.pending_fallthrough:
                self.cycles += 1  # the previous conditional branch was taken
            self.pending_fallthrough = -1
        if ins.cls == COND:
            self.pending_fallthrough = addr + size

    def _on_mem(self, uc: Uc, access: int, addr: int, size: int, value: int, _: object) -> None:
        if addr % size:
            self._fail(
                f"unaligned {size}-byte access at {addr:#x} (HardFault on a Cortex-M0+), "
                f"pc=+{uc.reg_read(R.UC_ARM_REG_PC) - CODE:#x}"
            )
        elif DATA <= addr < DATA + DATA_SIZE and not any(s <= addr and addr + size <= e for s, e, _ in self.buffers):
            kind = "write" if access == UC_MEM_WRITE else "read"
            self._fail(
                f"{kind} outside every argument buffer at {addr:#x}, pc=+{uc.reg_read(R.UC_ARM_REG_PC) - CODE:#x}"
            )

    # -- running -------------------------------------------------------------------------
    def call(self, regs: Sequence[int], max_instructions: int) -> int:
        uc = self.uc
        for reg, v in zip((R.UC_ARM_REG_R0, R.UC_ARM_REG_R1, R.UC_ARM_REG_R2, R.UC_ARM_REG_R3), regs):
            uc.reg_write(reg, v & 0xFFFFFFFF)
        uc.reg_write(R.UC_ARM_REG_SP, STACK_TOP - 64)
        uc.reg_write(R.UC_ARM_REG_LR, RET | 1)
        try:
            uc.emu_start(CODE | 1, RET, count=max_instructions)
        except UcError as e:
            pc = uc.reg_read(R.UC_ARM_REG_PC)
            raise EmuError(f"{self.error or e} (pc={pc:#x}, +{pc - CODE:#x})") from None
        if self.error:
            raise EmuError(self.error)
        pc = uc.reg_read(R.UC_ARM_REG_PC)
        if pc != RET:
            raise EmuError(f"stopped at pc={pc:#x} before returning (instruction limit {max_instructions}?)")
        return uc.reg_read(R.UC_ARM_REG_R0)


class _ViperRuntime:
    """The slice of the MicroPython runtime a viper function touches."""

    def __init__(self, s: _Session, mpy: Mpy):
        self.s = s
        self.objs: dict[int, tuple[bool, int]] = {}  # fake object -> (is a buffer, address or int value)
        self.results: dict[int, tuple[int, int]] = {}
        self.calls = 0
        uc = s.uc
        uc.mem_write(FUN_OBJ, _words([0, CONTEXT, 0, CODE]))
        uc.mem_write(CONTEXT, _words([0, 0, QSTR_TABLE, OBJ_TABLE]))
        uc.mem_write(QSTR_TABLE, bytes(2 * max(1, len(mpy.qstrs))))
        table = [FUN_TABLE if isinstance(o, FunTable) else TABLES + 0x3000 + 16 * i for i, o in enumerate(mpy.objs)]
        uc.mem_write(OBJ_TABLE, _words(table))
        slots = [NONE_OBJ, FALSE_OBJ, TRUE_OBJ] + [STUBS + 4 * k + 1 for k in range(3, N_SLOTS)]
        uc.mem_write(FUN_TABLE, _words(slots))
        uc.mem_write(STUBS, b"\x70\x47" * (2 * N_SLOTS))  # bx lr
        uc.hook_add(UC_HOOK_CODE, self._on_stub, begin=STUBS, end=STUBS + 4 * N_SLOTS - 1)

    def arg_obj(self, a: Arg, i: int) -> int:
        if isinstance(a, np.ndarray):
            obj = ARG_OBJS + 16 * i
            self.objs[obj] = (True, self.s.place(a))
            return obj
        v = int(a)
        if -(1 << 30) <= v < (1 << 30):
            return ((v << 1) | 1) & 0xFFFFFFFF  # small int, tagged as MicroPython does
        obj = ARG_OBJS + 16 * i  # a long int object: from_obj truncates it
        self.objs[obj] = (False, v & 0xFFFFFFFF)
        return obj

    def _on_stub(self, uc: Uc, addr: int, size: int, _: object) -> None:
        slot = (addr - STUBS) // 4
        self.calls += 1
        r0, r1, r2 = (uc.reg_read(r) for r in (R.UC_ARM_REG_R0, R.UC_ARM_REG_R1, R.UC_ARM_REG_R2))
        if slot == 3:
            ret = self._from_obj(r0, r1)
        elif slot == 4:
            handle = RESULT_OBJS + 16 * len(self.results)
            self.results[handle] = (r0, r1)
            ret = handle
        elif slot == 44:
            lo, hi = r2 >> 17, (r2 >> 1) & 0xFFFF
            if r1 or not lo <= r0 <= hi:
                self.s._fail(f"TypeError: called with {r0} positional + {r1} keyword args, takes {lo}..{hi}")
            ret = 0
        else:
            self.s._fail(
                f"code called mp_fun_table[{slot}] ({SLOT_NAMES.get(slot, '?')}): not stubbed, "
                f"this kernel needs the MicroPython runtime"
            )
            return
        uc.reg_write(R.UC_ARM_REG_R0, ret & 0xFFFFFFFF)

    def _from_obj(self, obj: int, typ: int) -> int:
        if obj & 1:  # small int
            v = (obj >> 1) | (-(1 << 31) if obj & 0x8000_0000 else 0)
            if typ >= T_PTR:
                self.s._fail("small int passed where the kernel wants a pointer")
            return v
        if obj not in self.objs:
            self.s._fail(f"mp_native_from_obj on an unknown object {obj:#x}")
            return 0
        is_buf, v = self.objs[obj]
        if is_buf != (typ >= T_PTR):
            self.s._fail(f"argument {obj:#x}: {'buffer' if is_buf else 'int'} passed for native type {typ}")
        return v

    def decode(self, r0: int) -> object:
        if r0 == NONE_OBJ:
            return None
        if r0 in (FALSE_OBJ, TRUE_OBJ):
            return r0 == TRUE_OBJ
        if r0 in self.results:
            v, typ = self.results[r0]
            if typ == T_UINT:
                return v
            if typ == T_BOOL:
                return bool(v)
            return v - (1 << 32) if v & 0x8000_0000 else v  # int (and ptr) come back signed
        if r0 & 1:
            return (r0 >> 1) - ((r0 >> 31) << 31)
        raise EmuError(f"function returned an object this harness does not know: {r0:#x}")


def _words(ws: Sequence[int]) -> bytes:
    return np.asarray(ws, dtype=np.uint64).astype(np.uint32).tobytes()


def run_function(mpy: Mpy, rc: RawCode, args: Sequence[Arg], max_instructions: int = 5_000_000) -> Run:
    """Call a viper or asm_thumb function on `args` (numpy arrays are passed as buffers and
    updated in place, ints as ints). Returns the result and its instruction/cycle counts."""
    s = _Session(rc.code)
    calls = 0
    if rc.kind == KIND_VIPER:
        rt = _ViperRuntime(s, mpy)
        argv = [rt.arg_obj(a, i) for i, a in enumerate(args)]
        s.uc.mem_write(ARGV, _words(argv or [0]))
        r0 = s.call([FUN_OBJ, len(args), 0, ARGV], max_instructions)
        ret = rt.decode(r0)
        calls = rt.calls
    elif rc.kind == KIND_ASM:
        if len(args) > 4:
            raise EmuError("asm_thumb functions take at most 4 arguments")
        regs = [s.place(a) if isinstance(a, np.ndarray) else int(a) for a in args]
        r0 = s.call(regs, max_instructions)
        ret = r0 - (1 << 32) if r0 & 0x8000_0000 else r0  # default asm_thumb return type: int
    else:
        raise EmuError(f"can only run viper or asm_thumb code, not {rc.kind_name}")
    s.copy_back()
    return Run(ret=ret, instructions=s.n, cycles=s.cycles, mix=s.mix, runtime_calls=calls)
