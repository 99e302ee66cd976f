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

The file itself (path, tables, queries, the Entry and Stage rows) belongs to
journalfile, which the claim gossip and the leaderboard read too; Journal here
is the research loop's handle on it, raising JournalError.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from types import TracebackType
from typing import Any

import journalfile
from journalfile import Entry, Stage
from node.research.errors import JournalError


class Journal:
    """One SQLite file under `<home>/research/` (journalfile); safe to open from several processes."""

    def __init__(self, path: Path, conn: sqlite3.Connection) -> None:
        self.path = path
        self._conn = conn

    @classmethod
    def open(cls, home: Path) -> Journal:
        path = journalfile.journal_path(home)
        try:
            return cls(path, journalfile.create(home))
        except (sqlite3.Error, OSError) as e:
            raise JournalError(f"cannot open the journal at {path}: {e}") from e

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # -- writes -------------------------------------------------------------
    def start(self, *, arena: bytes, parent: bytes, proposer: str, summary: str,
              changes: list[dict[str, Any]], diffstat: str, script: bytes,
              now_ms: int | None = None) -> int:
        """Record a new experiment before it runs; returns its sequence number."""
        with _failing("write"):
            return journalfile.write(
                self._conn, "INSERT INTO experiments (uid, arena, parent, proposer, summary, changes,"
                " diffstat, script, started_at) VALUES (?,?,?,?,?,?,?,?,?)",
                (uuid.uuid4().hex, arena, parent, proposer, summary[:500], json.dumps(changes),
                 diffstat, script, now_ms if now_ms is not None else _now_ms()))

    def finish(self, seq: int, *, decision: str, reason: str = "", stages: list[Stage] | None = None,
               proposal: bytes | None = None, wall_ms: int = 0, now_ms: int | None = None) -> None:
        """Record an experiment's outcome (once: a second result for it is refused)."""
        if decision not in journalfile.DECISIONS:
            raise JournalError(f"unknown decision {decision!r}")
        with _failing("write"):
            journalfile.write(
                self._conn, "INSERT INTO results (experiment, decision, reason, stages, proposal,"
                " wall_ms, finished_at) VALUES (?,?,?,?,?,?,?)",
                (seq, decision, reason[:2000], json.dumps([asdict(s) for s in stages or []]),
                 proposal, wall_ms, now_ms if now_ms is not None else _now_ms()))

    def add_claim(self, claim_id: bytes, arena: bytes, parent: bytes, topic: str, author: bytes,
                  expires_at: int, encoded: bytes) -> None:
        with _failing("write"):
            journalfile.add_claim(self._conn, claim_id, arena, parent, topic, author, expires_at, encoded)

    # -- reads --------------------------------------------------------------
    def entries(self, arena: bytes | None = None, *, parent: bytes | None = None,
                limit: int | None = None) -> list[Entry]:
        """Experiments in the order they started (the last `limit` ones if given)."""
        with _failing("read"):
            rows = journalfile.entries(self._conn, arena, parent=parent, limit=limit or None)
        return [_entry(r) for r in reversed(rows)]

    def get(self, seq: int) -> Entry:
        rows = [e for e in self.entries() if e.seq == seq]
        if not rows:
            raise JournalError(f"no experiment {seq} in the journal")
        return rows[0]

    def unfinished(self, arena: bytes) -> list[Entry]:
        return [e for e in self.entries(arena) if e.decision is None]

    def script(self, seq: int) -> bytes:
        with _failing("read"):
            script = journalfile.script(self._conn, seq)
        if script is None:
            raise JournalError(f"no experiment {seq} in the journal")
        return script

    def claims(self, arena: bytes, parent: bytes, now_ms: int | None = None) -> list[tuple[str, bytes, bytes]]:
        """Live claims (topic, author, encoded) on `parent`."""
        with _failing("read"):
            return journalfile.live_claims(self._conn, arena, parent,
                                           now_ms if now_ms is not None else _now_ms())


@contextmanager
def _failing(what: str) -> Iterator[None]:
    try:
        yield
    except sqlite3.Error as e:
        raise JournalError(f"journal {what} failed: {e}") from e


def _entry(r: dict[str, Any]) -> Entry:
    stages = [Stage.from_json(s) for s in json.loads(r["stages"])] if r["stages"] else []
    return Entry(
        seq=r["seq"], uid=r["uid"], arena=bytes(r["arena"]), parent=bytes(r["parent"]),
        proposer=r["proposer"], summary=r["summary"], changes=json.loads(r["changes"]),
        diffstat=r["diffstat"], started_at=r["started_at"], decision=r["decision"],
        reason=r["reason"] or "", stages=stages, proposal=bytes(r["proposal"]) if r["proposal"] else None,
        wall_ms=r["wall_ms"] or 0, finished_at=r["finished_at"],
    )


def _now_ms() -> int:
    return int(time.time() * 1000)
