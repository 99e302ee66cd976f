"""Sortition: whether a proposal is a verifier's to check, from its own signature over the proposal id.

A key's ticket for a proposal is SHA-256 over a domain prefix and its seed proof
(chain.seeds.seed_proof, the Ed25519 signature its check's seeds derive from),
read as a 64-bit fraction of 1. The author cannot compute it before publishing
(it would need the verifier's private key), anyone can recompute it from the
proof an attestation reveals. A key with a ticket under the threshold is chosen.

The threshold for counted keys gives `quorum + SPARE` expected checkers however
many keys are counted, and doubles every `escalate_after_s` a proposal stays
undecided. Volunteers have a rate of their own (VOLUNTEER_RATE), which
chain.verifiers also applies: only their checks under it build their record.
Ed25519 signatures are not unique, so a dishonest key can choose its ticket:
sortition spreads honest work, it never decides whether a counted vote counts
(docs/ARCHITECTURE.md, "Open verification").
"""

from __future__ import annotations

import hashlib

TICKET_DOMAIN = b"ratchet/v1/ticket\x00"
SCALE = 1 << 64  # tickets and thresholds are integers in [0, SCALE]: the same on every machine
SPARE = 1  # expected counted checkers beyond the quorum
VOLUNTEER_RATE = SCALE // 2  # a volunteer's check counts toward admission under this ticket
ESCALATE_AFTER_S = 600.0  # an undecided proposal's threshold doubles this often
MAX_DOUBLINGS = 64


def ticket(seed_proof: bytes) -> int:
    """The ticket of the key that signed `seed_proof` for its proposal: an integer in [0, SCALE)."""
    return int.from_bytes(hashlib.sha256(TICKET_DOMAIN + seed_proof).digest()[:8], "big")


def counted_threshold(quorum: int, counted: int, age_s: float = 0.0,
                      escalate_after_s: float = ESCALATE_AFTER_S) -> int:
    """The ticket bound for a counted key: (quorum + SPARE) / counted of SCALE, doubled per escalation."""
    base = (quorum + SPARE) * SCALE // max(1, counted)
    doublings = min(MAX_DOUBLINGS, int(max(0.0, age_s) // escalate_after_s)) if escalate_after_s > 0 else 0
    return min(SCALE, base << doublings)


def chosen(seed_proof: bytes, threshold: int) -> bool:
    """Whether a ticket is under `threshold` (SCALE: everyone is chosen)."""
    return threshold >= SCALE or ticket(seed_proof) < threshold


def volunteer_chosen(seed_proof: bytes) -> bool:
    """Whether a volunteer's check of this proposal counts toward its admission (chain.verifiers)."""
    return ticket(seed_proof) < VOLUNTEER_RATE
