"""The contributor's journal file, HOME/research/journal.sqlite3: its path, tables and queries.

Written by the research loop (node/research/journal.py) and by the claim gossip
of the node on the same home (node/p2p/claimgossip.py), read by both and by the
leaderboard (leaderboard/journal.py). Standard library only, so none of them
imports another to agree on the file. Functions raise sqlite3.Error, which each
caller turns into its own error; values come back as SQLite stores them (the
leaderboard coerces every field, the research loop trusts its own file).
"""

from __future__ import annotations

import sqlite3
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

FILE_NAME = "journal.sqlite3"
PROPOSED, DISCARDED, INVALID, STALE = "proposed", "discarded", "invalid", "stale"
DECISIONS = (PROPOSED, DISCARDED, INVALID, STALE)

SCHEMA = """
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
_EXPERIMENT = ("seq", "uid", "arena", "parent", "proposer", "summary", "changes", "diffstat", "started_at")
_RESULT = ("decision", "reason", "stages", "proposal", "wall_ms", "finished_at")
ENTRY_COLUMNS = _EXPERIMENT + _RESULT  # the keys of what entries() returns
_SELECT_ENTRIES = ("SELECT " + ", ".join([f"e.{c}" for c in _EXPERIMENT] + [f"r.{c}" for c in _RESULT])
                   + " FROM experiments e LEFT JOIN results r ON r.experiment = e.seq")


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
    """One experiment with its result, if any (the leaderboard builds it from coerced values)."""

    seq: int
    uid: str
    arena: bytes
    parent: bytes
    proposer: str
    summary: str
    changes: list[Any]  # the knob changes as the research loop wrote them: dicts, [] if free-form
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


def create(home: Path) -> sqlite3.Connection:
    """A writer's connection, creating the file and tables if needed (OSError too); WAL, so
    readers read beside the writer, and synchronous=FULL, so a commit survives a power cut."""
    path = journal_path(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.executescript(SCHEMA)
    return conn


def open_existing(home: Path, *, writable: bool = False) -> sqlite3.Connection | None:
    """A connection that never creates the file (`mode=ro`, or `rw`); None when there is none.
    Read-only may add empty `-wal`/`-shm` files beside it; the journal stays byte-for-byte the same."""
    path = journal_path(home)
    if not path.is_file():
        return None
    try:
        return sqlite3.connect(f"{path.resolve().as_uri()}?mode={'rw' if writable else 'ro'}",
                               uri=True, timeout=5.0, isolation_level=None, check_same_thread=False)
    except sqlite3.OperationalError:
        if not path.exists():  # removed between the check and the open
            return None
        raise


def write(conn: sqlite3.Connection, sql: str, params: tuple[Any, ...]) -> int:
    """One statement in its own IMMEDIATE transaction, committed when this returns; its rowid."""
    with conn:
        conn.execute("BEGIN IMMEDIATE")
        return int(conn.execute(sql, params).lastrowid or 0)


def add_claim(conn: sqlite3.Connection, claim_id: bytes, arena: bytes, parent: bytes, topic: str,
              author: bytes, expires_at: int, encoded: bytes) -> None:
    """Record a claim (signed here or received); one already recorded is left as it is."""
    write(conn, "INSERT OR IGNORE INTO claims (id, arena, parent, topic, author, expires_at, encoded)"
          " VALUES (?,?,?,?,?,?,?)", (claim_id, arena, parent, topic, author, expires_at, encoded))


# -- reads -------------------------------------------------------------------------
def has_tables(conn: sqlite3.Connection) -> bool:
    """Whether the experiment tables exist yet (not while the first writer is creating the file)."""
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    return {"experiments", "results"} <= names


def entries(conn: sqlite3.Connection, arena: bytes | None = None, *, parent: bytes | None = None,
            decision: str | None = None, limit: int | None = None,
            offset: int = 0) -> list[dict[str, Any]]:
    """Experiments with their results (None while running), newest first, keyed by ENTRY_COLUMNS."""
    where, params = [], []
    for column, value in (("e.arena", arena), ("e.parent", parent), ("r.decision", decision)):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    sql = (_SELECT_ENTRIES + (" WHERE " + " AND ".join(where) if where else "")
           + " ORDER BY e.seq DESC LIMIT ? OFFSET ?")
    rows = conn.execute(sql, (*params, -1 if limit is None else limit, offset)).fetchall()
    return [dict(zip(ENTRY_COLUMNS, r, strict=True)) for r in rows]


def decision_counts(conn: sqlite3.Connection, arena: bytes) -> list[Any]:
    """(decision, experiments) pairs of `arena`; decision NULL counts those without a result."""
    return conn.execute(
        "SELECT r.decision, COUNT(*) FROM experiments e LEFT JOIN results r ON r.experiment = e.seq"
        " WHERE e.arena = ? GROUP BY r.decision", (arena,)).fetchall()


def script(conn: sqlite3.Connection, seq: int) -> bytes | None:
    """The candidate script of experiment `seq`; None when there is no such experiment."""
    rows = conn.execute("SELECT script FROM experiments WHERE seq = ?", (seq,)).fetchall()
    return bytes(rows[0][0]) if rows else None


def live_claims(conn: sqlite3.Connection, arena: bytes, parent: bytes,
                now_ms: int) -> list[tuple[str, bytes, bytes]]:
    """(topic, author, encoded) of the claims on `parent` still live at `now_ms`, soonest to expire first."""
    rows = conn.execute(
        "SELECT topic, author, encoded FROM claims WHERE arena = ? AND parent = ?"
        " AND expires_at > ? ORDER BY expires_at", (arena, parent, now_ms)).fetchall()
    return [(str(t), bytes(a), bytes(e)) for t, a, e in rows]


def claims_after(conn: sqlite3.Connection, rowid: int, limit: int) -> list[tuple[int, bytes]]:
    """(rowid, encoded) of up to `limit` claims recorded after `rowid`, live or not, in that order."""
    rows = conn.execute("SELECT rowid, encoded FROM claims WHERE rowid > ? ORDER BY rowid LIMIT ?",
                        (rowid, limit)).fetchall()
    return [(int(r), bytes(e)) for r, e in rows]
