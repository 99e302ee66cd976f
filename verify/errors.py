"""Errors of the verify package: situations in which this machine cannot check at all.

A fault of the script under test is never an error here: it is a verdict
(`invalid:<reason>`, `cheat:<reason>`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from verify.check import CheckResult


class VerifyError(Exception):
    """Base error of the verify package."""


class NoSandboxError(VerifyError):
    def __init__(self, missing: str) -> None:
        super().__init__(
            f"refusing to run an untrusted script without a sandbox: {missing}. Install "
            "bubblewrap, or pass --unsafe-no-sandbox to run it unconfined on this machine"
        )
        self.missing = missing


class HarnessMismatchError(VerifyError):
    def __init__(self, wanted: str, have: str) -> None:
        super().__init__(f"the arena needs harness {wanted!r}; this verifier runs {have!r}")
        self.wanted, self.have = wanted, have


class MissingObjectError(VerifyError):
    def __init__(self, what: str, oid: bytes) -> None:
        super().__init__(f"cannot verify: {what} {oid.hex()[:16]} is not in the store")
        self.what, self.oid = what, oid


class CheckAborted(VerifyError):  # noqa: N818 - a caller's request to stop, not a failure
    """A caller's hook abandoned the check midway; `partial` holds what was measured so far."""

    def __init__(self, why: str, partial: CheckResult) -> None:
        super().__init__(f"check abandoned: {why}")
        self.why, self.partial = why, partial
