"""The contributor's experiment journal, read without ever writing it.

The research loop keeps an append-only SQLite file at HOME/research/journal.sqlite3;
journalfile (standard library only, so the leaderboard still needs nothing of
node/) names it and holds its queries. The leaderboard reads it through a
`mode=ro` connection opened per request (journalfile.open_existing), which
never creates the file when it is absent and never writes it.

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

import journalfile
from journalfile import DECISIONS, FILE_NAME, Stage, journal_path
from journalfile import PROPOSED as PROPOSED  # what present.py counts as proposed
from journalfile import Entry as EntryRow  # the name present.py knows it by
from leaderboard.errors import JournalUnreadableError

RUNNING = "running"  # no result row yet: running, or interrupted and not yet retired
FILTERS = ("all", *DECISIONS)
MAX_STAGES = 16
MAX_SEEDS = 64
MAX_CHANGES_CHARS = 20_000
_LIMITS = {"uid": 64, "proposer": 64, "summary": 500, "diffstat": 120, "reason": 2000}


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
class JournalPage:
    counts: dict[str, int]  # experiments, each decision, running: of this arena
    total: int  # entries matching the filter
    entries: list[EntryRow]  # newest first


def read_page(home: Path, arena: bytes, decision: str, offset: int, limit: int) -> JournalPage | None:
    """One page of an arena's experiments, newest first; None when there is no journal."""
    path = journal_path(home)
    try:
        conn = journalfile.open_existing(home)
    except sqlite3.Error:
        raise JournalUnreadableError(path, "cannot open it read-only") from None
    if conn is None:
        return None
    try:
        conn.execute("BEGIN")  # one read transaction: the counts and the page agree
        if not journalfile.has_tables(conn):
            return JournalPage(_counts([]), 0, [])  # being created by its first writer
        counts = _counts(journalfile.decision_counts(conn, arena))
        rows = journalfile.entries(conn, arena, decision=None if decision == "all" else decision,
                                   limit=limit, offset=offset)
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


def _entry(r: dict[str, Any]) -> EntryRow:
    return EntryRow(
        seq=_int(r["seq"]), uid=_text(r["uid"], _LIMITS["uid"]), arena=_bytes(r["arena"]), parent=_bytes(r["parent"]),
        proposer=_text(r["proposer"], _LIMITS["proposer"]), summary=_text(r["summary"], _LIMITS["summary"]),
        changes=_changes(r["changes"]), diffstat=_text(r["diffstat"], _LIMITS["diffstat"]),
        started_at=_int(r["started_at"]), decision=None if r["decision"] is None else _text(r["decision"], 16),
        reason=_text(r["reason"], _LIMITS["reason"]), stages=_stages(r["stages"]),
        proposal=_bytes(r["proposal"]) or None, wall_ms=_int(r["wall_ms"]),
        finished_at=None if r["finished_at"] is None else _int(r["finished_at"]),
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


def _stages(v: Any) -> list[Stage]:
    parsed = _json(v, 1_000_000)
    if not isinstance(parsed, list):
        return []
    return [Stage(name=_text(d.get("name"), 32), seeds=_ints(d.get("seeds")),
                  parent_ubpb=_ints(d.get("parent_ubpb")), candidate_ubpb=_ints(d.get("candidate_ubpb")),
                  verdict=_text(d.get("verdict"), 200), mean_gain_ubpb=_int(d.get("mean_gain_ubpb")),
                  stderr_ubpb=_int(d.get("stderr_ubpb")))
            for d in parsed[-MAX_STAGES:] if isinstance(d, dict)]  # the last ones: they decide
