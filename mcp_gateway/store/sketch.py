"""HyperLogLog sketches: how many distinct users or sessions, from 4 KiB per hour or day however many.

Counting distinct visitors over a month exactly means reading one row per visitor-day; a sketch per
day answers from thirty 4 KiB registers merged with `max`, within a standard error of
1.04/sqrt(4096) = 1.6% (small counts, under about 10,000, use linear counting and are near exact).
The hash is BLAKE2b, so sketches written by any process or machine merge.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from typing import Final

PRECISION: Final = 12
REGISTERS: Final = 1 << PRECISION
STANDARD_ERROR: Final = 1.04 / math.sqrt(REGISTERS)
_ALPHA: Final = 0.7213 / (1 + 1.079 / REGISTERS)
_REST_BITS: Final = 64 - PRECISION

EMPTY: Final = bytes(REGISTERS)
_INVERSE_POWERS: Final = tuple(2.0**-rank for rank in range(_REST_BITS + 2))
"""2**-rank for every rank a register can hold: a table look-up instead of a power per register."""


def position(item: str) -> tuple[int, int]:
    """The register `item` lands in and the rank it gives that register."""
    value = int.from_bytes(hashlib.blake2b(item.encode(), digest_size=8).digest(), "big")
    index = value >> _REST_BITS
    rest = value & ((1 << _REST_BITS) - 1)
    return index, _REST_BITS - rest.bit_length() + 1


def add(registers: bytes | bytearray, positions: Iterable[tuple[int, int]]) -> bytes:
    """`registers` with the items at `positions` (from `position`) added."""
    merged = bytearray(registers)
    for index, rank in positions:
        if rank > merged[index]:
            merged[index] = rank
    return bytes(merged)


_HIGH_BITS: Final = int.from_bytes(b"\x80" * REGISTERS, "big")
_ALL_BITS: Final = (1 << (8 * REGISTERS)) - 1


def merge(sketches: Iterable[bytes]) -> bytes:
    """The union of `sketches`: the register-wise maximum.

    Done on the registers as one big integer, eight bits a lane (SWAR): registers hold ranks of at
    most 53, so `(a | 0x80) - b` never borrows across lanes and its high bit says `a >= b`; a dozen
    big-integer operations instead of 4096 Python comparisons.
    """
    merged: int | None = None
    for registers in sketches:
        value = int.from_bytes(registers, "big")
        if merged is None:
            merged = value
            continue
        at_least = (((merged | _HIGH_BITS) - value) & _HIGH_BITS) >> 7
        keep = at_least * 0xFF
        merged = (merged & keep) | (value & (keep ^ _ALL_BITS))
    return EMPTY if merged is None else merged.to_bytes(REGISTERS, "big")


_SURELY_LINEAR: Final = _ALPHA * REGISTERS / 2.5
"""Empty registers from which linear counting surely applies: each adds 1 to the sum of 2**-rank, so the raw
estimate `_ALPHA * REGISTERS**2 / sum` is then at most 2.5 * REGISTERS (as it is for ~5,000 distinct items or fewer)."""


def estimate(registers: bytes) -> int:
    """The distinct count the registers estimate (linear counting while registers are empty enough)."""
    empty = registers.count(0)
    if empty == REGISTERS:
        return 0
    if empty >= _SURELY_LINEAR:  # the harmonic sum below is at least `empty`: no need to add 4096 terms
        return round(REGISTERS * math.log(REGISTERS / empty))
    raw = _ALPHA * REGISTERS * REGISTERS / sum(map(_INVERSE_POWERS.__getitem__, registers))
    if raw <= 2.5 * REGISTERS and empty:
        return round(REGISTERS * math.log(REGISTERS / empty))
    return round(raw)
