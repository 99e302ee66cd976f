"""Errors of the leaderboard; views turn them into HTTP answers (400, 404)."""

from __future__ import annotations


class LeaderboardError(Exception):
    """Base of every error raised by the leaderboard package."""


class BadQueryError(LeaderboardError):
    """A query parameter or path segment that is malformed (-> 400)."""

    def __init__(self, name: str, value: str, expected: str) -> None:
        self.name, self.value, self.expected = name, value, expected
        shown = value if len(value) <= 40 else value[:40] + "…"
        super().__init__(f"bad {name} {shown!r}: expected {expected}")


class NotHeldError(LeaderboardError):
    """A well-formed id this store does not hold (-> 404)."""

    def __init__(self, what: str, value: str) -> None:
        self.what, self.value = what, value
        shown = value if len(value) <= 64 else value[:64] + "…"
        super().__init__(f"no {what} {shown!r} in this store")


class JournalUnreadableError(LeaderboardError):
    """A contributor journal that exists but cannot be read (-> 503): locked, damaged, not SQLite."""

    def __init__(self, path: object, problem: str) -> None:
        self.path, self.problem = path, problem
        super().__init__(f"the contributor journal at {path} cannot be read: {problem}")
