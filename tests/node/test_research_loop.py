"""The contributor loop on the real `tiny` arena (real harness, sandbox, store, journal).

The arena's reference script is handicapped (learning rate / 10) so that the
built-in search's first move, learning rate up, is a clear improvement a
2-seed check can confirm; budgets are cut so each training run takes seconds.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from chain.builders import key, make_attestation
from chain.consensus import state_for
from chain.keys import SigningKey
from chain.objects import Arena, Blob, Proposal
from chain.store import Store
from journalfile import INVALID, PROPOSED, STALE
from node.research import mutate
from node.research.journal import Journal
from node.research.knobs import LOG, parse_knobs
from node.research.limits import Gate
from node.research.loop import ContributorLoop, LoopConfig, read_head
from node.research.search import BanditSearch

pytestmark = pytest.mark.timeout(240)

TEST_BUDGET = 8_000  # training tokens per run: a few seconds on a loaded 2-core box
VERIFIERS = [key(101), key(102), key(103)]


@dataclass
class World:
    home: Path
    store: Store
    arena: Arena
    author: SigningKey
    lr_name: str


def lr_knob(script: bytes) -> str:
    return next(n for n, k in parse_knobs(script).items()
                if k.rule == LOG and "LR" in n.split("[")[0].split("_"))


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    from model.arenas import build_arena, reference_script

    author = key(100)
    ref = reference_script("tiny")
    name = lr_knob(ref)
    lr = parse_knobs(ref)[name].value
    slow = mutate.apply(ref, mutate.Mutation((mutate.Change(name, lr, mutate.round_float(lr / 10)),)))
    arena, _ = build_arena("tiny", author, [v.public for v in VERIFIERS], 2,
                           overrides={"budget_value": str(TEST_BUDGET), "budget_kind": "tokens"})
    blob = Blob(data=slow)
    fields = {k: v for k, v in arena.fields().items() if k not in ("creator", "signature")}
    arena = Arena.create(author, **{**fields, "script": blob.id, "seeds": 2})
    with Store.open(tmp_path) as store:
        store.add(blob)
        store.add(arena)
        yield World(tmp_path, store, arena, author, name)


def seed_choosing(first_topic: str, script: bytes) -> int:
    """A search seed whose first proposal on an empty journal is `first_topic`."""
    for seed in range(200):
        cand = BanditSearch(seed=seed).propose(script, b"\x00" * 32, [], set(), 1000)
        if cand is not None and cand.topic == first_topic:
            return seed
    raise AssertionError(f"no seed proposes {first_topic} first")


def make_loop(w: World, journal: Journal, *, seed: int, gate: Gate | None = None,
              events: list[tuple[str, str]] | None = None, **config: object) -> ContributorLoop:
    def on_event(kind: str, text: str) -> None:
        if events is not None:
            events.append((kind, text))

    cfg = LoopConfig(seeds=2, threads=1, poll_s=0.05, **config)  # type: ignore[arg-type]
    return ContributorLoop(w.store, w.arena, w.author, journal, BanditSearch(seed=seed), cfg,
                           gate=gate, on_event=on_event)


def accept(w: World, script: bytes, parent: bytes, message: str) -> Proposal:
    """Store a proposal and a quorum of improves attestations: a new head."""
    blob = Blob(data=script)
    p = Proposal.create(key(200), arena=w.arena.id, parent=parent, script=blob.id, message=message,
                        claim_parent_ubpb=2_000_000, claim_candidate_ubpb=1_900_000,
                        claim_seeds=[1], claim_hardware="cpu", timestamp=1_800_000_000_000)
    w.store.add(blob)
    w.store.add(p)
    for v in VERIFIERS[:2]:
        w.store.add(make_attestation(v, p, gain_ubpb=50_000))
    return p


def test_search_checks_and_proposes_on_tiny(world: World) -> None:
    head = read_head(world.store, world.arena)
    seed = seed_choosing(f"{world.lr_name}:+", head.script)
    events: list[tuple[str, str]] = []
    with Journal.open(world.home) as j:
        loop = make_loop(world, j, seed=seed, events=events, max_experiments=1)
        assert loop.run() == 1
        (e,) = j.entries(world.arena.id)
    assert e.decision == PROPOSED, (e.reason, e.stages)
    assert [s.name for s in e.stages] == ["screen", "confirm"]
    screen, confirm = e.stages
    assert len(confirm.seeds) == 2 and not set(confirm.seeds) & set(screen.seeds)
    assert all(p > c for p, c in zip(confirm.parent_ubpb, confirm.candidate_ubpb, strict=True))
    (prop,) = world.store.proposals(world.arena.id)
    assert prop.id == e.proposal and prop.parent == world.arena.id and prop.author == world.author.public
    assert list(prop.claim_seeds) == list(confirm.seeds)
    assert world.store.blob_data(prop.script) == j_script(world, e.seq)
    assert any(k == "proposed" for k, _ in events)
    assert state_for(world.store, world.arena.id).commits[prop.id].status == "pending"


def j_script(w: World, seq: int) -> bytes:
    with Journal.open(w.home) as j:
        return j.script(seq)


def test_new_head_mid_experiment_triggers_a_rebase(world: World) -> None:
    head = read_head(world.store, world.arena)
    seed = seed_choosing(f"{world.lr_name}:+", head.script)
    knobs = parse_knobs(head.script)
    other = next(n for n, k in knobs.items() if k.mutable and n != world.lr_name
                 and mutate.neighbours(head.script, n, 1) is not None)
    moved = mutate.apply(head.script, mutate.neighbours(head.script, other, 1))  # type: ignore[arg-type]
    new_head: list[Proposal] = []

    events: list[tuple[str, str]] = []
    with Journal.open(world.home) as j:
        loop = make_loop(world, j, seed=seed, events=events, max_experiments=2)
        original = loop.on_event

        def on_event(kind: str, text: str) -> None:
            original(kind, text)
            if kind == "progress" and not new_head:  # after the first seed of the first run
                new_head.append(accept(world, moved, world.arena.id, f"move {other}"))

        loop.on_event = on_event
        loop.run()
        first, second = j.entries(world.arena.id)
    assert first.decision == STALE and first.parent == world.arena.id
    assert first.stages[-1].verdict == "aborted:new_head"
    assert second.parent == new_head[0].id
    assert second.summary.startswith("rebased: ") and world.lr_name in second.summary
    rebased = j_script(world, second.seq)
    assert parse_knobs(rebased)[other].value == parse_knobs(moved)[other].value
    assert parse_knobs(rebased)[world.lr_name].value > knobs[world.lr_name].value


def test_restart_resumes_the_journal(world: World) -> None:
    head = read_head(world.store, world.arena)
    seed = seed_choosing(f"{world.lr_name}:+", head.script)
    gate = Gate(pause_file=world.home / "pause")
    with Journal.open(world.home) as j:
        loop = make_loop(world, j, seed=seed, gate=gate)
        original = loop.on_event
        loop.on_event = lambda k, t: (original(k, t), k == "progress" and gate.stop.set())
        loop.run()
        (e,) = j.entries(world.arena.id)
        assert e.decision is None  # interrupted, left to resume
    with Journal.open(world.home) as j:  # a new process would do exactly this
        events: list[tuple[str, str]] = []
        loop = make_loop(world, j, seed=seed, events=events, max_experiments=0)
        assert loop.run() == 0
        (again,) = j.entries(world.arena.id)
    assert again.seq == e.seq and again.decision == PROPOSED
    assert any(k == "resume" for k, _ in events)


def test_a_script_that_fails_at_run_time_is_invalid(world: World) -> None:
    """A candidate that parses but crashes is measured as invalid, and the head is untouched."""
    from node.research.search import Candidate

    head = read_head(world.store, world.arena)
    broken = head.script + b"\nraise RuntimeError('boom')\n"

    class Once:
        name = "fixed"

        def propose(self, *a: object) -> Candidate:
            return Candidate(broken, "raise at import")

    with Journal.open(world.home) as j:
        cfg = LoopConfig(seeds=1, threads=1, max_experiments=1, poll_s=0.05)
        loop = ContributorLoop(world.store, world.arena, world.author, j, Once(), cfg)
        loop.run()
        (e,) = j.entries(world.arena.id)
    assert e.decision == INVALID and e.reason.startswith("invalid:"), e.reason
    assert world.store.proposals(world.arena.id) == []


def test_waits_while_own_proposal_is_pending(world: World) -> None:
    accept_none = Proposal.create(
        world.author, arena=world.arena.id, parent=world.arena.id,
        script=world.arena.script, message="pending", claim_parent_ubpb=1, claim_candidate_ubpb=0,
        claim_seeds=[1], claim_hardware="cpu", timestamp=1_800_000_000_000)
    world.store.add(accept_none)
    events: list[tuple[str, str]] = []
    gate = Gate(pause_file=world.home / "pause")
    threading.Timer(1.0, gate.stop.set).start()
    with Journal.open(world.home) as j:
        loop = make_loop(world, j, seed=0, gate=gate, events=events, max_pending=1)
        assert loop.run() == 0
    assert any(k == "wait" and "awaiting verification" in t for k, t in events)


FAKE_AGENT = r'''
import os, pathlib, re, sys, time
mode, name = sys.argv[1], sys.argv[2]
work = pathlib.Path(os.environ["RATCHET_WORKDIR"])
script = work / "train.py"
src = script.read_text()
if mode == "raise_lr":
    m = re.search(r"^(%s\s*=\s*)([0-9.eE+-]+)" % re.escape(name), src, re.M)
    src = src[:m.start(2)] + repr(float(m.group(2)) * 10) + src[m.end(2):]
    script.write_text(src)
    (work / "MESSAGE").write_text("restore the learning rate\n")
elif mode == "break":
    script.write_text(src + "\ndef oops(:\n")
elif mode == "hang":
    time.sleep(300)
elif mode == "forbidden":
    os.chmod(work / "arena.json", 0o644)
    (work / "arena.json").write_text("{}")
'''


@pytest.mark.parametrize("mode,decision,reason", [
    ("raise_lr", PROPOSED, ""),
    ("break", INVALID, "agent_broken"),
    ("hang", INVALID, "agent_timeout"),
    ("forbidden", INVALID, "agent_forbidden_edit"),
])
def test_agent_proposer_through_the_loop(world: World, tmp_path: Path, mode: str, decision: str,
                                         reason: str) -> None:
    import sys

    from node.research.agent import AgentProposer

    agent = tmp_path / "agent.py"
    agent.write_text(FAKE_AGENT)
    proposer = AgentProposer(f"{sys.executable} {agent} {mode} {world.lr_name}", timeout_s=3,
                             arena_info={"name": world.arena.name},
                             max_script_bytes=world.arena.max_script_bytes)
    with Journal.open(world.home) as j:
        cfg = LoopConfig(seeds=2, threads=1, max_experiments=1, poll_s=0.05)
        ContributorLoop(world.store, world.arena, world.author, j, proposer, cfg).run()
        (e,) = j.entries(world.arena.id)
    assert e.decision == decision, (e.reason, e.stages)
    assert e.reason.startswith(reason)
    assert e.proposer == "agent"
    proposals = world.store.proposals(world.arena.id)
    if decision == PROPOSED:
        assert [p.id for p in proposals] == [e.proposal]
        assert proposals[0].message.startswith("restore the learning rate")
    else:
        assert proposals == [] and e.stages == []


def test_the_proposer_s_own_stop_rule_ends_a_screen_early(world: World) -> None:
    """A candidate's stop_early (the TPE proposer's sequential rule) is applied after each seed."""
    from node.research.search import Candidate

    head = read_head(world.store, world.arena)
    same = head.script + b"\n# the same training\n"  # gain 0: the loop's own futility rule lets it go on
    seen: list[list[int]] = []

    def stop(gains: list[int]) -> str | None:
        seen.append(list(gains))
        return "proposer says stop"

    class Once:
        name = "fixed"

        def propose(self, *a: object) -> Candidate:
            return Candidate(same, "a comment", stop_early=stop)

    with Journal.open(world.home) as j:
        cfg = LoopConfig(seeds=2, threads=1, max_experiments=1, poll_s=0.05)
        ContributorLoop(world.store, world.arena, world.author, j, Once(), cfg).run()
        (e,) = j.entries(world.arena.id)
    assert seen == [seen[0]] and len(seen[0]) == 1  # asked once, after the first seed
    (screen,) = e.stages
    assert len(screen.seeds) == 1 and "proposer says stop" in e.reason + screen.verdict + screen.detail


def test_tpe_search_runs_in_the_loop_and_resumes_its_study(world: World) -> None:
    """Real experiments with the TPE proposer: each journal entry names its trial; a restart continues."""
    import optuna

    from node.research.tpe import TpeSearch

    def loop_with(j: Journal, seed: int, n: int) -> ContributorLoop:
        cfg = LoopConfig(seeds=2, threads=1, max_experiments=n, poll_s=0.05, confirm=False)
        return ContributorLoop(world.store, world.arena, world.author, j,
                               TpeSearch(home=world.home, arena=world.arena.id, seed=seed), cfg)

    with Journal.open(world.home) as j:
        assert loop_with(j, 1, 2).run() == 2
    with Journal.open(world.home) as j:  # a restart: a new proposer object on the same data directory
        assert loop_with(j, 2, 1).run() == 1
        entries = j.entries(world.arena.id)
    assert [e.proposer for e in entries] == ["tpe"] * 3 and all(e.decision for e in entries)
    refs = [(e.changes[0]["study"], e.changes[0]["trial"]) for e in entries]
    assert len({s for s, _ in refs}) == 1 and len({t for _, t in refs}) == 3
    storage = TpeSearch(home=world.home, arena=world.arena.id).storage
    study = optuna.load_study(study_name=refs[0][0], storage=storage)
    told = {t.number for t in study.trials if t.state != optuna.trial.TrialState.RUNNING}
    assert {t for _, t in refs[:2]} <= told  # results of the first run were told to the study
