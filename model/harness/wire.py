"""The pipe protocol between the trusted parent and the untrusted worker.

A frame is an 8-byte header (4-byte ASCII tag, little-endian uint32 payload
length) and the payload. Payloads are raw little-endian numbers, never
pickles: the parent parses what the worker sends with fixed struct formats
and checked lengths, so a hostile script can at worst make its own run fail.

Parent -> worker: CONF (JSON settings), GOGO (to the trainer, after HELO:
the parent's CPU clock is started, import the script), BTCH (uint8 tokens, B x (T+1)),
STOP (the feed is closed), EVAL (<II B, L> + uint8 tokens B x L), DONE,
MODB (to a fresh evaluation worker: the model bytes the training worker sent).
Worker -> parent: HELO (torch imported, before the script is
touched: a failure before it is the environment's, not the script's), REDY (script imported), NEXT (<II B, T>: a training batch
please), MODL (<Q parameter count> + the model as torch.save
bytes, opaque to the parent), LOGT
(<III B, L, V> + float32 logits), FAIL (slug, newline, UTF-8 text).

This module is imported on both sides; it needs only the standard library.
"""

from __future__ import annotations

import os
import select
import struct
import time

HEADER = struct.Struct("<4sI")
SHAPE2 = struct.Struct("<II")
SHAPE3 = struct.Struct("<III")
COUNT = struct.Struct("<Q")

CONF, BTCH, STOP, EVAL, DONE, MODB = b"CONF", b"BTCH", b"STOP", b"EVAL", b"DONE", b"MODB"
GOGO = b"GOGO"
HELO, REDY, NEXT, MODL, LOGT, FAIL = b"HELO", b"REDY", b"NEXT", b"MODL", b"LOGT", b"FAIL"

MAX_FAIL_BYTES = 16 * 1024


class WireError(Exception):
    """The peer broke the protocol (unknown tag, oversized or short frame)."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


class PeerClosed(WireError):  # noqa: N818 - an end-of-stream signal
    def __init__(self) -> None:
        super().__init__("the other side closed the pipe")


class Deadline(WireError):  # noqa: N818 - a control-flow signal
    def __init__(self) -> None:
        super().__init__("deadline passed")


# -- blocking side (the worker) ---------------------------------------------

def send(fd: int, tag: bytes, payload: bytes = b"") -> None:
    data = HEADER.pack(tag, len(payload)) + payload
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def recv(fd: int) -> tuple[bytes, bytes]:
    tag, n = HEADER.unpack(_read_blocking(fd, HEADER.size))
    return tag, _read_blocking(fd, n)


def _read_blocking(fd: int, n: int) -> bytes:
    parts: list[bytes] = []
    while n:
        chunk = os.read(fd, min(n, 1 << 20))
        if not chunk:
            raise PeerClosed()
        parts.append(chunk)
        n -= len(chunk)
    return b"".join(parts)


# -- deadline side (the parent) ---------------------------------------------

def send_by(fd: int, tag: bytes, payload: bytes, deadline: float) -> None:
    """Write a frame to a non-blocking fd, giving up at `deadline` (time.monotonic)."""
    view = memoryview(HEADER.pack(tag, len(payload)) + payload)
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    while view:
        _wait(poller, deadline)
        try:
            n = os.write(fd, view[: 1 << 16])
        except BlockingIOError:
            continue
        except BrokenPipeError as e:
            raise PeerClosed() from e
        view = view[n:]


def recv_by(fd: int, deadline: float, limits: dict[bytes, int]) -> tuple[bytes, bytes]:
    """Read one frame from a non-blocking fd; `limits` maps each allowed tag to its max size."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    tag, n = HEADER.unpack(_read_by(fd, HEADER.size, poller, deadline))
    if tag not in limits:
        raise WireError(f"unexpected frame {tag!r}")
    if n > limits[tag]:
        raise WireError(f"frame {tag!r} of {n} bytes exceeds {limits[tag]}")
    return tag, _read_by(fd, n, poller, deadline)


def _read_by(fd: int, n: int, poller: select.poll, deadline: float) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        _wait(poller, deadline)
        try:
            chunk = os.read(fd, min(n - len(buf), 1 << 22))
        except BlockingIOError:
            continue
        if not chunk:
            raise PeerClosed()
        buf += chunk
    return bytes(buf)


def _wait(poller: select.poll, deadline: float) -> None:
    left = deadline - time.monotonic()
    if left <= 0:
        raise Deadline()
    if not poller.poll(min(left, 3600.0) * 1000):
        raise Deadline()
