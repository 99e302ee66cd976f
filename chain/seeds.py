"""Verifier seeds: derived from the verifier's own signature over the proposal id.

Ed25519 signatures are deterministic, so a verifier always gets the same seeds
for a proposal; nobody without its key can predict them; anyone can check them
from the proof revealed in the attestation (Attestation.signature_claims, check_derived).
"""

from __future__ import annotations

import hashlib

from chain import keys

SEED_DOMAIN = "seed"


def seed_proof(key: keys.SigningKey, proposal_id: bytes) -> bytes:
    return key.sign(SEED_DOMAIN, proposal_id)


def derive_seeds(proof: bytes, count: int) -> list[int]:
    """`count` 31-bit seeds from a proof (usable by torch, numpy and the data generators)."""
    out = []
    for i in range(count):
        digest = hashlib.sha256(proof + i.to_bytes(4, "big")).digest()
        out.append(int.from_bytes(digest[:4], "big") & 0x7FFFFFFF)
    return out
