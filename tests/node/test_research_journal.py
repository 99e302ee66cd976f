"""Journal (append-only SQLite), claims (signed, expiring) and the pause/hours gate."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from chain.builders import key
from journalfile import DISCARDED, PROPOSED
from node.p2p.claims import ClaimError, TopicClaim
from node.research.errors import JournalError, ResearchError
from node.research.journal import Journal, Stage
from node.research.limits import Gate, parse_hours, within_hours

ARENA, HEAD = b"\x01" * 32, b"\x02" * 32


def _start(j: Journal, summary: str = "LR 0.003 -> 0.0045") -> int:
    return j.start(arena=ARENA, parent=HEAD, proposer="search", summary=summary,
                   changes=[{"name": "LR", "old": 0.003, "new": 0.0045, "scale": 1.0}],
                   diffstat="+1 -1 lines", script=b"LR = 4.5e-3\n")


def test_journal_records_and_reopens(tmp_path: Path) -> None:
    with Journal.open(tmp_path) as j:
        seq = _start(j)
        assert j.unfinished(ARENA)[0].seq == seq
        stage = Stage("screen", [1, 2], [1_500_000, 1_510_000], [1_490_000, 1_495_000],
                      verdict="improves", mean_gain_ubpb=12_500)
        j.finish(seq, decision=PROPOSED, stages=[stage], proposal=b"\x03" * 32, wall_ms=1234)
        with pytest.raises(JournalError):  # append-only: one result per experiment
            j.finish(seq, decision=DISCARDED)
        with pytest.raises(JournalError):
            j.finish(_start(j), decision="maybe")
    with Journal.open(tmp_path) as j:
        entries = j.entries(ARENA)
        assert [e.decision for e in entries] == [PROPOSED, None]
        e = entries[0]
        assert e.stages == [stage] and e.mean_gain_ubpb == 12_500 and e.proposal == b"\x03" * 32
        assert j.script(e.seq) == b"LR = 4.5e-3\n"
        assert e.to_json()["parent"] == HEAD.hex()
        assert j.entries(ARENA, limit=1)[0].seq == entries[1].seq


def test_journal_survives_a_killed_writer(tmp_path: Path) -> None:
    """A process killed right after a commit leaves every committed record readable."""
    code = (
        "import os, sys\n"
        "from node.research.journal import Journal\n"
        "j = Journal.open(sys.argv[1])\n"
        "for i in range(20):\n"
        "    j.start(arena=b'\\x01'*32, parent=b'\\x02'*32, proposer='search', summary=str(i),\n"
        "            changes=[], diffstat='', script=b'x')\n"
        "os.kill(os.getpid(), 9)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path)], timeout=60)
    assert proc.returncode == -signal.SIGKILL
    with Journal.open(tmp_path) as j:
        assert [e.summary for e in j.entries()] == [str(i) for i in range(20)]


def test_claims_sign_verify_and_expire(tmp_path: Path) -> None:
    k = key(5)
    c = TopicClaim.create(k, ARENA, HEAD, "LR:+", ttl_s=60, now_ms=1_000_000)
    back = TopicClaim.decode(c.encode())
    assert back == c and back.live(1_000_000 + 59_000) and not back.live(1_000_000 + 60_000)
    tampered = c.encode().replace(b"LR:+", b"LR:-")
    with pytest.raises(ClaimError):
        TopicClaim.decode(tampered)
    with pytest.raises(ClaimError):
        TopicClaim.decode(b"\x93\x01\x02\x03")
    with Journal.open(tmp_path) as j:
        j.add_claim(c.id, ARENA, HEAD, c.topic, c.author, c.expires_at, c.encode())
        assert [t for t, _, _ in j.claims(ARENA, HEAD, now_ms=1_000_500)] == ["LR:+"]
        assert j.claims(ARENA, HEAD, now_ms=2_000_000) == []


def test_hours_and_pause_gate(tmp_path: Path) -> None:
    assert parse_hours("22-7") == (22, 7)
    for bad in ("7", "25-3", "3-3", "a-b"):
        with pytest.raises(ResearchError):
            parse_hours(bad)
    at = dt.datetime(2026, 1, 1, 23, 0)
    assert within_hours((22, 7), at) and not within_hours((8, 18), at)
    assert within_hours(None, at)
    gate = Gate(pause_file=tmp_path / "pause")
    assert gate.why_waiting() is None
    gate.pause_file.touch()
    assert "pause" in (gate.why_waiting() or "")
    told: list[str] = []
    threading.Timer(0.3, lambda: os.unlink(gate.pause_file)).start()
    assert gate.wait(on_wait=told.append) is True and len(told) == 1
    gate.install_signals()
    os.kill(os.getpid(), signal.SIGUSR1)
    assert "SIGUSR1" in (gate.why_waiting() or "")
    os.kill(os.getpid(), signal.SIGUSR2)
    assert gate.why_waiting() is None
    gate.pause_file.touch()
    threading.Timer(0.3, gate.stop.set).start()
    assert gate.wait() is False
    signal.signal(signal.SIGUSR1, signal.SIG_DFL)
    signal.signal(signal.SIGUSR2, signal.SIG_DFL)
