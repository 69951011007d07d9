"""Which variant a visitor sees: a hash of the experiment id and the visitor id, so the same visitor always gets
the same variant (sticky, on any device that keeps the id), without storing anything, and the split is honoured
over many visitors.

The hash is 32-bit FNV-1a of `"<experiment id>:<visitor id>"` in UTF-8, mixed by MurmurHash3's finaliser
(`fmix32`: FNV-1a alone leaves the high bits of ids that differ only in their last characters, `visitor-1`,
`visitor-2`, ..., correlated, which skewed a 50/30/20 split to 51/31/18), read as a point in [0, 1) of the total
weight; the variant is the first whose running sum of weights passes it. `tracker.js` computes the same thing
in the browser (its `assign`), in the same order of floating-point operations, so both agree to the bit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

FNV_OFFSET: Final = 0x811C9DC5
FNV_PRIME: Final = 0x01000193


def fnv1a_32(text: str) -> int:
    """32-bit FNV-1a of `text`'s UTF-8 bytes."""
    value = FNV_OFFSET
    for byte in text.encode():
        value = ((value ^ byte) * FNV_PRIME) & 0xFFFFFFFF
    return value


def fmix32(value: int) -> int:
    """MurmurHash3's 32-bit finaliser: every input bit flips each output bit with probability ~1/2."""
    value ^= value >> 16
    value = (value * 0x85EBCA6B) & 0xFFFFFFFF
    value ^= value >> 13
    value = (value * 0xC2B2AE35) & 0xFFFFFFFF
    return value ^ (value >> 16)


def assign(experiment_id: str, visitor_id: str, variants: Sequence[str], weights: Sequence[float]) -> str:
    """The variant `visitor_id` sees in the experiment (weights positive, one per variant)."""
    point = fmix32(fnv1a_32(f"{experiment_id}:{visitor_id}")) / 4294967296 * sum(weights)
    running = 0.0
    for variant, weight in zip(variants, weights, strict=True):
        running += weight
        if point < running:
            return variant
    return variants[-1]
