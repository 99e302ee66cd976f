"""Deterministic builders of signed objects: for tests, golden vectors, benchmarks and demos.

Keys come from fixed seeds (`key(n)`), timestamps are given explicitly, so the
same calls produce byte-identical objects on every machine. Nothing here is
used by a running node.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from chain.keys import SigningKey
from chain.objects import Arena, Attestation, Blob, Proposal
from chain.seeds import derive_seeds, seed_proof

REFERENCE_SCRIPT = b"# reference train.py\nLR = 3e-3  # learning rate\n"


def key(n: int) -> SigningKey:
    """The n-th deterministic test key."""
    return SigningKey.from_seed(hashlib.sha256(b"ratchet-test-key-%d" % n).digest())


def make_arena(
    creator: SigningKey,
    verifiers: Sequence[bytes],
    quorum: int,
    *,
    name: str = "tiny",
    script: bytes = REFERENCE_SCRIPT,
    seeds: int = 2,
    margin_ubpb: int = 100,
    created_at: int = 1_700_000_000_000,
) -> tuple[Arena, Blob]:
    blob = Blob(data=script)
    arena = Arena.create(
        creator, name=name, description=f"test arena {name}", script=blob.id, harness="test-1",
        dataset_name="synthetic", dataset_sha256=b"", dataset_source="generated per check",
        budget_kind="tokens", budget_value=100_000, wall_cap_s=600, hardware="cpu", seeds=seeds,
        quorum=quorum, verifiers=sorted(verifiers), margin_ubpb=margin_ubpb,
        max_script_bytes=65536, settings=[("vocab", "64")], bootstrap=[], created_at=created_at,
    )
    return arena, blob


def make_proposal(
    author: SigningKey,
    arena: Arena,
    parent: bytes,
    *,
    script: bytes | None = None,
    message: str = "a change",
    timestamp: int = 1_700_000_001_000,
    claim: tuple[int, int] = (1_500_000, 1_490_000),
) -> tuple[Proposal, Blob]:
    blob = Blob(data=script if script is not None else REFERENCE_SCRIPT + message.encode())
    proposal = Proposal.create(
        author, arena=arena.id, parent=parent, script=blob.id, message=message,
        claim_parent_ubpb=claim[0], claim_candidate_ubpb=claim[1], claim_seeds=[1, 2],
        claim_hardware="cpu", timestamp=timestamp,
    )
    return proposal, blob


def make_attestation(
    verifier: SigningKey,
    proposal: Proposal,
    verdict: str = "improves",
    *,
    gain_ubpb: int = 1000,
    parent_ubpb: int = 1_500_000,
    seeds: int = 2,
    timestamp: int = 1_700_000_002_000,
    wall_ms: int = 60_000,
    hardware: str = "cpu",
) -> Attestation:
    """An attestation whose every seed measured `gain_ubpb` (unless the verdict is invalid/cheat)."""
    proof = seed_proof(verifier, proposal.id)
    seed_list = derive_seeds(proof, seeds)
    measured = verdict in ("improves", "no_gain")
    return Attestation.create(
        verifier, proposal=proposal.id, arena=proposal.arena, seeds=seed_list, seed_proof=proof,
        parent_ubpb=[parent_ubpb] * seeds if measured else [],
        candidate_ubpb=[parent_ubpb - gain_ubpb] * seeds if measured else [],
        floor_ubpb=[], hardware=hardware, harness="test-1", verdict=verdict, flags=[],
        wall_ms=wall_ms, timestamp=timestamp,
    )
