"""Small text helpers shared by the CLI commands: short ids, times, diffs."""

from __future__ import annotations

import datetime as dt
import difflib

import click

from chain.metrics import fmt_ubpb


def short(value: bytes | str, n: int = 12) -> str:
    text = value.hex() if isinstance(value, bytes) else value
    return text[:n]


def parse_key_hex(text: str) -> bytes:
    """A 32-byte public key given as 64 hex characters, or a clear error."""
    try:
        key = bytes.fromhex(text.strip())
    except ValueError as e:
        raise click.BadParameter(f"{text[:20]!r} is not hex") from e
    if len(key) != 32:
        raise click.BadParameter(f"a public key is 32 bytes (64 hex characters), got {len(key)}")
    return key


def when(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def bpb(ubpb: int | None) -> str:
    return "-" if ubpb is None else fmt_ubpb(ubpb)


def unified_diff(old: bytes, new: bytes, old_name: str = "parent/train.py",
                 new_name: str = "train.py") -> str:
    a = old.decode("utf-8", "replace").splitlines(keepends=True)
    b = new.decode("utf-8", "replace").splitlines(keepends=True)
    return "".join(difflib.unified_diff(a, b, old_name, new_name))
