"""What a Cortex-M0+ can execute, and what each instruction costs on an RP2040.

Unicorn's Cortex-M0 model happily executes Thumb-2 (a `movw` runs), so "it ran in the
emulator" proves nothing about a real M0+. `check_thumb1` walks every instruction reachable
from the entry point (following branches, so inline literal words after a `b` are not decoded
as code) and accepts only ARMv6-M encodings: 16-bit Thumb minus CBZ/CBNZ/IT, plus the few
32-bit ones ARMv6-M has (BL, DMB, DSB, ISB, MRS, MSR).

Cycle model (Cortex-M0+ TRM r0p1 "Instruction set summary", RP2040 datasheet §2.4: the
RP2040 build has the single-cycle multiplier). Zero-wait-state memory is assumed: native code
runs from SRAM (the GC heap) on rp2, and bus contention with the other core or DMA is ignored.

    ALU, MOV, MULS, CMP, shifts, extend, REV, NOP      1
    LDR*/STR* (any addressing mode, incl. literal)    2
    LDM/STM/PUSH/POP                                  1 + N registers
    POP {.., pc}                                      3 + N   (a load plus a branch)
    B<cond>                                           1 not taken, 2 taken
    B                                                 2
    BL                                                3
    BX, BLX (register), MOV/ADD with pc destination   2
    DMB, DSB, ISB, MRS, MSR                           3
"""

from __future__ import annotations

from dataclasses import dataclass

import capstone
from capstone import arm_const as A

COND_BRANCHES = frozenset(
    f"b{c}" for c in ("eq", "ne", "hs", "cs", "lo", "cc", "mi", "pl", "vs", "vc", "hi", "ls", "ge", "lt", "gt", "le")
)

# 16-bit ARMv6-M instructions as capstone names them. Absent on purpose: cbz, cbnz, it* (ARMv7-M).
THUMB1_16 = (
    frozenset(
        (
            "adcs",
            "add",
            "adds",
            "adr",
            "ands",
            "asrs",
            "b",
            "bic",
            "bics",
            "bkpt",
            "bl",
            "blx",
            "bx",
            "cmn",
            "cmp",
            "cpsid",
            "cpsie",
            "eors",
            "ldm",
            "ldmia",
            "ldr",
            "ldrb",
            "ldrh",
            "ldrsb",
            "ldrsh",
            "lsls",
            "lsrs",
            "mov",
            "movs",
            "muls",
            "mvns",
            "neg",
            "negs",
            "nop",
            "orrs",
            "pop",
            "push",
            "rev",
            "rev16",
            "revsh",
            "rors",
            "rsbs",
            "sbcs",
            "sev",
            "stm",
            "stmia",
            "str",
            "strb",
            "strh",
            "sub",
            "subs",
            "svc",
            "sxtb",
            "sxth",
            "tst",
            "udf",
            "uxtb",
            "uxth",
            "wfe",
            "wfi",
            "yield",
        )
    )
    | COND_BRANCHES
)
THUMB1_32 = frozenset(("bl", "dmb", "dsb", "isb", "mrs", "msr"))

# cost classes: the hook only needs (base cycles, is conditional branch)
ALU, LDST, MULTI, BRANCH, COND, CALL, OTHER = "alu", "ldst", "ldm/stm", "branch", "bcond", "call", "other"


class IsaError(Exception):
    """Code that a Cortex-M0+ cannot run."""


@dataclass(frozen=True)
class Insn:
    addr: int
    size: int
    mnemonic: str
    op_str: str
    cls: str
    cycles: int  # base cost; a taken conditional branch adds 1

    def __str__(self) -> str:
        return f"+{self.addr:#06x}  {self.mnemonic} {self.op_str}"


def _disassembler() -> capstone.Cs:
    md = capstone.Cs(capstone.CS_ARCH_ARM, capstone.CS_MODE_THUMB | capstone.CS_MODE_MCLASS)
    md.detail = True
    return md


def _writes_pc(i: capstone.CsInsn) -> bool:
    ops = i.operands
    return bool(ops) and ops[0].type == A.ARM_OP_REG and ops[0].reg == A.ARM_REG_PC


def _classify(i: capstone.CsInsn) -> tuple[str, int]:
    m = i.mnemonic
    if m in ("push", "pop", "ldm", "ldmia", "stm", "stmia"):
        regs = [o.reg for o in i.operands if o.type == A.ARM_OP_REG]
        if m in ("ldm", "ldmia", "stm", "stmia"):
            regs = regs[1:]  # first operand is the base register
        if m == "pop" and A.ARM_REG_PC in regs:
            return BRANCH, 3 + len(regs)
        return MULTI, 1 + len(regs)
    if m.startswith(("ldr", "str")):
        return LDST, 2
    if m in COND_BRANCHES:
        return COND, 1
    if m == "b":
        return BRANCH, 2
    if m == "bl":
        return CALL, 3
    if m in ("bx", "blx"):
        return (CALL if m == "blx" else BRANCH), 2
    if m in ("dmb", "dsb", "isb", "mrs", "msr"):
        return OTHER, 3
    if m in ("mov", "add") and _writes_pc(i):
        return BRANCH, 2
    return ALU, 1


def _successors(i: capstone.CsInsn, code_len: int) -> list[int]:
    m, nxt = i.mnemonic, i.address + i.size
    target = [o.imm for o in i.operands if o.type == A.ARM_OP_IMM]
    if m == "b":
        return target[:1]
    if m in COND_BRANCHES or m == "bl":
        return target[:1] + [nxt]
    if m in ("bx", "bkpt", "udf") or (m == "pop" and "pc" in i.op_str) or (m in ("mov", "add") and _writes_pc(i)):
        return []  # return or indirect jump: nothing statically known follows
    return [nxt]


def decode_reachable(code: bytes, entry: int = 0) -> dict[int, Insn]:
    """Every instruction reachable from `entry`, by address; raises IsaError on the first
    encoding a Cortex-M0+ does not have."""
    md = _disassembler()
    seen: dict[int, Insn] = {}
    todo = [entry]
    while todo:
        addr = todo.pop()
        if addr in seen:
            continue
        if not 0 <= addr < len(code) or addr & 1:
            raise IsaError(f"control flow leaves the code: +{addr:#x}")
        got = list(md.disasm(code[addr : addr + 4], addr, count=1))
        if not got:
            raise IsaError(f"undecodable instruction at +{addr:#x}: {code[addr : addr + 4].hex()}")
        i = got[0]
        ok = THUMB1_16 if i.size == 2 else THUMB1_32
        if i.mnemonic not in ok:
            raise IsaError(
                f"not an ARMv6-M (Cortex-M0+) instruction: +{addr:#06x} {i.mnemonic} {i.op_str} ({i.size * 8}-bit)"
            )
        cls, cyc = _classify(i)
        seen[addr] = Insn(addr, i.size, i.mnemonic, i.op_str, cls, cyc)
        todo.extend(_successors(i, len(code)))
    return seen


def check_thumb1(code: bytes) -> int:
    """Raise IsaError unless all reachable code is ARMv6-M; returns the instruction count."""
    return len(decode_reachable(code))


def listing(code: bytes) -> str:
    """Reachable instructions in address order (for reading what mpy-cross made)."""
    return "\n".join(str(i) for _, i in sorted(decode_reachable(code).items()))
