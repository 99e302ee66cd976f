"""Byzantine and sybil behaviour at the store + consensus level.

The verifier set is n = 2k - 1 keys with quorum k, the smallest set where the
honest keys alone can decide: then up to k - 1 liars can neither accept a bad
commit nor block a good one. Every placement of 0..k-1 liars, each lying in
every way we know (flip the verdict, claim invalid or cheat, stay silent,
equivocate, exaggerate the gain), is one sibling commit of one arena, all fed
through a real store; the outcome of each is checked, and the credit of each
verifier must count exactly the checks where it disagreed.
"""

from __future__ import annotations

import itertools
import random
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from chain.builders import key, make_arena, make_attestation, make_proposal
from chain.consensus import ChainState, compute_state, state_for
from chain.credit import compute_credit
from chain.errors import (
    BadSignatureError,
    FieldValueError,
    UnknownParentError,
    UnknownProposalError,
    WrongArenaError,
)
from chain.keys import SigningKey
from chain.objects import Arena, Attestation, Blob, ChainObject, Proposal, decode
from chain.seeds import derive_seeds, seed_proof
from chain.store import Store

LIES = ("flip", "invalid", "cheat", "silent", "equivocate", "exaggerate")
AUTHOR = key(10)
SCRIPT = b"# candidate train.py shared by every case\n"


@dataclass(frozen=True)
class Case:
    truth: str  # what honest verifiers measure: "improves" | "no_gain"
    liars: dict[int, str]  # verifier index -> how it lies
    proposal: Proposal


def behave(v: SigningKey, index: int, p: Proposal, truth: str, lie: str | None) -> list[Attestation]:
    """What verifier `index` signs for `p`: honest gains differ a little per verifier."""
    honest_gain = 400 + 37 * index if truth == "improves" else -20 - index
    if lie is None:
        return [make_attestation(v, p, truth, gain_ubpb=honest_gain)]
    other = "no_gain" if truth == "improves" else "improves"
    return {
        "flip": [make_attestation(v, p, other, gain_ubpb=-honest_gain)],
        "invalid": [make_attestation(v, p, "invalid:nonfinite_logits")],
        "cheat": [make_attestation(v, p, "cheat:peeks_future")],
        "silent": [],
        "equivocate": [make_attestation(v, p, "improves", gain_ubpb=900),
                       make_attestation(v, p, "no_gain", gain_ubpb=-5, timestamp=1_700_000_003_000)],
        "exaggerate": [make_attestation(v, p, "improves", gain_ubpb=900_000)],
    }[lie]


def build_cases(arena: Arena, verifiers: list[SigningKey], k: int) -> tuple[list[Case], list[Attestation]]:
    cases, atts = [], []
    n = len(verifiers)
    for truth in ("improves", "no_gain"):
        for f in range(k):
            for who in itertools.combinations(range(n), f):
                for how in itertools.product(LIES, repeat=f):
                    liars = dict(zip(who, how, strict=True))
                    p, _ = make_proposal(AUTHOR, arena, arena.id, script=SCRIPT,
                                         message=f"{truth} liars={sorted(liars.items())}")
                    cases.append(Case(truth, liars, p))
                    for i, v in enumerate(verifiers):
                        atts += behave(v, i, p, truth, liars.get(i))
    return cases, atts


def expected_credit(cases: list[Case], n: int) -> list[tuple[int, int]]:
    """Per verifier index: (agreed, disagreed) over all cases, the outcome being the truth."""
    out = [[0, 0] for _ in range(n)]
    for c in cases:
        for i in range(n):
            lie = c.liars.get(i)
            if lie == "silent":
                continue
            said_improves = {None: c.truth == "improves", "flip": c.truth != "improves", "invalid": False,
                             "cheat": False, "exaggerate": True}.get(lie)
            agreed = lie != "equivocate" and said_improves == (c.truth == "improves")
            out[i][0 if agreed else 1] += 1
    return [(a, d) for a, d in out]


def check_outcomes(state: ChainState, cases: list[Case], n: int) -> None:
    for c in cases:
        info = state.commits[c.proposal.id]
        want = "accepted" if c.truth == "improves" else "rejected"
        assert info.status == want, f"{c.truth} with liars {c.liars}: {info.status} ({info.reason})"
        if want == "accepted":
            honest = [400 + 37 * i for i in range(n) if i not in c.liars]
            assert min(honest) <= info.gain_ubpb <= max(honest), f"liars {c.liars} moved the gain to {info.gain_ubpb}"
    best = max((state.commits[c.proposal.id] for c in cases if c.truth == "improves"),
               key=lambda i: (i.cumulative_ubpb, -i.height, [-b for b in i.id]))
    assert state.head == best.id


@pytest.mark.parametrize("k", [2, 3], ids=["n3-k2", "n5-k3"])
def test_up_to_k_minus_1_liars_in_every_pattern(tmp_path: Path, k: int) -> None:
    n = 2 * k - 1
    verifiers = [key(1 + i) for i in range(n)]
    arena, blob = make_arena(key(0), [v.public for v in verifiers], quorum=k)
    cases, atts = build_cases(arena, verifiers, k)
    # 2 truths x sum over f < k of C(n, f) * 6^f placements: 14 for k=2, 782 for k=3.
    assert len(cases) == 2 * sum(len(list(itertools.combinations(range(n), f))) * len(LIES) ** f for f in range(k))
    with Store.open(tmp_path / "home") as store:
        store.add(blob)
        store.add(arena)
        store.add(Blob(data=SCRIPT))
        for c in cases:
            assert store.add(c.proposal)
        rng = random.Random(k)
        rng.shuffle(atts)  # arrival order must not matter
        for a in atts:
            assert store.add(a)
        state = state_for(store, arena.id)
        check_outcomes(state, cases, n)
        credit = compute_credit(state, store.attestations(arena.id))
    by_key = {vc.key: vc for vc in credit.verifiers}
    for i, (agreed, disagreed) in enumerate(expected_credit(cases, n)):
        vc = by_key[verifiers[i].public]
        assert (vc.agreed, vc.disagreed, vc.pending) == (agreed, disagreed, 0), f"verifier {i}"
        assert vc.points == 10 * agreed
    # The pure function gives the same state from the same objects in another order.
    again = compute_state(arena, [c.proposal for c in reversed(cases)], list(reversed(atts)))
    assert again.accepted == state.accepted and again.head == state.head


def test_k_colluding_liars_can_accept_the_documented_limit() -> None:
    """With k liars the quorum is theirs: the bound above is tight (SECURITY.md states it)."""
    verifiers = [key(1 + i) for i in range(5)]
    arena, _ = make_arena(key(0), [v.public for v in verifiers], quorum=3)
    p, _ = make_proposal(AUTHOR, arena, arena.id, script=SCRIPT, message="bad")
    atts = [make_attestation(v, p, "improves") for v in verifiers[:3]]
    atts += [make_attestation(v, p, "no_gain", gain_ubpb=-10) for v in verifiers[3:]]
    state = compute_state(arena, [p], atts)
    assert state.commits[p.id].status == "accepted"
    credit = {vc.key: vc for vc in compute_credit(state, atts).verifiers}
    assert [credit[v.public].disagreed for v in verifiers] == [0, 0, 0, 1, 1]  # honest minority marked


@pytest.fixture
def world(tmp_path: Path):
    verifiers = [key(1), key(2), key(3)]
    arena, blob = make_arena(key(0), [v.public for v in verifiers], quorum=2)
    store = Store.open(tmp_path / "home")
    store.add(blob)
    store.add(arena)
    yield store, arena, verifiers
    store.close()


def _rows(store: Store) -> tuple[int, dict[str, int]]:
    return store.data_version(), store.counts()


def test_sybil_keys_outside_the_set_change_nothing(world) -> None:
    store, arena, verifiers = world
    p, b = make_proposal(AUTHOR, arena, arena.id, message="sybil target")
    store.add(b)
    store.add(p)
    sybils = [SigningKey.from_seed(bytes([7, i]) + b"\x00" * 30) for i in range(200)]
    sybil_atts = [make_attestation(s, p) for s in sybils]
    for a in sybil_atts:  # any key may attest: stored, shown, and counted for nothing (chain.verifiers)
        assert store.add(a)
    assert state_for(store, arena.id).commits[p.id].status == "pending"
    # Fed straight to the pure functions (a node that skipped the store): ignored there too.
    state = compute_state(arena, [p], sybil_atts + [make_attestation(verifiers[0], p)])
    assert state.commits[p.id].status == "pending"
    assert set(state.commits[p.id].votes) == {verifiers[0].public}
    # Listed as volunteers (chain.verifiers), with no points: a copied verdict buys no rank.
    assert all(vc.points == 0 for vc in compute_credit(state, sybil_atts).verifiers)


def test_one_key_flooding_proposals_does_not_disturb_the_chain(world) -> None:
    store, arena, verifiers = world
    flooder = key(66)
    good, gb = make_proposal(AUTHOR, arena, arena.id, message="the real improvement")
    store.add(gb)
    store.add(good)
    for v in verifiers[:2]:
        store.add(make_attestation(v, good))
    t0 = time.perf_counter()
    parent = good.id
    for i in range(1500):  # siblings and a long dangling line, all from one key
        p, _ = make_proposal(flooder, arena, parent if i % 2 else arena.id, script=SCRIPT,
                             message=f"spam {i}", timestamp=1_700_000_001_000 + i)
        assert store.add(p)
        if i % 2:
            parent = p.id
    add_s = time.perf_counter() - t0
    store.add(Blob(data=SCRIPT))
    t0 = time.perf_counter()
    state = state_for(store, arena.id)
    credit = compute_credit(state, store.attestations(arena.id))
    state_s = time.perf_counter() - t0
    assert state.head == good.id and state.accepted == {good.id}
    spam = [c for c in state.commits.values() if c.proposal.author == flooder.public]
    assert len(spam) == 1500 and all(c.status == "pending" for c in spam)
    flood_credit = next(c for c in credit.contributors if c.key == flooder.public)
    assert (flood_credit.points, flood_credit.accepted, flood_credit.proposals) == (0, 0, 1500)
    assert credit.contributors[0].key == AUTHOR.public
    assert state_s < 5.0, f"state over 1,500 flood proposals took {state_s:.2f}s"
    print(f"flood: 1500 proposals stored in {add_s:.2f}s, state+credit in {state_s * 1000:.0f} ms")


def test_replays_are_no_ops_and_signatures_do_not_transfer(world) -> None:
    store, arena, verifiers = world
    p1, b1 = make_proposal(AUTHOR, arena, arena.id, message="one")
    p2, b2 = make_proposal(AUTHOR, arena, arena.id, message="two")
    objs: list[ChainObject] = [b1, p1, b2, p2] + [make_attestation(v, p1) for v in verifiers]
    for o in objs:
        store.add(o)
    before = _rows(store)
    rng = random.Random(3)
    for _ in range(5):  # every old message again, in any order, either entry point
        rng.shuffle(objs)
        for o in objs:
            assert store.add(o) is False
            assert store.add_encoded(o.encode()) == o
    assert _rows(store) == before
    # An attestation of p1 re-pointed at p2: its signature and seed proof cover p1.
    a = make_attestation(verifiers[0], p1)
    moved = a.replace(proposal=p2.id)
    with pytest.raises(BadSignatureError):
        store.add(moved)
    # Re-signed by its own key but with p1's seed proof: the proof's signature covers p1.
    v = verifiers[0]
    forged = Attestation.create(v, **{**{k: x for k, x in a.fields().items() if k not in ("signature", "verifier")},
                                      "proposal": p2.id})
    with pytest.raises(BadSignatureError):
        decode(forged.encode())
    # A seed list that is not the one the proof derives: refused even with good signatures.
    proof = seed_proof(v, p2.id)
    wrong = Attestation.create(v, **{**{k: x for k, x in a.fields().items() if k not in ("signature", "verifier")},
                                     "proposal": p2.id, "seed_proof": proof,
                                     "seeds": [s ^ 1 for s in derive_seeds(proof, 2)]})
    with pytest.raises(FieldValueError, match="derive"):
        store.add(wrong)
    assert _rows(store) == before


def test_unknown_and_stale_parents(world) -> None:
    store, arena, verifiers = world
    v1, v2, v3 = verifiers
    a, ab = make_proposal(AUTHOR, arena, arena.id, message="a", claim=(1_500_000, 1_499_000))
    b, bb = make_proposal(key(11), arena, arena.id, message="b")
    for o in (ab, a, bb, b):
        store.add(o)
    for v in (v1, v2):
        store.add(make_attestation(v, a, gain_ubpb=1000))
        store.add(make_attestation(v, b, gain_ubpb=3000))  # b wins: a's branch is now stale
    assert state_for(store, arena.id).head == b.id
    before = _rows(store)
    # Unknown parent: refused, store untouched; accepted once the parent arrives.
    ghost, gb = make_proposal(AUTHOR, arena, arena.id, message="not yet received")
    child, cb = make_proposal(AUTHOR, arena, ghost.id, message="child of ghost")
    with pytest.raises(UnknownParentError):
        store.add(child)
    for not_a_commit in (ab.id, make_attestation(v1, a).id, b"\x11" * 32):  # a blob, an attestation, random
        with pytest.raises(UnknownParentError):
            store.add(make_proposal(AUTHOR, arena, not_a_commit, message="bogus parent")[0])
    assert _rows(store) == before
    # A parent on another arena: refused.
    other, ob = make_arena(key(0), [v1.public], quorum=1, name="other")
    store.add(ob)
    store.add(other)
    op, _ = make_proposal(AUTHOR, other, other.id, message="elsewhere")
    store.add(op)
    with pytest.raises(WrongArenaError):
        store.add(make_proposal(AUTHOR, arena, op.id, message="cross-arena")[0])
    with pytest.raises(UnknownProposalError):
        store.add(make_attestation(v1, child))
    store.add(gb)
    store.add(ghost)
    store.add(cb)
    store.add(child)
    # Stale branch: a child of the displaced a, accepted, and the head moves only if it beats b.
    stale, sb = make_proposal(AUTHOR, arena, a.id, message="on the stale branch")
    store.add(sb)
    store.add(stale)
    for v in (v2, v3):
        store.add(make_attestation(v, stale, gain_ubpb=1500))
    s = state_for(store, arena.id)
    assert s.commits[stale.id].status == "accepted" and s.head == b.id  # 2500 < 3000
    small, smb = make_proposal(key(11), arena, stale.id, message="stale branch overtakes")
    store.add(smb)
    store.add(small)
    for v in (v1, v3):
        store.add(make_attestation(v, small, gain_ubpb=600))
    s = state_for(store, arena.id)
    assert s.head == small.id and s.lineage(small.id) == [small.id, stale.id, a.id]  # 3100 > 3000
    assert b.id in s.accepted  # the displaced branch keeps its commit (and its author's credit)
    # A child of a rejected commit never becomes accepted, whatever its votes.
    bad, bdb = make_proposal(AUTHOR, arena, arena.id, message="rejected")
    store.add(bdb)
    store.add(bad)
    for v in (v1, v2):
        store.add(make_attestation(v, bad, "no_gain", gain_ubpb=-3))
    kid, kb = make_proposal(AUTHOR, arena, bad.id, message="child of rejected")
    store.add(kb)
    store.add(kid)
    for v in verifiers:
        store.add(make_attestation(v, kid, gain_ubpb=50_000))
    s = state_for(store, arena.id)
    assert s.commits[bad.id].status == "rejected" and s.commits[kid.id].status == "orphaned"
    assert s.head == small.id


def test_equivocation_counts_for_nothing_and_is_marked(world) -> None:
    store, arena, verifiers = world
    v1, v2, v3 = verifiers
    p, pb = make_proposal(AUTHOR, arena, arena.id, message="contested")
    store.add(pb)
    store.add(p)
    # v1 says both; v2 says improves twice (different measurements): one vote, not two.
    for a in (make_attestation(v1, p, "improves"), make_attestation(v1, p, "no_gain", gain_ubpb=-1),
              make_attestation(v2, p, "improves", gain_ubpb=500),
              make_attestation(v2, p, "improves", gain_ubpb=700, timestamp=1_700_000_009_000)):
        assert store.add(a)
    s = state_for(store, arena.id)
    assert s.commits[p.id].status == "pending"
    assert s.commits[p.id].votes == {v2.public: "improves"}
    store.add(make_attestation(v3, p, "improves", gain_ubpb=600))
    s = state_for(store, arena.id)
    assert s.commits[p.id].status == "accepted"
    credit = {vc.key: vc for vc in compute_credit(s, store.attestations(arena.id)).verifiers}
    assert (credit[v1.public].agreed, credit[v1.public].disagreed) == (0, 1)
    assert (credit[v2.public].agreed, credit[v2.public].disagreed) == (1, 0)
    assert credit[v2.public].checks == 1


def test_clock_skew_between_signers_changes_no_outcome(tmp_path: Path) -> None:
    """Authors and verifiers whose clocks are years apart (or at 0): timestamps order display only."""
    verifiers = [key(1), key(2), key(3)]
    arena, blob = make_arena(key(0), [v.public for v in verifiers], quorum=2)

    def chain_with(skews: list[int]) -> ChainState:
        p1, _ = make_proposal(AUTHOR, arena, arena.id, message="one", timestamp=max(0, 1_700_000_001_000 + skews[0]))
        p2, _ = make_proposal(key(11), arena, p1.id, message="two", timestamp=max(0, 1_700_000_002_000 + skews[1]))
        p3, _ = make_proposal(AUTHOR, arena, arena.id, message="rival", timestamp=max(0, 1_700_000_003_000 + skews[2]))
        atts = []
        for i, (p, gain) in enumerate(((p1, 500), (p2, 400), (p3, 800))):
            for j, v in enumerate(verifiers[:2]):
                atts.append(make_attestation(v, p, gain_ubpb=gain,
                                             timestamp=max(0, 1_700_000_009_000 + skews[(i + j) % 3])))
        with Store.open(tmp_path / f"skew{abs(hash(tuple(skews)))}") as s:
            for o in (blob, arena, p1, p2, p3, *atts):
                s.add(o)
            return state_for(s, arena.id)

    year = 365 * 86_400_000
    base = chain_with([0, 0, 0])
    for skews in ([year, -year, 0], [-1_700_000_001_000, 50 * year, -3 * year], [7, -7, 2**40]):
        s = chain_with(skews)
        # Same outcome per message (ids differ because the timestamps are signed).
        by_msg = {c.proposal.message: (c.status, c.height, c.cumulative_ubpb) for c in s.commits.values()}
        want = {c.proposal.message: (c.status, c.height, c.cumulative_ubpb) for c in base.commits.values()}
        assert by_msg == want, skews
        assert s.commits[s.head].proposal.message == base.commits[base.head].proposal.message == "two"
