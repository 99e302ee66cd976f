"""Golden test vectors: objects built from fixed seeds, stored under tests/chain/golden/<hex id>.

Any change to the encoding, the id or the signature scheme changes these bytes
and fails here, on every platform. Regenerate deliberately (a protocol change)
with `python tests/chain/test_chain_golden.py --write`.

The checks below recompute ids and signatures from the spec (hashlib,
msgpack, cryptography) rather than through chain's own code paths.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import msgpack
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from chain.keys import SigningKey
from chain.objects import Arena, Attestation, Blob, ChainObject, Proposal, decode
from chain.seeds import derive_seeds, seed_proof

GOLDEN = Path(__file__).parent / "golden"


def seeded(n: int) -> SigningKey:
    return SigningKey.from_seed(bytes([n]) * 32)


def build() -> list[ChainObject]:
    creator, verifier, author = seeded(1), seeded(2), seeded(3)
    script = Blob(data=b"import torch\n\nLR = 3e-3  # learning rate\n")
    empty = Blob(data=b"")
    arena = Arena.create(
        creator, name="golden", description="golden vector arena \u00e9\u2713", script=script.id,
        harness="harness-1", dataset_name="synthetic", dataset_sha256=hashlib.sha256(b"data").digest(),
        dataset_source="generated", budget_kind="tokens", budget_value=1_000_000, wall_cap_s=900,
        hardware="cpu", seeds=3, quorum=1, verifiers=[verifier.public], margin_ubpb=500,
        max_script_bytes=65536, settings=[("lr", "0.003"), ("vocab", "256")],
        bootstrap=["/ip4/127.0.0.1/tcp/4001"], created_at=1_735_689_600_000,
    )
    new_script = Blob(data=b"import torch\n\nLR = 4e-3  # learning rate\n")
    proposal = Proposal.create(
        author, arena=arena.id, parent=arena.id, script=new_script.id, message="raise LR",
        claim_parent_ubpb=1_523_000, claim_candidate_ubpb=1_519_500, claim_seeds=[7, 8, 9],
        claim_hardware="cpu", timestamp=1_735_689_700_000,
    )
    proof = seed_proof(verifier, proposal.id)
    attestation = Attestation.create(
        verifier, proposal=proposal.id, arena=arena.id, seeds=derive_seeds(proof, 3), seed_proof=proof,
        parent_ubpb=[1_523_100, 1_522_900, 1_523_000], candidate_ubpb=[1_519_000, 1_520_000, 1_519_600],
        floor_ubpb=[1_400_000, 1_400_100, 1_399_900], parent_tokens=[4_000_000] * 3,
        candidate_tokens=[6_000_000] * 3, parent_cpu_ms=[55_000, 56_100, 54_900],
        candidate_cpu_ms=[54_000, 55_300, 55_100], compute_class=1, compute_x_milli=1_042,
        hardware="cpu", harness="harness-1", verdict="improves", flags=["slow"], wall_ms=61_234, timestamp=1_735_689_800_000,
    )
    rejected = Attestation.create(
        verifier, proposal=proposal.id, arena=arena.id, seeds=[], seed_proof=proof,
        parent_ubpb=[], candidate_ubpb=[], floor_ubpb=[], hardware="cpu", harness="harness-1",
        verdict="cheat:peeks_future", flags=[], wall_ms=0, timestamp=1_735_689_900_000,
    )
    return [script, empty, arena, new_script, proposal, attestation, rejected]


def write() -> None:
    GOLDEN.mkdir(exist_ok=True)
    for old in GOLDEN.iterdir():
        old.unlink()
    for obj in build():
        (GOLDEN / obj.hex).write_bytes(obj.encode())


def test_vectors_match_byte_for_byte() -> None:
    built = {obj.hex: obj.encode() for obj in build()}
    stored = {p.name: p.read_bytes() for p in GOLDEN.iterdir()}
    assert set(stored) == set(built), "golden/ and build() disagree on which objects exist"
    for name, data in stored.items():
        assert data == built[name], f"{name}: encoding changed"


@pytest.mark.parametrize("path", sorted(GOLDEN.iterdir()), ids=lambda p: p.name[:12])
def test_each_vector_decodes_under_its_own_id(path: Path) -> None:
    data = path.read_bytes()
    obj = decode(data, expected_id=bytes.fromhex(path.name))
    items = msgpack.unpackb(data, raw=False)
    # The id, recomputed from the spec: SHA-256 over "ratchet/v1/id/<type>\0" + encoding.
    assert hashlib.sha256(f"ratchet/v1/id/{items[0]}\x00".encode() + data).hexdigest() == path.name
    if obj.SIGNER is not None:
        # The signature, checked with a second library: Ed25519 over "ratchet/v1/<type>\0" +
        # the encoding of the array without its last element.
        payload = msgpack.packb(items[:-1], use_bin_type=True)
        signer = items[2 + obj.field_names().index(obj.SIGNER)]
        Ed25519PublicKey.from_public_bytes(signer).verify(items[-1], f"ratchet/v1/{items[0]}\x00".encode() + payload)


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        write()
        print(f"wrote {len(list(GOLDEN.iterdir()))} vectors to {GOLDEN}")
    else:
        print(__doc__)
