"""The contributor's experiment journal, read without ever writing it.

The research loop (node/research/journal.py) keeps an append-only SQLite file
at HOME/research/journal.sqlite3. The leaderboard depends on chain only, so it
does not import that module: it names the same file and reads the same two
tables itself, through a `mode=ro` URI connection opened per request. That
connection never creates the file when it is absent and never writes it (the
SQLite WAL reader protocol may add the empty `-wal`/`-shm` companions beside a
journal no writer has open; the journal itself stays byte-for-byte the same).

Every value read here is untrusted: SQLite columns are dynamically typed and
the JSON columns may hold anything, so each field is coerced to its type and
bounded in size before it reaches a page, and queries are paged in SQL.

The journal changes independently of the chain store, so `token()` names its
state for the response cache: size and mtime of the file and of its WAL, where
committed transactions land until a checkpoint.
"""

from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from leaderboard.errors import JournalUnreadableError

FILE_NAME = "journal.sqlite3"  # node/research/journal.py: FILE_NAME, under HOME/research/
PROPOSED = "proposed"
DECISIONS = (PROPOSED, "discarded", "invalid", "stale")
RUNNING = "running"  # no result row yet: running, or interrupted and not yet retired
FILTERS = ("all", *DECISIONS)
MAX_STAGES = 16
MAX_SEEDS = 64
MAX_CHANGES_CHARS = 20_000
_LIMITS = {"uid": 64, "proposer": 64, "summary": 500, "diffstat": 120, "reason": 2000}


def journal_path(home: Path) -> Path:
    return Path(home) / "research" / FILE_NAME


def token(home: Path) -> str | None:
    """The journal's state as a short text, None when there is no journal (a few stat calls)."""
    path = journal_path(home)
    parts = []
    for p in (path, path.with_name(FILE_NAME + "-wal")):
        try:
            st = os.stat(p)
        except FileNotFoundError:
            if p == path:
                return None
            parts.append("-")
            continue
        parts.append(f"{st.st_ino:x}.{st.st_size:x}.{st.st_mtime_ns:x}")
    return "/".join(parts)


@dataclass(frozen=True)
class StageRow:
    name: str
    seeds: list[int]
    parent_ubpb: list[int]
    candidate_ubpb: list[int]
    verdict: str
    mean_gain_ubpb: int
    stderr_ubpb: int


@dataclass(frozen=True)
class EntryRow:
    """One experiment as the journal records it (finished or not)."""

    seq: int
    uid: str
    parent: bytes
    proposer: str
    summary: str
    changes: list[Any]
    diffstat: str
    started_at: int
    decision: str | None
    reason: str
    stages: list[StageRow]
    proposal: bytes | None
    wall_ms: int
    finished_at: int | None

    @property
    def mean_gain_ubpb(self) -> int | None:
        """The gain of the last stage that measured the candidate (as `ratchet journal` shows it)."""
        measured = [s for s in self.stages if s.candidate_ubpb]
        return measured[-1].mean_gain_ubpb if measured else None


@dataclass(frozen=True)
class JournalPage:
    counts: dict[str, int]  # experiments, each decision, running: of this arena
    total: int  # entries matching the filter
    entries: list[EntryRow]  # newest first


def read_page(home: Path, arena: bytes, decision: str, offset: int, limit: int) -> JournalPage | None:
    """One page of an arena's experiments, newest first; None when there is no journal."""
    path = journal_path(home)
    if not path.is_file():
        return None
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=5.0,
                               isolation_level=None, check_same_thread=False)
    except sqlite3.OperationalError:
        if not path.exists():  # removed between the check and the open
            return None
        raise JournalUnreadableError(path, "cannot open it read-only") from None
    try:
        conn.execute("BEGIN")  # one read transaction: the counts and the page agree
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not {"experiments", "results"} <= tables:
            return JournalPage(_counts([]), 0, [])  # being created by its first writer
        counts = _counts(conn.execute(
            "SELECT r.decision, COUNT(*) FROM experiments e LEFT JOIN results r ON r.experiment = e.seq"
            " WHERE e.arena = ? GROUP BY r.decision", (arena,)).fetchall())
        where, params = "e.arena = ?", [arena]
        if decision != "all":
            where += " AND r.decision = ?"
            params.append(decision)
        rows = conn.execute(
            "SELECT e.seq, e.uid, e.parent, e.proposer, e.summary, e.changes, e.diffstat, e.started_at,"
            " r.decision, r.reason, r.stages, r.proposal, r.wall_ms, r.finished_at"
            " FROM experiments e LEFT JOIN results r ON r.experiment = e.seq"
            f" WHERE {where} ORDER BY e.seq DESC LIMIT ? OFFSET ?", (*params, limit, offset)).fetchall()
    except sqlite3.Error as e:
        raise JournalUnreadableError(path, str(e)) from e
    finally:
        conn.close()
    total = counts["experiments"] if decision == "all" else counts.get(decision, 0)
    return JournalPage(counts, total, [_entry(r) for r in rows])


def _counts(rows: list[Any]) -> dict[str, int]:
    counts = {"experiments": 0, **dict.fromkeys(DECISIONS, 0), RUNNING: 0}
    for decision, n in rows:
        name = RUNNING if decision is None else str(decision)
        if name in counts:  # an unknown decision counts as an experiment only
            counts[name] += int(n)
        counts["experiments"] += int(n)
    return counts


def _entry(r: tuple[Any, ...]) -> EntryRow:
    decision = None if r[8] is None else _text(r[8], 16)
    return EntryRow(
        seq=_int(r[0]), uid=_text(r[1], _LIMITS["uid"]), parent=_bytes(r[2]),
        proposer=_text(r[3], _LIMITS["proposer"]), summary=_text(r[4], _LIMITS["summary"]),
        changes=_changes(r[5]), diffstat=_text(r[6], _LIMITS["diffstat"]), started_at=_int(r[7]),
        decision=decision, reason=_text(r[9], _LIMITS["reason"]), stages=_stages(r[10]),
        proposal=_bytes(r[11]) or None, wall_ms=_int(r[12]),
        finished_at=None if r[13] is None else _int(r[13]),
    )


def _text(v: Any, limit: int) -> str:
    if v is None:
        return ""
    s = v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
    return s if len(s) <= limit else s[:limit] + "…"


def _int(v: Any) -> int:
    return v if isinstance(v, int) and not isinstance(v, bool) and abs(v) < 2**63 else 0


def _bytes(v: Any) -> bytes:
    return bytes(v[:64]) if isinstance(v, bytes) else b""


def _json(v: Any, limit: int) -> Any:
    if not isinstance(v, str | bytes) or len(v) > limit:
        return None
    try:
        return json.loads(v)
    except (ValueError, RecursionError):
        return None


def _changes(v: Any) -> list[Any]:
    parsed = _json(v, MAX_CHANGES_CHARS)
    return parsed if isinstance(parsed, list) else []


def _ints(v: Any) -> list[int]:
    return [_int(x) for x in v[:MAX_SEEDS]] if isinstance(v, list) else []


def _stages(v: Any) -> list[StageRow]:
    parsed = _json(v, 1_000_000)
    if not isinstance(parsed, list):
        return []
    return [StageRow(name=_text(d.get("name"), 32), seeds=_ints(d.get("seeds")),
                     parent_ubpb=_ints(d.get("parent_ubpb")), candidate_ubpb=_ints(d.get("candidate_ubpb")),
                     verdict=_text(d.get("verdict"), 200), mean_gain_ubpb=_int(d.get("mean_gain_ubpb")),
                     stderr_ubpb=_int(d.get("stderr_ubpb")))
            for d in parsed[-MAX_STAGES:] if isinstance(d, dict)]  # the last ones: they decide
