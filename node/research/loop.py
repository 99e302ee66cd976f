"""The contributor loop: sync the head, make a candidate, check it locally, propose what wins.

One experiment:

1. read the head from the store (the network node keeps the store in sync);
2. ask the proposer for a candidate (a rebased earlier candidate goes first);
3. journal it, optionally sign a "trying X" claim;
4. screen it on the head's cached seeds, confirm it on fresh seeds
   (localcheck.py), aborting if a new head arrives meanwhile: the experiment is
   journaled `stale` and a built-in-search mutation is rebased onto the new head;
5. propose it if the confirm stage says "improves" (node.roles.propose builds the
   signed Proposal + Blob; the publisher writes them into the local store, where
   the network node on this home gossips them).

State lives in the journal, so a restart resumes: an experiment without a
result is re-run if its head is still the head, retired as `stale` (and
rebased) otherwise; the bandit rebuilds its statistics from the journal.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from chain.consensus import PENDING, state_for
from chain.keys import SigningKey
from chain.metrics import fmt_ubpb
from chain.objects import Arena, Blob, Proposal
from chain.store import Store
from journalfile import DISCARDED, INVALID, PROPOSED, STALE, Entry, Stage
from node.p2p.claims import TopicClaim
from node.research import mutate
from node.research.journal import Journal
from node.research.limits import Gate
from node.research.localcheck import Aborted, LocalChecker, new_seeds
from node.research.search import Candidate, Proposer, diffstat
from node.roles.propose import MeasuredClaim, build_proposal, publish_to_store
from verify.compute import GENESIS, Position

Publisher = Callable[[Proposal, Blob], None]
EventSink = Callable[[str, str], None]
NEW_HEAD, STOPPING = "new_head", "stopping"


@dataclass(frozen=True)
class LoopConfig:
    seeds: int | None = None  # seeds per stage (default: the arena's)
    confirm: bool = True  # re-check on fresh seeds before proposing
    threads: int = 2
    max_experiments: int | None = None
    max_pending: int = 2  # own proposals awaiting verification on the head before we wait
    claims: bool = True
    claim_ttl_s: int = 1800
    unsafe_no_sandbox: bool = False
    budget_overrides: dict[str, int] = field(default_factory=dict)
    poll_s: float = 2.0
    hardware: str = ""  # default: the arena's hardware class


@dataclass(frozen=True)
class Head:
    id: bytes
    script: bytes
    height: int
    position: Position = GENESIS  # its compute class and drift (verify.compute)


def read_head(store: Store, arena: Arena) -> Head:
    state = state_for(store, arena.id)
    if state.head == arena.id:
        return Head(arena.id, store.blob_data(arena.script), 0)
    info = state.commits[state.head]
    return Head(info.id, store.blob_data(info.proposal.script), info.height,
                Position(info.compute_class, info.compute_x_milli))


class ContributorLoop:
    def __init__(self, store: Store, arena: Arena, key: SigningKey, journal: Journal,
                 proposer: Proposer, config: LoopConfig, *, publisher: Publisher | None = None,
                 gate: Gate | None = None, on_event: EventSink | None = None,
                 checker: LocalChecker | None = None) -> None:
        self.store, self.arena, self.key, self.journal = store, arena, key, journal
        self.proposer, self.config = proposer, config
        self.publisher = publisher or partial(publish_to_store, store)
        self.gate = gate
        self.on_event = on_event or (lambda kind, text: None)
        self.checker = checker or LocalChecker(arena, threads=config.threads,
                                               unsafe_no_sandbox=config.unsafe_no_sandbox,
                                               overrides=config.budget_overrides)
        self.n_seeds = config.seeds or arena.seeds
        self.margin = arena.margin_ubpb
        self.hardware = config.hardware or arena.hardware
        self._screen: tuple[bytes, list[int]] | None = None
        self._rebased: list[Candidate] = []
        self._version = -1
        self._head: Head | None = None
        self.experiments = 0
        self.proposed: list[bytes] = []
        self._waiting: str | None = None

    # -- head tracking ------------------------------------------------------
    def head(self) -> Head:
        version = self.store.data_version()
        if self._head is None or version != self._version:
            self._version = version
            head = read_head(self.store, self.arena)
            if self._head is not None and head.id != self._head.id:
                self.on_event("head", f"new head {head.id.hex()[:12]} at height {head.height}")
            self._head = head
        return self._head

    def _stopping(self) -> bool:
        return self.gate is not None and self.gate.stop.is_set()

    def _abort_reason(self, parent: bytes) -> Callable[[], str | None]:
        def check() -> str | None:
            if self._stopping():
                return STOPPING
            return NEW_HEAD if self.head().id != parent else None
        return check

    # -- the loop -------------------------------------------------------------
    def run(self) -> int:
        """Run until max_experiments, or until the gate's stop event is set; returns experiments run."""
        self.resume()
        while not self._stopping():
            if self.config.max_experiments is not None and self.experiments >= self.config.max_experiments:
                break
            if self.gate is not None and not self.gate.wait(lambda why: self.on_event("wait", why)):
                break
            if self.step() is None:
                self._idle()
        return self.experiments

    def _idle(self) -> None:
        if self.gate is not None:
            self.gate.stop.wait(self.config.poll_s)
        else:
            time.sleep(self.config.poll_s)

    def resume(self) -> None:
        """Finish what a previous run left unfinished: re-run it on the same head, or retire it."""
        head = self.head()
        for e in self.journal.unfinished(self.arena.id):
            if e.parent == head.id and not self._stopping():
                self.on_event("resume", f"resuming experiment {e.seq}: {e.summary}")
                cand = Candidate(self.journal.script(e.seq), e.summary, e.changes,
                                 mutation=_mutation(e))
                self._check_and_propose(e.seq, cand, head, e.proposer, time.monotonic())
            elif e.parent != head.id:
                self.journal.finish(e.seq, decision=STALE, reason="interrupted; the head moved")
                self._queue_rebase(e, head)

    def step(self) -> Entry | None:
        """One experiment on the current head; None when there is nothing to do right now."""
        head = self.head()
        if self._screen is None or self._screen[0] != head.id:
            self._screen = (head.id, new_seeds(self.n_seeds))
            self.checker.forget(keep=head.script)
        if self._pending_own(head) >= self.config.max_pending:
            self._wait_once(f"{self.config.max_pending} own proposal(s) awaiting verification")
            return None
        cand = self._next_candidate(head)
        if cand is None:
            self._wait_once("nothing left to try on this head; waiting for a new one")
            return None
        self._waiting = None
        started = time.monotonic()
        seq = self.journal.start(arena=self.arena.id, parent=head.id, proposer=self.proposer.name,
                                 summary=cand.summary, changes=cand.changes,
                                 diffstat=diffstat(head.script, cand.script), script=cand.script)
        self.experiments += 1
        self.on_event("experiment", f"#{seq} [{self.proposer.name}] {cand.summary}")
        if cand.rejected:
            self.journal.finish(seq, decision=INVALID, reason=f"{cand.rejected}: {cand.message}",
                                wall_ms=_ms(started))
            self.on_event("result", f"#{seq} invalid: {cand.rejected}")
            return self.journal.get(seq)
        self._claim(head, cand)
        self._check_and_propose(seq, cand, head, self.proposer.name, started)
        return self.journal.get(seq)

    def _wait_once(self, why: str) -> None:
        """Say why the loop waits, once per reason (it polls every poll_s)."""
        if why != self._waiting:
            self._waiting = why
            self.on_event("wait", why)

    def _next_candidate(self, head: Head) -> Candidate | None:
        while self._rebased:
            cand = self._rebased.pop(0)
            if cand.mutation is None:
                continue
            again = mutate.rebase(cand.mutation, head.script)
            if again is not None:
                script = mutate.apply(head.script, again)
                return Candidate(script, f"rebased: {again.describe()}", again.to_json(),
                                 cand.topic, again)
        history = self.journal.entries(self.arena.id)
        return self.proposer.propose(head.script, head.id, history, self._taken(head), self.margin)

    def _queue_rebase(self, e: Entry, head: Head) -> None:
        m = _mutation(e)
        if m is not None:
            self._rebased.append(Candidate(b"", e.summary, e.changes, mutation=m))

    def _check_and_propose(self, seq: int, cand: Candidate, head: Head, proposer: str,
                           started: float) -> None:
        stages: list[Stage] = []
        progress = lambda text: self.on_event("progress", f"#{seq} {text}")  # noqa: E731
        abort = self._abort_reason(head.id)
        screen_seeds = self._screen[1] if self._screen and self._screen[0] == head.id else new_seeds(self.n_seeds)
        try:
            screen = self.checker.paired("screen", head.script, cand.script, screen_seeds,
                                         self.margin, cache_parent=True, should_abort=abort,
                                         progress=progress, parent_position=head.position,
                                         stop_early=cand.stop_early, class_seeds=cand.screen_class_seeds)
            stages.append(screen)
            if screen.verdict == "improves" and self.config.confirm:
                confirm = self.checker.paired("confirm", head.script, cand.script,
                                              new_seeds(self.n_seeds), self.margin,
                                              cache_parent=False, should_abort=abort,
                                              progress=progress, parent_position=head.position,
                                              stop_early=cand.stop_early)
                stages.append(confirm)
        except Aborted as a:
            stages.append(a.stage)
            if a.why == STOPPING:
                self.on_event("result", f"#{seq} interrupted (will resume)")
                return
            self.journal.finish(seq, decision=STALE, reason="a new head arrived mid-experiment",
                                stages=stages, wall_ms=_ms(started))
            self.on_event("result", f"#{seq} stale: new head; rebasing")
            if cand.mutation is not None:
                self._rebased.append(cand)
            return
        last = stages[-1]
        if last.verdict.startswith(("invalid", "cheat")):
            self.journal.finish(seq, decision=INVALID, reason=last.verdict, stages=stages,
                                wall_ms=_ms(started))
            self.on_event("result", f"#{seq} invalid: {last.verdict}")
            return
        if last.verdict != "improves":
            self.journal.finish(seq, decision=DISCARDED, reason=f"{last.name}: {last.verdict}",
                                stages=stages, wall_ms=_ms(started))
            self.on_event("result", f"#{seq} discarded ({last.name} gain "
                          f"{fmt_ubpb(last.mean_gain_ubpb, signed=True)} bpb)")
            return
        proposal = self._propose(cand, head, stages)
        self.journal.finish(seq, decision=PROPOSED, reason="cleared the margin locally",
                            stages=stages, proposal=proposal.id if proposal else None,
                            wall_ms=_ms(started))

    def _propose(self, cand: Candidate, head: Head, stages: list[Stage]) -> Proposal | None:
        last = stages[-1]
        script_id = Blob(data=cand.script).id
        if any(p.parent == head.id and p.script == script_id for p in self.store.proposals(self.arena.id)):
            self.on_event("result", "already proposed on this head; not proposing again")
            return None
        text = cand.message or cand.summary
        screen = stages[0]
        note = (f"\n\nlocal check ({self.proposer.name}): mean paired gain "
                f"{fmt_ubpb(last.mean_gain_ubpb, signed=True)} bpb over {len(last.seeds)} fresh seeds"
                f" (screen {fmt_ubpb(screen.mean_gain_ubpb, signed=True)})")
        message = (text[: 4000 - len(note)] + note)[:4096]
        claim = MeasuredClaim(sum(last.parent_ubpb) // len(last.parent_ubpb),
                              sum(last.candidate_ubpb) // len(last.candidate_ubpb),
                              tuple(last.seeds), self.hardware[:64])
        proposal, blob = build_proposal(self.key, self.store, self.arena, cand.script, message,
                                        head.id, claim)
        self.publisher(proposal, blob)
        self.proposed.append(proposal.id)
        self.on_event("proposed", f"proposed {proposal.hex[:12]}: {cand.summary} "
                      f"(gain {fmt_ubpb(last.mean_gain_ubpb, signed=True)} bpb)")
        return proposal

    # -- claims and pending proposals --------------------------------------------
    def _claim(self, head: Head, cand: Candidate) -> None:
        if not self.config.claims or not cand.topic:
            return
        c = TopicClaim.create(self.key, self.arena.id, head.id, cand.topic, self.config.claim_ttl_s)
        # the node on this home publishes it from the journal (node/p2p/claimgossip.py)
        self.journal.add_claim(c.id, c.arena, c.parent, c.topic, c.author, c.expires_at, c.encode())

    def _taken(self, head: Head) -> set[str]:
        """Topics other contributors claimed on this head (own claims don't block)."""
        return {t for t, author, _ in self.journal.claims(self.arena.id, head.id)
                if author != self.key.public}

    def _pending_own(self, head: Head) -> int:
        state = state_for(self.store, self.arena.id)
        return sum(1 for c in state.commits.values()
                   if c.status == PENDING and c.proposal.parent == head.id
                   and c.proposal.author == self.key.public)

    def summary(self) -> dict[str, Any]:
        return {"experiments": self.experiments, "proposed": [p.hex() for p in self.proposed]}


def _mutation(e: Entry) -> mutate.Mutation | None:
    try:
        return mutate.Mutation.from_json(e.changes) if e.changes else None
    except (KeyError, TypeError, ValueError):
        return None


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
