"""The agent proposer: any coding-agent command line, run on a working copy of the head.

The command runs in a fresh temporary directory holding:

    train.py      the head's script: the only file whose edits are taken
    program.md    how to do research inside Ratchet (the arena's rules for agents)
    journal.json  the contributor's recent experiments and their measured results
    arena.json    the arena: budget, seeds, margin, script size limit, head id
    MESSAGE       optional: the agent may write its one-paragraph commit message here

with RATCHET_WORKDIR, RATCHET_SCRIPT, RATCHET_RULES, RATCHET_JOURNAL and
RATCHET_ARENA_INFO in its environment (and {workdir}, {script}, {rules},
{journal} substituted in the command line). It runs in its own process group
under a wall-clock timeout; on timeout the whole group is killed.

Only an edited train.py is accepted. Outcomes other than "ok": "timeout",
"failed" (non-zero exit), "forbidden_edit" (a provided file other than
train.py changed, vanished or became a link), "broken" (train.py does not
parse or is not UTF-8), "too_large", "no_change". The candidate is still
untrusted: the loop checks it in the sandbox like anyone else's.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import shlex
import signal
import stat
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from journalfile import Entry
from node.research.errors import AgentError
from node.research.search import Candidate, diffstat

SCRIPT, RULES, JOURNAL, ARENA_INFO, MESSAGE = (
    "train.py", "program.md", "journal.json", "arena.json", "MESSAGE",
)
PROTECTED = (RULES, JOURNAL, ARENA_INFO)
KILL_GRACE_S = 3.0
OUTPUT_TAIL = 4000
JOURNAL_ENTRIES = 50


@dataclass(frozen=True)
class AgentOutcome:
    status: str  # ok | timeout | failed | forbidden_edit | broken | too_large | no_change
    script: bytes | None  # the edited train.py when status is ok
    message: str  # the agent's MESSAGE, or ""
    detail: str  # why it was refused, and the tail of the agent's output
    returncode: int | None
    wall_s: float


def program_md() -> str:
    """The shipped instructions for agents (program.md at the repository root, or a short fallback)."""
    for base in (Path(__file__).resolve().parents[2], Path.cwd()):
        path = base / "program.md"
        if path.is_file():
            return path.read_text(encoding="utf-8")
    return "# Ratchet\nEdit train.py only. Lower val_bpb under the arena's fixed budget. No cheating.\n"


def run_agent(command: str, head_script: bytes, *, journal: list[dict[str, Any]],
              arena_info: dict[str, Any], rules: str, timeout_s: float,
              max_script_bytes: int, env: dict[str, str] | None = None) -> AgentOutcome:
    """Run `command` on a working copy of `head_script`; return what it produced and why."""
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="ratchet-agent-") as tmp:
        root = Path(tmp)
        work = root / "work"
        work.mkdir()
        files = {
            SCRIPT: head_script,
            RULES: rules.encode(),
            JOURNAL: json.dumps(journal, indent=1, default=str).encode(),
            ARENA_INFO: json.dumps(arena_info, indent=1, sort_keys=True).encode(),
        }
        for name, data in files.items():
            (work / name).write_bytes(data)
            if name in PROTECTED:
                (work / name).chmod(0o444)
        digests = {name: hashlib.sha256(files[name]).hexdigest() for name in PROTECTED}
        paths = {"workdir": str(work), "script": str(work / SCRIPT), "rules": str(work / RULES),
                 "journal": str(work / JOURNAL)}
        argv = ["/bin/sh", "-c", command.format_map(_Quoted(paths))]
        child_env = {**os.environ, **(env or {}),
                     "RATCHET_WORKDIR": paths["workdir"], "RATCHET_SCRIPT": paths["script"],
                     "RATCHET_RULES": paths["rules"], "RATCHET_JOURNAL": paths["journal"],
                     "RATCHET_ARENA_INFO": str(work / ARENA_INFO)}
        log_path = root / "agent.log"  # outside the working copy: the agent cannot rewrite it
        returncode, timed_out = _run(argv, work, child_env, log_path, timeout_s, command)
        tail = log_path.read_bytes()[-OUTPUT_TAIL:].decode("utf-8", "replace")
        wall = time.monotonic() - started

        def done(status: str, why: str = "", script: bytes | None = None, message: str = "") -> AgentOutcome:
            detail = (why + "\n" + tail).strip() if why else tail
            return AgentOutcome(status, script, message, detail, returncode, wall)

        if timed_out:
            return done("timeout", f"agent did not finish within {timeout_s:g}s; killed")
        if returncode != 0:
            return done("failed", f"agent exited with status {returncode}")
        touched = _touched(work, digests)
        if touched:
            return done("forbidden_edit", "agent changed files it must not touch: " + ", ".join(touched))
        script_path = work / SCRIPT
        try:
            st = script_path.lstat()
        except FileNotFoundError:
            return done("forbidden_edit", "agent deleted train.py")
        if not stat.S_ISREG(st.st_mode):
            return done("forbidden_edit", "train.py is no longer a regular file")
        script = script_path.read_bytes()
        message = _read_message(work)
        if len(script) > max_script_bytes:
            return done("too_large", f"train.py is {len(script)} bytes; the arena allows {max_script_bytes}")
        if script == head_script:
            return done("no_change", "train.py is unchanged")
        problem = _parse_problem(script)
        if problem:
            return done("broken", f"train.py does not parse: {problem}", script, message)
        return done("ok", "", script, message)


class _Quoted(dict[str, str]):
    """Placeholders substituted shell-quoted; unknown {names} are left as they are."""

    def __getitem__(self, key: str) -> str:
        return shlex.quote(super().__getitem__(key))

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def _run(argv: list[str], cwd: Path, env: dict[str, str], log_path: Path, timeout_s: float,
         command: str) -> tuple[int | None, bool]:
    with open(log_path, "wb") as log:
        try:
            proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        except OSError as e:
            raise AgentError(command, e.strerror or str(e)) from e
        try:
            return proc.wait(timeout=timeout_s), False
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            return proc.returncode, True
        finally:
            if proc.returncode is None:
                _kill_group(proc)
            else:
                _kill_leftovers(proc.pid)


def _kill_leftovers(pgid: int) -> None:
    """Children the agent left running in its process group die with it."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the agent's whole process group, then SIGKILL what is left."""
    for sig, wait_s in ((signal.SIGTERM, KILL_GRACE_S), (signal.SIGKILL, KILL_GRACE_S)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=wait_s)
            # children of the group may outlive the leader: make sure they are gone too
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue
        return


def _touched(work: Path, digests: dict[str, str]) -> list[str]:
    out = []
    for name, digest in digests.items():
        path = work / name
        try:
            if path.is_symlink() or hashlib.sha256(path.read_bytes()).hexdigest() != digest:
                out.append(name)
        except OSError:
            out.append(name)
    return out


def _read_message(work: Path) -> str:
    path = work / MESSAGE
    if not path.is_file() or path.is_symlink():
        return ""
    return path.read_bytes()[:4000].decode("utf-8", "replace").strip()


def _parse_problem(script: bytes) -> str:
    try:
        script.decode("utf-8")
        ast.parse(script)
    except UnicodeDecodeError as e:
        return f"not UTF-8 ({e.reason} at byte {e.start})"
    except SyntaxError as e:
        return f"{e.msg} (line {e.lineno})"
    except ValueError as e:
        return str(e)
    return ""


class AgentProposer:
    """Proposer that asks a user-named coding agent for each candidate."""

    name = "agent"

    def __init__(self, command: str, *, timeout_s: float, arena_info: dict[str, Any],
                 max_script_bytes: int, rules: str | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.command = command
        self.timeout_s = timeout_s
        self.arena_info = arena_info
        self.max_script_bytes = max_script_bytes
        self.rules = rules if rules is not None else program_md()
        self.env = env or {}
        self.last: AgentOutcome | None = None

    def propose(self, head_script: bytes, head: bytes, history: list[Entry],
                taken: set[str], margin_ubpb: int) -> Candidate | None:
        journal = [_journal_view(e) for e in history[-JOURNAL_ENTRIES:]]
        info = {**self.arena_info, "head": head.hex(), "margin_ubpb": margin_ubpb}
        out = run_agent(self.command, head_script, journal=journal, arena_info=info,
                        rules=self.rules, timeout_s=self.timeout_s,
                        max_script_bytes=self.max_script_bytes, env=self.env)
        self.last = out
        if out.status == "ok" and out.script is not None:
            summary = (out.message.splitlines()[0] if out.message else diffstat(head_script, out.script))
            digest = hashlib.sha256(out.script).hexdigest()[:12]
            return Candidate(out.script, f"agent: {summary}"[:200], [], f"agent:{digest}",
                             message=out.message or summary)
        script = out.script if out.script is not None else head_script
        reason = f"agent_{out.status}"
        return Candidate(script, f"agent refused: {out.status}", [], "", rejected=reason,
                         message=out.detail[-1500:])


def _journal_view(e: Entry) -> dict[str, Any]:
    d = e.to_json()
    d.pop("uid", None)
    return d
