"""Errors of the research package; each carries the data that explains it."""

from __future__ import annotations


class ResearchError(Exception):
    """Base class of every error the research package raises."""


class ScriptParseError(ResearchError):
    """A script that does not parse as Python, so its constants cannot be read."""

    def __init__(self, problem: str, line: int | None = None) -> None:
        where = f" (line {line})" if line else ""
        super().__init__(f"script does not parse{where}: {problem}")
        self.problem, self.line = problem, line


class UnknownKnobError(ResearchError):
    def __init__(self, name: str) -> None:
        super().__init__(f"the script has no mutable top-level constant {name!r}")
        self.name = name


class ConflictError(ResearchError):
    """A change whose constant no longer holds the value the change was made against."""

    def __init__(self, name: str, expected: object, found: object) -> None:
        super().__init__(f"{name}: expected {expected!r} in the script, found {found!r}")
        self.name, self.expected, self.found = name, expected, found


class InvalidMutationError(ResearchError):
    """A mutation that breaks a known rule between constants (e.g. width not divisible by heads)."""

    def __init__(self, rule: str) -> None:
        super().__init__(f"mutation breaks a rule: {rule}")
        self.rule = rule


class JournalError(ResearchError):
    """The journal could not be read or written (bad path, corrupt database)."""


class AgentError(ResearchError):
    """The agent command could not be started at all (not found, not executable)."""

    def __init__(self, command: str, problem: str) -> None:
        super().__init__(f"cannot run agent command {command!r}: {problem}")
        self.command, self.problem = command, problem


class SearchStateError(ResearchError):
    """The search's own state file in the data directory cannot be read."""

    def __init__(self, path: object, why: str) -> None:
        super().__init__(f"the search state {path} is unreadable ({why}); move it aside and the search starts "
                         f"afresh (the journal, the store and the keys are not affected)")
        self.path = path
