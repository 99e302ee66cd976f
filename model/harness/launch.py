"""How the untrusted worker process is started: the Launcher protocol and the unsandboxed DirectLauncher.

run_script builds the worker's argv and asks a Launcher to wrap it (a sandbox
launcher prefixes bubblewrap and its mounts), then starts the result with the
two protocol pipe ends inherited and `preexec` run in the child before exec.
The worker needs to read only the paths in `readable` and to write only in
`workdir`.
"""

from __future__ import annotations

import resource
from pathlib import Path
from typing import Protocol, runtime_checkable

LOG_LIMIT_BYTES = 64 * 1024 * 1024  # the worker's stdout/stderr file; RLIMIT_FSIZE ends a flood


@runtime_checkable
class Launcher(Protocol):
    name: str

    def wrap(self, argv: list[str], *, workdir: Path, readable: list[Path]) -> list[str]:
        """The command line that runs `argv` with `workdir` as its writable working directory."""
        ...

    def preexec(self) -> None:
        """Runs in the child between fork and exec (resource limits); may do nothing."""
        ...


class DirectLauncher:
    """No sandbox: for `ratchet try` on your own code and for tests. Sets core and file-size limits."""

    name = "direct"

    def wrap(self, argv: list[str], *, workdir: Path, readable: list[Path]) -> list[str]:
        return list(argv)

    def preexec(self) -> None:
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_FSIZE, (LOG_LIMIT_BYTES, LOG_LIMIT_BYTES))
