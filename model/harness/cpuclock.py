"""TreeClock: the CPU time (user + system) a process and all its descendants have used.

Read from /proc: for every live process of the tree, utime + stime (its own)
plus cutime + cstime (its children that were reaped). A descendant that dies
is counted once its parent reaps it; inside the sandbox's PID namespace every
orphan is reaped by the namespace's init, which is part of the tree, so work
moved into a short-lived child is still counted. Threads are included (a
process's times cover all its threads).
"""

from __future__ import annotations

import os
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")
PROC = Path("/proc")


def _stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, own + reaped children's CPU ticks) of a live process, None if gone."""
    try:
        raw = (PROC / str(pid) / "stat").read_bytes()
    except OSError:
        return None
    # The command name is in parentheses and may hold spaces: split after the last ')'.
    rest = raw[raw.rfind(b")") + 2:].split()
    try:
        ppid = int(rest[1])
        ticks = int(rest[11]) + int(rest[12]) + int(rest[13]) + int(rest[14])
    except (IndexError, ValueError):
        return None
    return ppid, ticks


def children(pid: int) -> list[int]:
    """The live child pids of `pid` (all its threads'), [] if it is gone."""
    out: list[int] = []
    try:
        tasks = os.listdir(PROC / str(pid) / "task")
    except OSError:
        return out
    for tid in tasks:
        try:
            text = (PROC / str(pid) / "task" / tid / "children").read_text()
        except OSError:
            continue
        out.extend(int(c) for c in text.split())
    return out


def tree_cpu_s(root: int) -> float:
    """CPU seconds used so far by `root` and every descendant (0.0 once the root is gone)."""
    total = 0
    seen: set[int] = set()
    stack = [root]
    while stack:
        pid = stack.pop()
        if pid in seen:
            continue
        seen.add(pid)
        st = _stat(pid)
        if st is None:
            continue
        total += st[1]
        stack.extend(children(pid))
    return total / TICKS


class TreeClock:
    """CPU seconds of a process tree since `start()`; keeps the last reading if the tree dies."""

    def __init__(self, root: int) -> None:
        self.root = root
        self.base: float | None = None
        self.last = 0.0

    def start(self) -> None:
        self.base = tree_cpu_s(self.root)
        self.last = self.base

    def read(self) -> float:
        """CPU seconds since start() (0.0 before start)."""
        if self.base is None:
            return 0.0
        now = tree_cpu_s(self.root)
        if now >= self.last:
            self.last = now
        return self.last - self.base
