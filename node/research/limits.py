"""Resource limits of the contributor loop: niceness, allowed hours, pause and resume.

Pause by creating the pause file (`<home>/research/pause`) or sending SIGUSR1;
resume by deleting it or sending SIGUSR2. Outside the allowed hours (local
time, e.g. 22-7 wraps midnight) the loop waits between experiments. Threads
are passed to the harness; niceness applies to this process and so to every
training subprocess it starts.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from node.research.errors import ResearchError

POLL_S = 1.0


def parse_hours(text: str) -> tuple[int, int]:
    """'22-7' -> (22, 7): run from 22:00 to 07:00 local time."""
    start, sep, end = text.partition("-")
    try:
        a, b = int(start), int(end)
    except ValueError as e:
        raise ResearchError(f"hours must look like 22-7, got {text!r}") from e
    if not sep or not (0 <= a <= 23 and 0 <= b <= 24) or a == b:
        raise ResearchError(f"hours must look like 22-7 (0-24, start != end), got {text!r}")
    return a, b


def within_hours(hours: tuple[int, int] | None, now: dt.datetime | None = None) -> bool:
    if hours is None:
        return True
    h = (now or dt.datetime.now()).hour
    a, b = hours
    return a <= h < b if a < b else (h >= a or h < b)


@dataclass
class Gate:
    """Decides whether the loop may start its next experiment, and waits until it may."""

    pause_file: Path
    hours: tuple[int, int] | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    _signal_paused: bool = False

    def install_signals(self) -> None:
        """SIGUSR1 pauses, SIGUSR2 resumes (only possible from the main thread)."""
        if threading.current_thread() is not threading.main_thread():
            return
        signal.signal(signal.SIGUSR1, lambda *_: self._set_paused(True))
        signal.signal(signal.SIGUSR2, lambda *_: self._set_paused(False))

    def _set_paused(self, value: bool) -> None:
        self._signal_paused = value

    def why_waiting(self) -> str | None:
        if self._signal_paused:
            return "paused by SIGUSR1 (send SIGUSR2 to resume)"
        if self.pause_file.exists():
            return f"paused: {self.pause_file} exists (delete it to resume)"
        if not within_hours(self.hours):
            a, b = self.hours or (0, 0)
            return f"outside the allowed hours {a:02d}:00-{b:02d}:00"
        return None

    def wait(self, on_wait: Callable[[str], None] | None = None) -> bool:
        """Block while paused; False if asked to stop meanwhile."""
        told = None
        while not self.stop.is_set():
            why = self.why_waiting()
            if why is None:
                return True
            if why != told and on_wait is not None:
                on_wait(why)
                told = why
            self.stop.wait(POLL_S)
        return False


def set_nice(increment: int) -> int:
    """Lower this process's priority by `increment` (children inherit it); returns the new value."""
    if increment <= 0:
        return os.nice(0)
    return os.nice(increment)
