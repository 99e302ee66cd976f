"""Sybil resistance of open verification: what fresh and colluding keys can and cannot do (chain.verifiers).

The bound under test (docs/ARCHITECTURE.md, "Open verification"): fresh keys count for nothing; accepting
a bad commit takes `quorum` counted keys, each admitted after ADMIT_AFTER agreeing checks, one admission per
height; `r` counted keys that say otherwise reject it anyway, and every admitted key that said improves on
it is demoted.
"""

from __future__ import annotations

from test_chain_verifiers import F1, F2, F3, arena_of, build_chain, prop

from chain import verifiers as rule
from chain.builders import key, make_attestation
from chain.consensus import compute_state

SYBILS = [key(500 + i) for i in range(10)]
COLLUDERS = [key(600 + i) for i in range(3)]


def test_ten_fresh_keys_attesting_improves_on_a_bad_commit_change_nothing() -> None:
    arena = arena_of()
    bad = prop(arena, arena.id, "bad")
    honest = [make_attestation(F1, bad, "no_gain")]
    before = compute_state(arena, [bad], honest)
    after = compute_state(arena, [bad], honest + [make_attestation(s, bad, "improves") for s in SYBILS])
    assert before.commits[bad.id].status == after.commits[bad.id].status == "pending"
    assert after.commits[bad.id].votes == before.commits[bad.id].votes
    assert after.accepted == before.accepted == frozenset() and after.head == arena.id
    assert all(after.standing.status(s.public) == "volunteer" for s in SYBILS)
    # Nor on a chain with history: fresh keys stay volunteers whatever they sign.
    props, atts = build_chain(arena, 5)
    bad2 = prop(arena, props[-1].id, "bad on a chain")
    s = compute_state(arena, [*props, bad2], atts + [make_attestation(k, bad2, "improves") for k in SYBILS])
    assert s.commits[bad2.id].status == "pending" and s.head == props[-1].id


def _admitted(colluders, heights: int = 60):
    """A chain on which `colluders` did honest work (agreed with every decided outcome) and were admitted."""
    arena = arena_of()
    props, atts = build_chain(arena, heights, volunteers=colluders)
    s = compute_state(arena, props, atts)
    assert all(s.standing.status(c.public) == "counted" for c in colluders)
    return arena, props, atts


def test_one_admitted_colluder_and_ten_fresh_keys_cannot_accept_a_bad_commit() -> None:
    arena, props, atts = _admitted(COLLUDERS[:1])
    bad = prop(arena, props[-1].id, "bad")
    lies = [make_attestation(k, bad, "improves") for k in (COLLUDERS[0], *SYBILS)]
    s = compute_state(arena, [*props, bad], atts + lies)
    assert s.commits[bad.id].status == "pending"  # one counted improves: below the quorum of 2
    assert s.head == props[-1].id


def test_a_quorum_of_admitted_colluders_is_overturned_by_r_honest_checks_and_demoted() -> None:
    arena, props, atts = _admitted(COLLUDERS[:2])
    bad = prop(arena, props[-1].id, "bad")
    child = prop(arena, bad.id, "built on the bad one")
    lies = [make_attestation(k, p, "improves") for k in COLLUDERS[:2] for p in (bad, child)]
    s = compute_state(arena, [*props, bad, child], atts + lies)
    # The bound: while no honest counted key has checked it, q colluders accept it...
    assert s.commits[bad.id].status == "accepted" and s.head == child.id
    # ...and r = 2 honest counted checks reject it and demote both colluders at its height, so their
    # votes on what was built on it no longer count either.
    honest = [make_attestation(f, bad, "no_gain") for f in (F1, F2)]
    s2 = compute_state(arena, [*props, bad, child], atts + lies + honest)
    assert s2.commits[bad.id].status == "rejected"
    assert s2.commits[child.id].status == "pending" and not s2.commits[child.id].votes
    assert s2.head == props[-1].id
    assert [s2.standing.status(k.public) for k in COLLUDERS[:2]] == ["demoted", "demoted"]
    # Demoted from the next height on, they no longer count: a bad commit they vouch for on a later
    # height stays pending (a sibling of `bad`, at its height, is still decided by that height's set).
    good = prop(arena, props[-1].id, "a good sibling")
    bad3 = prop(arena, good.id, "bad again")
    more = [make_attestation(f, good, "improves") for f in (F1, F2)]
    more += [make_attestation(k, bad3, "improves") for k in COLLUDERS[:2]]
    s3 = compute_state(arena, [*props, bad, child, good, bad3], atts + lies + honest + more)
    assert s3.commits[good.id].status == "accepted"
    assert s3.commits[bad3.id].status == "pending" and not s3.commits[bad3.id].votes


def test_one_honest_check_does_not_overturn_a_colluding_quorum_but_two_do() -> None:
    arena, props, atts = _admitted(COLLUDERS[:2])
    bad = prop(arena, props[-1].id, "bad")
    lies = [make_attestation(k, bad, "improves") for k in COLLUDERS[:2]]
    one = compute_state(arena, [*props, bad], atts + lies + [make_attestation(F3, bad, "no_gain")])
    assert one.commits[bad.id].status == "accepted"  # r = 2: one dissent is honest noise, not a veto
    assert arena.quorum == 2 and len(arena.verifiers) == 3


def test_copied_records_buy_at_most_one_counted_key_per_height() -> None:
    """Ten keys that agree with every decided outcome from the genesis on (copying costs nothing):
    the counted set grows by one key a height at most, from the first height after eligibility."""
    arena = arena_of()
    props, atts = build_chain(arena, 40, volunteers=SYBILS)
    s = compute_state(arena, props, atts)
    first = min(s.standing.record(k.public).since for k in SYBILS if s.standing.status(k.public) == "counted")
    for h, p in enumerate(props, start=1):
        admitted = len(s.commits[p.id].counted) - len(arena.verifiers)
        assert admitted <= max(0, h - first + 1)
    # Before any copier can have ADMIT_AFTER chosen checks, nobody is admitted.
    assert first > rule.ADMIT_AFTER
