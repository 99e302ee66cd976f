"""verify_proposal: seeds from the verifier's signature, a signed attestation the store accepts."""

from __future__ import annotations

import pytest
from conftest import hostile, small_arena
from test_check import genuine

from chain.builders import key as builder_key
from chain.objects import Blob, Proposal
from chain.seeds import derive_seeds, seed_proof
from chain.store import Store
from model.harness import HARNESS_VERSION
from verify.attest import FLAG_OVERCLAIM, verify_proposal
from verify.errors import MissingObjectError

pytestmark = pytest.mark.timeout(900)


@pytest.fixture
def store_one_seed(tmp_path, verifier_key):
    arena, ref = small_arena(verifier_key, seeds="1")
    store = Store.open(tmp_path / "home")
    store.add(ref)
    store.add(arena)
    yield store, arena, ref
    store.close()


def propose(store, arena, script: bytes, claim: tuple[int, int]) -> Proposal:
    blob = Blob(data=script)
    store.add(blob)
    p = Proposal.create(builder_key(7), arena=arena.id, parent=arena.id, script=blob.id, message="try",
                        claim_parent_ubpb=claim[0], claim_candidate_ubpb=claim[1], claim_seeds=[1],
                        claim_hardware="cpu", timestamp=1_700_000_001_000)
    store.add(p)
    return p


def test_attestation_of_a_genuine_improvement(store_one_seed, verifier_key, test_launcher):
    store, arena, ref = store_one_seed
    # claims 5 bpb of gain: far above anything measurable here
    p = propose(store, arena, genuine(ref.data), (9_000_000, 4_000_000))
    att = verify_proposal(verifier_key, store, p, threads=1, launcher=test_launcher)
    assert att.verdict == "improves"
    assert att.verifier == verifier_key.public and att.proposal == p.id and att.arena == arena.id
    assert att.seed_proof == seed_proof(verifier_key, p.id)
    assert list(att.seeds) == derive_seeds(att.seed_proof, 1)
    assert att.mean_gain_ubpb > arena.margin_ubpb and len(att.floor_ubpb) == 1
    assert att.harness == HARNESS_VERSION and att.hardware.startswith("cpu:")
    assert FLAG_OVERCLAIM in att.flags and att.wall_ms > 0
    assert store.add(att)  # signature, seeds and verifier set all check out


def test_attestation_of_an_invalid_script(store_one_seed, verifier_key, test_launcher):
    store, arena, _ = store_one_seed
    p = propose(store, arena, hostile("syntax_error.txt"), (1_000_000, 990_000))
    att = verify_proposal(verifier_key, store, p, threads=1, launcher=test_launcher)
    assert att.verdict == "invalid:syntax_error"
    assert list(att.parent_ubpb) == [] and list(att.candidate_ubpb) == [] and list(att.flags) == []
    assert store.add(att)


def test_missing_script_is_an_error(store_one_seed, verifier_key, test_launcher):
    store, arena, _ = store_one_seed
    orphan = Proposal.create(builder_key(7), arena=arena.id, parent=arena.id, script=b"\x01" * 32,
                             message="no blob", claim_parent_ubpb=1, claim_candidate_ubpb=1,
                             claim_seeds=[1], claim_hardware="cpu", timestamp=1_700_000_001_000)
    with pytest.raises(MissingObjectError):
        verify_proposal(verifier_key, store, orphan, threads=1, launcher=test_launcher)


def test_replay_reruns_the_recorded_check(store_one_seed, verifier_key, test_launcher, tmp_path):
    """`ratchet replay` runs the attestation's seeds with its token counts and agrees bit for bit."""
    import json

    from click.testing import CliRunner

    from node.cli import main

    store, arena, ref = store_one_seed
    p = propose(store, arena, genuine(ref.data), (9_000_000, 4_000_000))
    att = verify_proposal(verifier_key, store, p, threads=1, launcher=test_launcher)
    assert store.add(att)
    assert len(att.parent_tokens) == len(att.candidate_tokens) == 1 and min(*att.parent_tokens, *att.candidate_tokens) > 0
    assert all(ms > 0 for ms in (*att.parent_cpu_ms, *att.candidate_cpu_ms))
    r = CliRunner().invoke(main, ["--home", str(tmp_path / "home"), "--json", "replay", att.hex[:16]])
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    assert data["agrees"] and data["max_abs_diff_ubpb"] == 0
    assert [row["replayed_tokens"] for row in data["runs"]] == [att.parent_tokens[0], att.candidate_tokens[0]]
    bad = CliRunner().invoke(main, ["--home", str(tmp_path / "home"), "replay", p.hex[:16]])
    assert bad.exit_code == 1 and "not an attestation" in bad.output
