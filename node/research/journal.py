"""The contributor's journal: an append-only record of every experiment, in SQLite.

Why SQLite rather than JSON lines: each record is committed in one
transaction (synchronous=FULL), so a crash or power cut never leaves a torn
record to repair; readers (`ratchet journal`, the leaderboard) read beside the
running loop thanks to WAL; and the search asks indexed questions (what was
tried on this head, with which knob) without re-reading a growing file. The
chain store already uses SQLite, so no new dependency.

Append-only: an experiment row is inserted when it starts and a result row
when it ends; neither is ever updated or deleted. An experiment without a
result is running, or was interrupted (the loop resumes or retires it after a
restart by writing its result then).
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from node.research.errors import JournalError

PROPOSED, DISCARDED, INVALID, STALE = "proposed", "discarded", "invalid", "stale"
DECISIONS = (PROPOSED, DISCARDED, INVALID, STALE)
FILE_NAME = "journal.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS experiments (
    seq INTEGER PRIMARY KEY,
    uid TEXT NOT NULL UNIQUE,
    arena BLOB NOT NULL,
    parent BLOB NOT NULL,            -- the head commit (or arena id) it was made against
    proposer TEXT NOT NULL,          -- search | random | agent | ...
    summary TEXT NOT NULL,           -- what changed, one line
    changes TEXT NOT NULL,           -- JSON: the knob changes, [] for free-form edits
    diffstat TEXT NOT NULL,          -- e.g. "+1 -1 lines"
    script BLOB NOT NULL,            -- the candidate script itself (resume, rebase, audit)
    started_at INTEGER NOT NULL      -- unix ms
);
CREATE INDEX IF NOT EXISTS experiments_arena ON experiments(arena, seq);
CREATE TABLE IF NOT EXISTS results (
    experiment INTEGER PRIMARY KEY REFERENCES experiments(seq),
    decision TEXT NOT NULL,          -- proposed | discarded | invalid | stale
    reason TEXT NOT NULL,
    stages TEXT NOT NULL,            -- JSON list of Stage
    proposal BLOB,                   -- the proposal id when proposed
    wall_ms INTEGER NOT NULL,
    finished_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS claims (
    id BLOB PRIMARY KEY,
    arena BLOB NOT NULL,
    parent BLOB NOT NULL,
    topic TEXT NOT NULL,
    author BLOB NOT NULL,
    expires_at INTEGER NOT NULL,
    encoded BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS claims_parent ON claims(arena, parent, expires_at);
"""


@dataclass(frozen=True)
class Stage:
    """One paired measurement: `screen` on the head's cached seeds, `confirm` on fresh ones."""

    name: str
    seeds: list[int]
    parent_ubpb: list[int]
    candidate_ubpb: list[int]
    floor_ubpb: list[int] = field(default_factory=list)
    verdict: str = ""  # improves | no_gain | invalid:<reason> | aborted:<why>
    mean_gain_ubpb: int = 0
    stderr_ubpb: int = 0
    detail: str = ""

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Stage:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


@dataclass(frozen=True)
class Entry:
    seq: int
    uid: str
    arena: bytes
    parent: bytes
    proposer: str
    summary: str
    changes: list[dict[str, Any]]
    diffstat: str
    started_at: int
    decision: str | None = None  # None: running or interrupted
    reason: str = ""
    stages: list[Stage] = field(default_factory=list)
    proposal: bytes | None = None
    wall_ms: int = 0
    finished_at: int | None = None

    @property
    def mean_gain_ubpb(self) -> int | None:
        """The gain of the last stage measured (the most trustworthy one), if any."""
        measured = [s for s in self.stages if s.candidate_ubpb]
        return measured[-1].mean_gain_ubpb if measured else None

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["arena"], d["parent"] = self.arena.hex(), self.parent.hex()
        d["proposal"] = self.proposal.hex() if self.proposal else None
        d["mean_gain_ubpb"] = self.mean_gain_ubpb
        return d


def journal_path(home: Path) -> Path:
    """Where the journal of the contributor on `home` lives (whether or not it exists yet)."""
    return Path(home) / "research" / FILE_NAME


class Journal:
    """One SQLite file under `<home>/research/`; safe to open from several processes."""

    def __init__(self, path: Path, conn: sqlite3.Connection) -> None:
        self.path = path
        self._conn = conn

    @classmethod
    def open(cls, home: Path) -> Journal:
        path = journal_path(home)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(path, timeout=30.0, isolation_level=None,
                                   check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.executescript(_SCHEMA)
        except (sqlite3.Error, OSError) as e:
            raise JournalError(f"cannot open the journal at {path}: {e}") from e
        return cls(path, conn)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def _write(self, sql: str, params: tuple[Any, ...]) -> int:
        try:
            with self._conn:
                self._conn.execute("BEGIN IMMEDIATE")
                cur = self._conn.execute(sql, params)
                return int(cur.lastrowid or 0)
        except sqlite3.Error as e:
            raise JournalError(f"journal write failed: {e}") from e

    # -- writes -------------------------------------------------------------
    def start(self, *, arena: bytes, parent: bytes, proposer: str, summary: str,
              changes: list[dict[str, Any]], diffstat: str, script: bytes,
              now_ms: int | None = None) -> int:
        """Record a new experiment before it runs; returns its sequence number."""
        return self._write(
            "INSERT INTO experiments (uid, arena, parent, proposer, summary, changes, diffstat,"
            " script, started_at) VALUES (?,?,?,?,?,?,?,?,?)",
            (uuid.uuid4().hex, arena, parent, proposer, summary[:500], json.dumps(changes),
             diffstat, script, now_ms if now_ms is not None else _now_ms()),
        )

    def finish(self, seq: int, *, decision: str, reason: str = "", stages: list[Stage] | None = None,
               proposal: bytes | None = None, wall_ms: int = 0, now_ms: int | None = None) -> None:
        """Record an experiment's outcome (once: a second result for it is refused)."""
        if decision not in DECISIONS:
            raise JournalError(f"unknown decision {decision!r}")
        self._write(
            "INSERT INTO results (experiment, decision, reason, stages, proposal, wall_ms,"
            " finished_at) VALUES (?,?,?,?,?,?,?)",
            (seq, decision, reason[:2000], json.dumps([asdict(s) for s in stages or []]),
             proposal, wall_ms, now_ms if now_ms is not None else _now_ms()),
        )

    def add_claim(self, claim_id: bytes, arena: bytes, parent: bytes, topic: str, author: bytes,
                  expires_at: int, encoded: bytes) -> None:
        self._write(
            "INSERT OR IGNORE INTO claims (id, arena, parent, topic, author, expires_at, encoded)"
            " VALUES (?,?,?,?,?,?,?)", (claim_id, arena, parent, topic, author, expires_at, encoded),
        )

    # -- reads --------------------------------------------------------------
    def entries(self, arena: bytes | None = None, *, parent: bytes | None = None,
                limit: int | None = None) -> list[Entry]:
        """Experiments in the order they started (the last `limit` ones if given)."""
        where, params = [], []
        if arena is not None:
            where.append("e.arena = ?")
            params.append(arena)
        if parent is not None:
            where.append("e.parent = ?")
            params.append(parent)
        sql = (
            "SELECT e.seq, e.uid, e.arena, e.parent, e.proposer, e.summary, e.changes, e.diffstat,"
            " e.started_at, r.decision, r.reason, r.stages, r.proposal, r.wall_ms, r.finished_at"
            " FROM experiments e LEFT JOIN results r ON r.experiment = e.seq"
            + (" WHERE " + " AND ".join(where) if where else "")
            + " ORDER BY e.seq DESC" + (f" LIMIT {int(limit)}" if limit else "")
        )
        rows = self._read(sql, tuple(params))
        return [_entry(r) for r in reversed(rows)]

    def get(self, seq: int) -> Entry:
        rows = [e for e in self.entries() if e.seq == seq]
        if not rows:
            raise JournalError(f"no experiment {seq} in the journal")
        return rows[0]

    def unfinished(self, arena: bytes) -> list[Entry]:
        return [e for e in self.entries(arena) if e.decision is None]

    def script(self, seq: int) -> bytes:
        rows = self._read("SELECT script FROM experiments WHERE seq = ?", (seq,))
        if not rows:
            raise JournalError(f"no experiment {seq} in the journal")
        return bytes(rows[0][0])

    def claims(self, arena: bytes, parent: bytes, now_ms: int | None = None) -> list[tuple[str, bytes, bytes]]:
        """Live claims (topic, author, encoded) on `parent`."""
        now = now_ms if now_ms is not None else _now_ms()
        rows = self._read(
            "SELECT topic, author, encoded FROM claims WHERE arena = ? AND parent = ?"
            " AND expires_at > ? ORDER BY expires_at", (arena, parent, now),
        )
        return [(str(t), bytes(a), bytes(e)) for t, a, e in rows]

    def _read(self, sql: str, params: tuple[Any, ...]) -> list[Any]:
        try:
            return self._conn.execute(sql, params).fetchall()
        except sqlite3.Error as e:
            raise JournalError(f"journal read failed: {e}") from e


def _entry(r: tuple[Any, ...]) -> Entry:
    stages = [Stage.from_json(s) for s in json.loads(r[11])] if r[11] else []
    return Entry(
        seq=r[0], uid=r[1], arena=bytes(r[2]), parent=bytes(r[3]), proposer=r[4], summary=r[5],
        changes=json.loads(r[6]), diffstat=r[7], started_at=r[8], decision=r[9],
        reason=r[10] or "", stages=stages, proposal=bytes(r[12]) if r[12] else None,
        wall_ms=r[13] or 0, finished_at=r[14],
    )


def _now_ms() -> int:
    return int(time.time() * 1000)
