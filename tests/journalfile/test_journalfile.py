"""The journal file's own queries, on a journal written with plain SQL (no research package)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

import journalfile

A, B, HEAD, OTHER = b"\x01" * 32, b"\x02" * 32, b"\x03" * 32, b"\x04" * 32


def _experiment(conn: sqlite3.Connection, arena: bytes, parent: bytes, summary: str) -> int:
    return journalfile.write(
        conn, "INSERT INTO experiments (uid, arena, parent, proposer, summary, changes, diffstat, script,"
        " started_at) VALUES (?,?,?,?,?,?,?,?,?)", (summary, arena, parent, "search", summary, "[]", "",
                                                  summary.encode(), 1))


def _result(conn: sqlite3.Connection, seq: int, decision: str) -> None:
    journalfile.write(conn, "INSERT INTO results (experiment, decision, reason, stages, proposal, wall_ms,"
                      " finished_at) VALUES (?,?,?,?,?,?,?)", (seq, decision, "", "[]", None, 5, 2))


def test_reading_never_creates_the_journal_and_never_writes_it(tmp_path: Path) -> None:
    path = journalfile.journal_path(tmp_path)
    assert path == tmp_path / "research" / journalfile.FILE_NAME
    assert journalfile.open_existing(tmp_path) is None and not path.parent.exists()
    path.parent.mkdir()
    sqlite3.connect(path).close()  # a file its first writer is still creating
    conn = journalfile.open_existing(tmp_path)
    assert conn is not None and not journalfile.has_tables(conn)
    conn.close()
    journalfile.create(tmp_path).close()
    conn = journalfile.open_existing(tmp_path)
    assert conn is not None and journalfile.has_tables(conn)
    with pytest.raises(sqlite3.OperationalError):
        _experiment(conn, A, HEAD, "refused")
    writable = journalfile.open_existing(tmp_path, writable=True)
    assert writable is not None and _experiment(writable, A, HEAD, "taken") == 1


def test_entries_newest_first_filtered_and_paged(tmp_path: Path) -> None:
    conn = journalfile.create(tmp_path)
    first, second, third = (_experiment(conn, A, HEAD, "one"), _experiment(conn, A, OTHER, "two"),
                            _experiment(conn, B, HEAD, "three"))
    _result(conn, first, journalfile.PROPOSED)
    _result(conn, third, journalfile.STALE)
    rows = journalfile.entries(conn)
    assert [r["seq"] for r in rows] == [third, second, first]
    assert tuple(rows[0]) == journalfile.ENTRY_COLUMNS
    assert rows[1]["decision"] is None and rows[2]["decision"] == journalfile.PROPOSED
    assert [r["summary"] for r in journalfile.entries(conn, A)] == ["two", "one"]
    assert [r["summary"] for r in journalfile.entries(conn, parent=HEAD)] == ["three", "one"]
    assert [r["summary"] for r in journalfile.entries(conn, A, decision=journalfile.PROPOSED)] == ["one"]
    assert [r["summary"] for r in journalfile.entries(conn, limit=1, offset=1)] == ["two"]
    assert dict(journalfile.decision_counts(conn, A)) == {None: 1, journalfile.PROPOSED: 1}
    assert journalfile.script(conn, second) == b"two" and journalfile.script(conn, 99) is None


def test_claims_are_recorded_once_and_read_live_or_by_rowid(tmp_path: Path) -> None:
    conn = journalfile.create(tmp_path)
    journalfile.add_claim(conn, b"c1", A, HEAD, "LR:+", b"k1", 1_000, b"enc1")
    journalfile.add_claim(conn, b"c1", A, HEAD, "LR:+", b"k1", 1_000, b"enc1")  # again: ignored
    journalfile.add_claim(conn, b"c2", A, HEAD, "N:-", b"k2", 2_000, b"enc2")
    journalfile.add_claim(conn, b"c3", A, OTHER, "N:-", b"k2", 2_000, b"enc3")
    assert journalfile.live_claims(conn, A, HEAD, now_ms=500) == [("LR:+", b"k1", b"enc1"),
                                                                   ("N:-", b"k2", b"enc2")]
    assert journalfile.live_claims(conn, A, HEAD, now_ms=1_000) == [("N:-", b"k2", b"enc2")]
    assert journalfile.claims_after(conn, 0, 2) == [(1, b"enc1"), (2, b"enc2")]
    assert journalfile.claims_after(conn, 2, 10) == [(3, b"enc3")]
