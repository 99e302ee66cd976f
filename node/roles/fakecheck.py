"""Scripted checks for network tests and benchmarks: a verdict read from the script, no training.

`ratchet verify --check-with node.roles.fakecheck:scripted` makes a verifier
sign attestations without running anything: the verdict is whatever the
candidate script asks for in a line `# verdict: <verdict>` (default no_gain),
with every seed measuring a gain of 1000 micro-bits for "improves". The seeds
are still the verifier's own (derived from its signature over the proposal id),
so the attestations are valid objects in every respect but the measurement.
`liar` is a byzantine verifier: it turns every verdict around. The environment
variable RATCHET_FAKE_CHECK_S adds a pause, standing in for the check's duration.

Never used by a real verifier: the CLI hides the option, and a real arena's
verifiers are chosen by its creator.
"""

from __future__ import annotations

import os
import re
import time

from chain.builders import make_attestation
from chain.keys import SigningKey
from chain.objects import Attestation, Proposal
from chain.store import Store

_VERDICT = re.compile(rb"^# verdict: *([a-z_:\-0-9]+) *$", re.M)
GAIN_UBPB = 1000


def requested_verdict(script: bytes) -> str:
    m = _VERDICT.search(script)
    return m.group(1).decode() if m else "no_gain"


def _attest(key: SigningKey, store: Store, proposal: Proposal, verdict: str) -> Attestation:
    pause = float(os.environ.get("RATCHET_FAKE_CHECK_S", "0") or 0)
    started = time.monotonic()
    if pause > 0:
        time.sleep(pause)
    arena = store.get(proposal.arena)
    return make_attestation(
        key, proposal, verdict, gain_ubpb=GAIN_UBPB if verdict == "improves" else 0,
        seeds=arena.seeds, timestamp=int(time.time() * 1000),
        wall_ms=int((time.monotonic() - started) * 1000), hardware="scripted",
    )


def scripted(key: SigningKey, store: Store, proposal: Proposal) -> Attestation:
    """The verdict the candidate script names."""
    return _attest(key, store, proposal, requested_verdict(store.blob_data(proposal.script)))


def liar(key: SigningKey, store: Store, proposal: Proposal) -> Attestation:
    """The opposite of the named verdict: improves <-> no_gain (anything else becomes improves)."""
    asked = requested_verdict(store.blob_data(proposal.script))
    return _attest(key, store, proposal, "no_gain" if asked == "improves" else "improves")
