"""Metrics as integers: val_bpb in micro-bits per byte, so signed payloads hold no floats."""

from __future__ import annotations

import math

UBPB_PER_BPB = 1_000_000


def to_ubpb(bpb: float) -> int:
    """Round a bits-per-byte value to integer micro-bits."""
    if not math.isfinite(bpb):
        raise ValueError(f"metric must be finite, got {bpb}")
    return int(round(bpb * UBPB_PER_BPB))


def fmt_ubpb(ubpb: int, signed: bool = False) -> str:
    """Exact decimal text of a micro-bit value: 723456 -> '0.723456'."""
    sign = "-" if ubpb < 0 else ("+" if signed and ubpb > 0 else "")
    whole, frac = divmod(abs(ubpb), UBPB_PER_BPB)
    return f"{sign}{whole}.{frac:06d}"
