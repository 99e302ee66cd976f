"""Canonical msgpack encoding and the field kinds objects are declared with.

An object encodes as one msgpack array: [type tag, version, field..., signature].
Only str, bin, int and arrays occur: no maps (free key order), no floats, no
ext types. A decoded value must re-encode to exactly the input bytes, so every
object has one encoding and one id on every platform.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgpack

from chain.errors import (
    DecodeError,
    FieldTypeError,
    FieldValueError,
    MalformedError,
    OversizeError,
    TrailingBytesError,
)

MAX_OBJECT_BYTES = 1_048_576  # no single object may exceed 1 MiB (blobs included)
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

Check = Callable[[str, str, Any], Any]


def pack(value: Any) -> bytes:
    return msgpack.packb(value, use_bin_type=True)


def unpack_array(data: bytes, max_bytes: int = MAX_OBJECT_BYTES) -> list[Any]:
    """Decode one msgpack array, refusing anything we never produce or anything after it."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise MalformedError(f"expected bytes, got {type(data).__name__}")
    if len(data) > max_bytes:
        raise OversizeError("encoded object", max_bytes, len(data))
    if len(data) == 0:
        raise MalformedError("empty input")
    try:
        value = msgpack.unpackb(
            bytes(data),
            raw=False,
            use_list=True,
            strict_map_key=True,
            max_map_len=0,
            max_ext_len=0,
            max_str_len=max_bytes,
            max_bin_len=max_bytes,
            max_array_len=100_000,
        )
    except msgpack.ExtraData as e:
        raise TrailingBytesError(len(e.extra)) from e
    except (ValueError, msgpack.UnpackException, TypeError, UnicodeDecodeError) as e:
        raise MalformedError(f"not a valid msgpack value: {e}") from e
    except RecursionError as e:
        raise MalformedError("nesting too deep") from e
    if not isinstance(value, list):
        raise MalformedError(f"expected an array, found {type(value).__name__}")
    return value


@dataclass(frozen=True, slots=True)
class Field:
    """One field of an object: its name, a check that validates (and may normalise) it."""

    name: str
    check: Check
    doc: str = ""


def text(max_len: int, pattern: str | None = None) -> Check:
    rx = re.compile(pattern) if pattern else None

    def check(type_name: str, field: str, value: Any) -> str:
        if type(value) is not str:
            raise FieldTypeError(type_name, field, "str", value)
        size = len(value.encode("utf-8", "surrogatepass"))
        if size > max_len:
            raise OversizeError(f"{type_name}.{field}", max_len, size)
        if rx is not None and not rx.fullmatch(value):
            raise FieldValueError(type_name, field, f"{value[:40]!r} does not match {pattern}")
        return value

    return check


def raw(size: int | None = None, max_len: int | None = None) -> Check:
    def check(type_name: str, field: str, value: Any) -> bytes:
        if type(value) is not bytes:
            raise FieldTypeError(type_name, field, "bytes", value)
        if size is not None and len(value) != size:
            raise FieldValueError(type_name, field, f"expected {size} bytes, found {len(value)}")
        if max_len is not None and len(value) > max_len:
            raise OversizeError(f"{type_name}.{field}", max_len, len(value))
        return value

    return check


def integer(lo: int = INT64_MIN, hi: int = INT64_MAX) -> Check:
    def check(type_name: str, field: str, value: Any) -> int:
        if type(value) is not int:  # bool is an int subclass: refused too
            raise FieldTypeError(type_name, field, "int", value)
        if not lo <= value <= hi:
            raise FieldValueError(type_name, field, f"{value} outside [{lo}, {hi}]")
        return value

    return check


def seq(item: Check, max_items: int, sorted_unique: bool = False) -> Check:
    def check(type_name: str, field: str, value: Any) -> tuple[Any, ...]:
        if type(value) not in (list, tuple):
            raise FieldTypeError(type_name, field, "array", value)
        if len(value) > max_items:
            raise OversizeError(f"{type_name}.{field}", max_items, len(value))
        try:
            items = tuple([item(type_name, field, v) for v in value])
        except DecodeError:
            for i, v in enumerate(value):  # slow path: raise again, naming the index
                item(type_name, f"{field}[{i}]", v)
            raise
        if sorted_unique and len(items) > 1 and any(a >= b for a, b in zip(items, items[1:], strict=False)):
            raise FieldValueError(type_name, field, "items must be sorted and unique")
        return items

    return check


def sorted_pairs(max_items: int, key_check: Check, value_check: Check, what: str, unsorted: str) -> Check:
    """A list of at most max_items [key, value] pairs, strictly sorted by key; `what` names a pair,
    `unsorted` says what is wrong when the keys are out of order or repeated."""

    def check(type_name: str, field: str, value: Any) -> tuple[tuple[Any, Any], ...]:
        if type(value) not in (list, tuple):
            raise FieldTypeError(type_name, field, "array", value)
        if len(value) > max_items:
            raise OversizeError(f"{type_name}.{field}", max_items, len(value))
        out = []
        for i, pair in enumerate(value):
            if type(pair) not in (list, tuple) or len(pair) != 2:
                raise FieldTypeError(type_name, f"{field}[{i}]", what, pair)
            out.append((key_check(type_name, f"{field}[{i}]", pair[0]),
                        value_check(type_name, f"{field}[{i}]", pair[1])))
        if any(a[0] >= b[0] for a, b in zip(out, out[1:], strict=False)):
            raise FieldValueError(type_name, field, unsorted)
        return tuple(out)

    return check


def pairs(max_items: int, max_len: int = 200) -> Check:
    """A sorted list of unique [key, value] string pairs (free-form settings, canonically ordered)."""
    return sorted_pairs(max_items, text(64, r"[a-z0-9_.\-]+"), text(max_len), "[key, value] pair",
                        "keys must be sorted and unique")


def to_wire(value: Any) -> Any:
    """Tuples (our immutable field values) as msgpack arrays.

    msgpack already packs tuples as arrays, so `pack` needs no conversion; this
    is for callers that want plain lists (JSON, display).
    """
    if isinstance(value, tuple):
        return [to_wire(v) for v in value]
    return value
