"""Errors of the model package (arenas, data sources, harness).

A script's own failure is never an exception here: it is a RunResult with a
status and reason. These errors are for the harness's side: missing or
corrupt data, an unusable configuration, an unknown preset.
"""

from __future__ import annotations


class ModelError(Exception):
    """Base of every error raised by model/."""


class ConfigError(ModelError):
    """An arena's settings cannot be turned into a harness configuration."""

    def __init__(self, key: str, value: str, why: str) -> None:
        super().__init__(f"arena setting {key}={value!r}: {why}")
        self.key, self.value, self.why = key, value, why


class UnknownPresetError(ModelError):
    def __init__(self, preset: str, known: tuple[str, ...]) -> None:
        super().__init__(f"unknown arena preset {preset!r}; choose one of {', '.join(known)}")
        self.preset, self.known = preset, known


class DataError(ModelError):
    """The data an arena names is not usable here (detected before any training)."""


class DataUnavailableError(DataError):
    def __init__(self, name: str, path: str, instructions: str) -> None:
        super().__init__(f"dataset {name!r} is not available at {path}: {instructions}")
        self.name, self.path, self.instructions = name, path, instructions


class DataCorruptError(DataError):
    def __init__(self, name: str, path: str, expected: str, found: str) -> None:
        super().__init__(
            f"dataset {name!r} at {path} has SHA-256 {found}, expected {expected}; "
            "delete it and obtain it again"
        )
        self.name, self.path, self.expected, self.found = name, path, expected, found


class WorkerStartError(ModelError):
    """The worker died or hung before it touched the script: this machine's fault, not the script's."""

    def __init__(self, what: str, log_tail: str) -> None:
        super().__init__(f"the harness worker did not start ({what}): {log_tail[-1500:]}")
        self.what, self.log_tail = what, log_tail
