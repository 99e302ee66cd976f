"""What a fuzzed entry point must do with any input, checked after every input.

- It returns a valid object or raises a named ChainError subclass: any other
  exception is a crash; an input that takes longer than the guard is a hang.
- An accepted input is exactly the canonical encoding of a correctly signed
  object (decoded again independently, signature included).
- The store: a rejected input leaves every table as it was (row counts and the
  highest sequence number, read through a separate connection); an accepted one
  adds at most one row, and only for an object whose admission rules an
  independent model of the store (what was fed so far) also accepts.
"""

from __future__ import annotations

import signal
import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from chain.errors import ChainError
from chain.objects import (
    Amendment,
    Arena,
    Attestation,
    Blob,
    ChainObject,
    Profile,
    Proposal,
    decode,
    decode_stream,
)
from chain.store import DB_NAME, Store

HANG_S = 2.0


class Hang(BaseException):  # noqa: N818 - BaseException so no handler in the code under test swallows it
    """The guard's timer fired: the entry point took longer than HANG_S on one input."""


@dataclass
class Finding:
    entry: str
    kind: str  # "crash" | "hang" | "oracle"
    detail: str
    data: bytes
    ops: list[str]


@dataclass
class Tally:
    entry: str
    inputs: int = 0
    accepted: int = 0
    rejections: Counter[str] = field(default_factory=Counter)
    findings: list[Finding] = field(default_factory=list)
    slowest_s: float = 0.0
    elapsed_s: float = 0.0

    @property
    def crashes(self) -> int:
        return sum(f.kind in ("crash", "oracle") for f in self.findings)

    @property
    def hangs(self) -> int:
        return sum(f.kind == "hang" for f in self.findings)


class OracleError(AssertionError):
    """The entry point did something it must never do (stored a bad object, changed rows on reject)."""


@contextmanager
def guard(seconds: float, which: int = signal.ITIMER_REAL) -> Iterator[None]:
    """Raise Hang in this (main) thread after `seconds` (ITIMER_VIRTUAL counts CPU time only)."""
    signum = signal.SIGALRM if which == signal.ITIMER_REAL else signal.SIGVTALRM

    def fire(_sig: int, _frame: object) -> None:
        raise Hang()

    old = signal.signal(signum, fire)
    signal.setitimer(which, seconds)
    try:
        yield
    finally:
        signal.setitimer(which, 0)
        signal.signal(signum, old)


def check_accepted(data: bytes, obj: ChainObject) -> None:
    if obj.encode() != bytes(data):
        raise OracleError(f"accepted {obj.TYPE} whose encoding differs from the input")
    again = decode(bytes(data))  # full checks, signature included
    if again != obj:
        raise OracleError("decoding the same bytes twice gave different objects")


def decode_entry(data: bytes) -> str:
    obj = decode(data)
    check_accepted(data, obj)
    return obj.TYPE


def stream_entry(data: bytes) -> str:
    n = 0
    for obj in decode_stream(data):
        if obj.encode() not in data:
            raise OracleError("stream yielded an object whose bytes are not in the input")
        n += 1
    return f"stream of {n}"


class StoreOracle:
    """Feeds inputs to Store.add_encoded and checks the store against an independent model."""

    def __init__(self, store: Store, preload: list[ChainObject]) -> None:
        self.store = store
        self.held: dict[bytes, ChainObject] = {}
        for obj in preload:
            store.add(obj)
            self.held[obj.id] = obj
        self.db = sqlite3.connect(f"file:{store.home / DB_NAME}?mode=ro", uri=True, isolation_level=None)

    def close(self) -> None:
        self.db.close()

    def snapshot(self) -> tuple[int, ...]:
        return tuple(self.db.execute(
            "SELECT (SELECT coalesce(max(seq), 0) FROM objects), (SELECT count(*) FROM objects),"
            " (SELECT count(*) FROM arenas), (SELECT count(*) FROM proposals),"
            " (SELECT count(*) FROM attestations), (SELECT count(*) FROM blobs),"
            " (SELECT count(*) FROM profiles)").fetchone())

    def admissible(self, obj: ChainObject) -> bool:
        """The store's admission rules, evaluated on the model (not on the store)."""
        if isinstance(obj, Arena | Blob | Profile):  # a profile depends on nothing
            return True
        if isinstance(obj, Proposal):
            parent = self.held.get(obj.parent)
            return obj.arena in self.held and (
                obj.parent == obj.arena or (isinstance(parent, Proposal) and parent.arena == obj.arena))
        if isinstance(obj, Attestation):  # from any key: chain.verifiers decides what counts
            prop, arena = self.held.get(obj.proposal), self.held.get(obj.arena)
            return isinstance(prop, Proposal) and prop.arena == obj.arena and isinstance(arena, Arena)
        if isinstance(obj, Amendment):  # needs its arena; whether it applies is chain.verifiers'
            return isinstance(self.held.get(obj.arena), Arena)
        return False

    def __call__(self, data: bytes) -> str:
        before = self.snapshot()
        try:
            obj = self.store.add_encoded(data)
        except ChainError:
            if self.snapshot() != before:
                raise OracleError("a rejected input changed the store's rows") from None
            raise
        check_accepted(data, obj)
        after = self.snapshot()
        if obj.id in self.held:
            if after != before:
                raise OracleError(f"re-adding a held {obj.TYPE} changed the store")
            return "replay"
        if not self.admissible(obj):
            raise OracleError(f"stored a {obj.TYPE} the admission rules refuse")
        if after[1] != before[1] + 1 or not self.store.has(obj.id):
            raise OracleError(f"accepting a new {obj.TYPE} did not add exactly one row")
        if isinstance(obj, Blob) and self.store.blob_data(obj.id) != obj.data:
            raise OracleError("a stored blob's file does not hold its bytes")
        self.held[obj.id] = obj
        return obj.TYPE

    def check_files(self) -> None:
        """Blob files on disk: one per blob row, no temporary file left behind."""
        root = self.store.home / "blobs"
        files = {p.name for p in root.glob("??/*")}
        rows = {bytes(r[0]).hex() for r in self.db.execute("SELECT id FROM blobs")}
        if files != rows:
            raise OracleError(f"blob files and rows differ: {len(files - rows)} extra, {len(rows - files)} missing")
        leftovers = list((root / "tmp").iterdir())
        if leftovers:
            raise OracleError(f"temporary blob files left: {leftovers[:3]}")


def feed(entry: str, fn: Callable[[bytes], str], data: bytes, tally: Tally, ops: list[str],
         hang_s: float | None = HANG_S, which: int = signal.ITIMER_REAL,
         named: tuple[type[Exception], ...] = (ChainError,)) -> None:
    """Run one input through `fn`, classifying the outcome into `tally`.

    `named` are the errors the entry point may raise for bad input (counted as
    rejections by class); any other exception is a crash.
    """
    t0 = time.perf_counter()
    try:
        if hang_s is None:
            fn(data)
        else:
            with guard(hang_s, which):
                fn(data)
        tally.accepted += 1
    except Hang:
        tally.findings.append(Finding(entry, "hang", f"over {hang_s}s", data, list(ops)))
    except OracleError as e:
        tally.findings.append(Finding(entry, "oracle", str(e), data, list(ops)))
    except named as e:
        tally.rejections[getattr(e, "label", None) or type(e).__name__] += 1
    except Exception as e:  # noqa: BLE001 - the fuzzer's job: record any other exception as a crash
        tally.findings.append(Finding(entry, "crash", f"{type(e).__name__}: {e}"[:300], data, list(ops)))
    dt = time.perf_counter() - t0
    tally.inputs += 1
    tally.slowest_s = max(tally.slowest_s, dt)
    tally.elapsed_s += dt


def open_store_oracle(home: Path, preload: list[ChainObject]) -> StoreOracle:
    return StoreOracle(Store.open(home), preload)


def describe(data: bytes, limit: int = 96) -> str:
    """An input as hex, shortened, for reports."""
    text = data.hex()
    return text if len(text) <= 2 * limit else f"{text[: 2 * limit]}… ({len(data)} bytes)"




@dataclass
class Entry:
    """One fuzzed entry point: its function, valid seed inputs, the errors it may raise, and an
    optional `wrap` that packs a mutated chain-object encoding the way this entry carries it."""

    name: str
    fn: Callable[[bytes], str]
    seeds: list[bytes]
    named: tuple[type[Exception], ...] = (ChainError,)
    wrap: Callable[[list[bytes]], bytes] | None = None
