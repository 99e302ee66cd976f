"""Open verification (chain.verifiers): statuses, admission, demotion, the counted set, order independence."""

from __future__ import annotations

import random
from unittest import mock

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chain import verifiers as rule
from chain.builders import key, make_arena, make_attestation, make_proposal
from chain.consensus import compute_state
from chain.objects import Arena, Attestation, Proposal
from chain.seeds import seed_proof
from chain.sortition import volunteer_chosen

F1, F2, F3 = key(1), key(2), key(3)
FOUNDERS = (F1, F2, F3)
AUTHOR = key(10)
VOLUNTEERS = [key(200 + i) for i in range(8)]


def arena_of() -> Arena:
    return make_arena(key(0), [f.public for f in FOUNDERS], 2)[0]


def prop(arena: Arena, parent: bytes, msg: str) -> Proposal:
    return make_proposal(AUTHOR, arena, parent, message=msg)[0]


def counts(p: Proposal, k) -> bool:
    """Whether a volunteer's check of `p` builds its record (its ticket is under the volunteer rate)."""
    return volunteer_chosen(seed_proof(k, p.id))


def build_chain(arena: Arena, heights: int, checkers=(F1, F2), volunteers=(), verdict_of=None,
                start: bytes | None = None, tag: str = "") -> tuple[list[Proposal], list[Attestation]]:
    """A line of `heights` good commits, each accepted by `checkers`, attested by `volunteers` with
    `verdict_of(volunteer, proposal)` (default: agreeing, improves)."""
    props, atts = [], []
    parent = start or arena.id
    for h in range(heights):
        p = prop(arena, parent, f"good {tag}{h}")
        props.append(p)
        atts += [make_attestation(c, p, "improves") for c in checkers]
        for v in volunteers:
            atts.append(make_attestation(v, p, verdict_of(v, p) if verdict_of else "improves"))
        parent = p.id
    return props, atts


def test_an_arena_no_volunteer_attests_has_only_its_founders_counted() -> None:
    arena = arena_of()
    props, atts = build_chain(arena, 3)
    s = compute_state(arena, props, atts)
    assert all(c.status == "accepted" for c in s.commits.values())
    assert s.standing is not None and s.standing.counted == frozenset(arena.verifiers)
    assert {k: r.status for k, r in s.standing.records.items()} == {f.public: "founding" for f in FOUNDERS}
    assert all(c.counted == frozenset(arena.verifiers) for c in s.commits.values())


def test_a_volunteer_is_counted_after_ten_agreeing_checks_it_could_not_choose() -> None:
    arena = arena_of()
    v = VOLUNTEERS[0]
    props, atts = build_chain(arena, 40, volunteers=[v])
    chosen = [i for i, p in enumerate(props) if counts(p, v)]
    assert len(chosen) >= rule.ADMIT_AFTER + 1
    s = compute_state(arena, props, atts)
    rec = s.standing.record(v.public)
    assert rec.status == "counted" and rec.needed == 0
    # Eligible at the end of the height of its 10th chosen check, admitted at the next height.
    tenth = chosen[rule.ADMIT_AFTER - 1]
    assert rec.since == tenth + 2  # heights start at 1
    assert v.public not in s.commits[props[tenth].id].counted
    assert v.public in s.commits[props[tenth + 1].id].counted
    # Before admission only its chosen checks built its record; once counted every check is read.
    assert rec.checks == rule.ADMIT_AFTER + (len(props) - tenth - 1)
    # Before its tenth chosen check it is a volunteer needing the rest.
    early = compute_state(arena, props[: chosen[4] + 1], atts)
    assert early.standing.record(v.public).status == "volunteer"
    assert early.standing.record(v.public).needed == rule.ADMIT_AFTER - 5


def test_a_disagreement_resets_the_streak_and_demotes_a_counted_key() -> None:
    arena = arena_of()
    v = VOLUNTEERS[1]
    props, atts = build_chain(arena, 30, volunteers=[v])
    s = compute_state(arena, props, atts)
    assert s.standing.status(v.public) == "counted"
    # Then it says no_gain on a good commit the founders accept: demoted, and its vote did not stop it.
    last = props[-1].id
    more, more_atts = build_chain(arena, 3, start=last, tag="x",
                                  volunteers=[v], verdict_of=lambda k, p: "no_gain")
    s2 = compute_state(arena, props + more, atts + more_atts)
    assert all(s2.commits[p.id].status == "accepted" for p in more)
    assert s2.standing.status(v.public) == "demoted"
    assert s2.standing.record(v.public).demotions == 1 and s2.standing.record(v.public).streak == 0


def test_streak_after_a_reset_counts_only_what_follows() -> None:
    arena = arena_of()
    w = VOLUNTEERS[2]
    props, _ = build_chain(arena, 30)
    chosen = [i for i, p in enumerate(props) if counts(p, w)]
    bad_at = chosen[rule.ADMIT_AFTER - 2]  # its 9th chosen check disagrees
    props, atts = build_chain(arena, 30, volunteers=[w],
                              verdict_of=lambda k, p: "no_gain" if p.id == props[bad_at].id else "improves")
    rec = compute_state(arena, props, atts).standing.record(w.public)
    after = [i for i in chosen if i > bad_at]
    assert rec.disagreed == 1
    if len(after) >= rule.ADMIT_AFTER:
        assert rec.status == "counted"
    else:
        assert rec.status == "volunteer" and rec.streak == len(after)


def test_at_most_one_key_is_admitted_per_height() -> None:
    arena = arena_of()
    vs = VOLUNTEERS[:5]
    props, atts = build_chain(arena, 45, volunteers=vs)
    s = compute_state(arena, props, atts)
    admitted = sorted((s.standing.record(v.public).since, v.public) for v in vs
                      if s.standing.status(v.public) == "counted")
    assert len(admitted) == 5
    assert len({since for since, _ in admitted}) == 5  # each at its own height
    sizes = [len(s.commits[p.id].counted) for p in props]
    assert all(b - a in (0, 1) for a, b in zip(sizes, sizes[1:], strict=False))


def test_an_admitted_key_that_stops_checking_is_demoted_founders_are_not() -> None:
    arena = arena_of()
    v = VOLUNTEERS[3]
    props, atts = build_chain(arena, 30, volunteers=[v])
    assert compute_state(arena, props, atts).standing.status(v.public) == "counted"
    idle, idle_atts = build_chain(arena, rule.INACTIVE_AFTER + 1, start=props[-1].id, tag="idle")
    s = compute_state(arena, props + idle, atts + idle_atts)
    assert s.standing.status(v.public) == "demoted"
    assert s.standing.status(F3.public) == "founding"  # F3 never checked anything: still counted
    assert F3.public in s.standing.counted


def test_volunteer_votes_never_decide_and_counted_ones_do() -> None:
    arena = arena_of()
    v1, v2 = VOLUNTEERS[4], VOLUNTEERS[5]
    props, atts = build_chain(arena, 50, volunteers=[v1, v2])
    s = compute_state(arena, props, atts)
    assert {s.standing.status(v1.public), s.standing.status(v2.public)} == {"counted"}
    # The founders are gone: the two admitted keys accept a good commit and reject a bad one.
    head = props[-1].id
    good, bad = prop(arena, head, "good after founders"), prop(arena, head, "bad after founders")
    later = [make_attestation(k, good, "improves") for k in (v1, v2)]
    later += [make_attestation(k, bad, "no_gain") for k in (v1, v2)]
    s2 = compute_state(arena, props + [good, bad], atts + later)
    assert s2.commits[good.id].status == "accepted" and s2.commits[bad.id].status == "rejected"
    assert s2.head == good.id


def _random_world(seed: int) -> tuple[Arena, list[Proposal], list[Attestation]]:
    rng = random.Random(seed)
    arena = arena_of()
    props: list[Proposal] = []
    atts: list[Attestation] = []
    pool = [arena.id]
    for i in range(rng.randint(3, 14)):
        p = prop(arena, rng.choice(pool), f"p{seed}-{i}")
        props.append(p)
        pool.append(p.id)
        good = rng.random() < 0.7
        for k in (*FOUNDERS, *VOLUNTEERS[:4]):
            if rng.random() < 0.75:
                honest = "improves" if good else "no_gain"
                verdict = honest if rng.random() < 0.85 else rng.choice(["improves", "no_gain", "invalid:x"])
                atts.append(make_attestation(k, p, verdict, timestamp=rng.randint(0, 10**6)))
    return arena, props, atts


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10**6), order=st.randoms(use_true_random=False))
def test_statuses_and_state_do_not_depend_on_arrival_order(seed: int, order: random.Random) -> None:
    # Small constants so that a dozen proposals exercise admission, demotion and inactivity.
    with mock.patch.object(rule, "ADMIT_AFTER", 2), mock.patch.object(rule, "INACTIVE_AFTER", 3):
        arena, props, atts = _random_world(seed)
        first = compute_state(arena, props, atts)
        shuffled_p, shuffled_a = props[:], atts + atts[: len(atts) // 3]  # duplicates change nothing either
        order.shuffle(shuffled_p)
        order.shuffle(shuffled_a)
        again = compute_state(arena, shuffled_p, shuffled_a)
    assert again == first
    assert again.standing == first.standing
