"""Sortition (chain.sortition): thresholds, escalation, and checkers per proposal staying near quorum + 1."""

from __future__ import annotations

import hashlib

from chain.builders import key
from chain.seeds import seed_proof
from chain.sortition import (
    SCALE,
    SPARE,
    VOLUNTEER_RATE,
    chosen,
    counted_threshold,
    ticket,
    volunteer_chosen,
)


def test_small_sets_check_everything_and_escalation_doubles() -> None:
    assert counted_threshold(2, 3) == SCALE  # (2 + 1) / 3: the old behaviour, every key checks
    base = counted_threshold(2, 30)
    assert base == 3 * SCALE // 30
    assert counted_threshold(2, 30, age_s=599, escalate_after_s=600) == base
    assert counted_threshold(2, 30, age_s=600, escalate_after_s=600) == 2 * base
    assert counted_threshold(2, 30, age_s=6000, escalate_after_s=600) == SCALE  # capped: everyone
    assert chosen(b"x" * 64, SCALE) and not chosen(b"x" * 64, 0)


def test_the_ticket_is_a_hash_of_the_verifiers_own_proof() -> None:
    proof = seed_proof(key(1), b"\x01" * 32)
    assert ticket(proof) == int.from_bytes(hashlib.sha256(b"ratchet/v1/ticket\x00" + proof).digest()[:8], "big")
    assert ticket(proof) != ticket(seed_proof(key(2), b"\x01" * 32))
    assert volunteer_chosen(proof) == (ticket(proof) < VOLUNTEER_RATE)


def test_expected_checkers_stay_near_quorum_plus_spare_as_the_set_grows() -> None:
    quorum = 2
    for n in (3, 10, 30):
        keys = [key(1000 + i) for i in range(n)]
        threshold = counted_threshold(quorum, n)
        per_proposal = [sum(chosen(seed_proof(k, bytes([i % 256, i // 256]) * 16), threshold) for k in keys)
                        for i in range(200)]
        mean = sum(per_proposal) / len(per_proposal)
        assert abs(mean - min(n, quorum + SPARE)) < 0.5, (n, mean)
