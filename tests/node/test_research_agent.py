"""The agent proposer against fake agent commands (real subprocesses applying known edits)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from node.research.agent import AgentProposer, program_md, run_agent

HEAD = b"N_LAYER = 4  # blocks\nLR = 3e-3  # learning rate\n\ndef build():\n    return N_LAYER\n"

FAKE_AGENT = r'''
import json, os, sys, time, pathlib
mode = sys.argv[1]
work = pathlib.Path(os.environ["RATCHET_WORKDIR"])
script = pathlib.Path(os.environ["RATCHET_SCRIPT"])
journal = json.loads(pathlib.Path(os.environ["RATCHET_JOURNAL"]).read_text())
info = json.loads(pathlib.Path(os.environ["RATCHET_ARENA_INFO"]).read_text())
assert "Ratchet" in pathlib.Path(os.environ["RATCHET_RULES"]).read_text()
(work / "seen.json").write_text(json.dumps({"journal": len(journal), "info": info}))
src = script.read_text()
if mode == "lr":
    script.write_text(src.replace("LR = 3e-3", "LR = 2e-3"))
    (work / "MESSAGE").write_text("lower the learning rate\n\nbecause the journal says so")
elif mode == "break":
    script.write_text(src.replace("def build():", "def build(:"))
elif mode == "hang":
    pathlib.Path(sys.argv[2]).write_text(str(os.getpid()))
    time.sleep(600)
elif mode == "forbidden":
    os.chmod(work / "program.md", 0o644)
    (work / "program.md").write_text("no rules")
    script.write_text(src.replace("LR = 3e-3", "LR = 2e-3"))
elif mode == "delete":
    os.unlink(work / "journal.json")
elif mode == "symlink":
    os.unlink(script)
    os.symlink("/etc/hostname", script)
elif mode == "fail":
    sys.exit(3)
'''


@pytest.fixture
def agent_py(tmp_path: Path) -> str:
    path = tmp_path / "fake_agent.py"
    path.write_text(FAKE_AGENT)
    return f"{sys.executable} {path}"


def _run(cmd: str, timeout_s: float = 30.0, journal: list | None = None) -> object:
    return run_agent(cmd, HEAD, journal=journal or [], arena_info={"name": "tiny"},
                     rules=program_md(), timeout_s=timeout_s, max_script_bytes=4096)


def test_agent_edit_is_accepted(agent_py: str) -> None:
    out = _run(f"{agent_py} lr", journal=[{"summary": "x"}])
    assert out.status == "ok", out.detail
    assert out.script == HEAD.replace(b"LR = 3e-3", b"LR = 2e-3")
    assert out.message.startswith("lower the learning rate")


@pytest.mark.parametrize("mode,status", [
    ("break", "broken"), ("forbidden", "forbidden_edit"), ("delete", "forbidden_edit"),
    ("symlink", "forbidden_edit"), ("fail", "failed"), ("noop", "no_change"),
])
def test_agent_failures_are_named(agent_py: str, mode: str, status: str) -> None:
    out = _run(f"{agent_py} {mode}")
    assert out.status == status, out.detail


def test_hanging_agent_is_killed(agent_py: str, tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    started = time.monotonic()
    out = _run(f"{agent_py} hang {pid_file}", timeout_s=2.0)
    assert out.status == "timeout"
    assert time.monotonic() - started < 15
    pid = int(pid_file.read_text())
    deadline = time.monotonic() + 10
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid)


def _alive(pid: int) -> bool:
    """Running (a killed grandchild may linger as a zombie until its new parent reaps it)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "State:\tZ" not in status


def test_missing_working_dir_command_is_an_error(tmp_path: Path) -> None:
    out = _run(str(tmp_path / "does-not-exist"))
    assert out.status == "failed" and out.returncode == 127


def test_proposer_turns_outcomes_into_candidates(agent_py: str) -> None:
    prop = AgentProposer(f"{agent_py} lr", timeout_s=30, arena_info={"name": "tiny"},
                         max_script_bytes=4096)
    cand = prop.propose(HEAD, b"\x07" * 32, [], set(), 2000)
    assert cand is not None and not cand.rejected
    assert cand.summary == "agent: lower the learning rate" and cand.topic.startswith("agent:")
    bad = AgentProposer(f"{agent_py} break", timeout_s=30, arena_info={}, max_script_bytes=4096)
    cand = bad.propose(HEAD, b"\x07" * 32, [], set(), 2000)
    assert cand is not None and cand.rejected == "agent_broken"
    assert "parse" in cand.message
