"""The verifier role: check the proposals that are this key's to check, sign, publish.

Any key may verify any arena (docs/ARCHITECTURE.md, "Open verification"). Which
proposals are its to check comes from sortition (chain.sortition), over its own
signature over each proposal id:
- a key counted at the proposal's height checks it when its ticket is under
  (quorum + 1) / counted, doubled every `escalate_after_s` the proposal has been
  in this store undecided; it skips decided proposals, except an accepted one
  whose improves voters include a key that is not founding (the audit that lets
  honest keys overturn a colluding quorum of admitted keys);
- any other key (a volunteer) checks what falls under its volunteer ticket,
  decided or not: that is how it earns admission.

The queue is recomputed from the store whenever it changes, so nothing is lost
on a restart and nothing is checked twice (an attestation by this key is in the
store). Order, most useful first:
1. proposals whose parent is accepted (or the arena): their vote can decide now;
   ones whose parent is still pending wait behind them (and are skipped while
   the parent is rejected: they can never be accepted);
2. then the ones with the most "improves" votes already (closest to a quorum);
3. then the oldest.
Proposals whose scripts (candidate's and parent's) have not arrived yet are
skipped.

Up to `workers` checks run at once in threads (the check itself runs in a
sandboxed subprocess). A check that fails with an error is retried up to
`MAX_ATTEMPTS` times, with a pause, then left until the next restart.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import trio

from chain.consensus import ACCEPTED, IMPROVES, REJECTED, CommitInfo, state_for
from chain.keys import SigningKey
from chain.objects import Attestation, Proposal
from chain.seeds import seed_proof
from chain.sortition import ESCALATE_AFTER_S, chosen, counted_threshold, volunteer_chosen
from chain.store import Store
from chain.verifiers import RETIRED, Standing
from node.render import short
from node.roles.runner import Reporter, RoleContext

log = logging.getLogger(__name__)

VerifyFn = Callable[[SigningKey, Store, Proposal], Attestation]
MAX_ATTEMPTS = 3
RETRY_AFTER_S = 30.0


def pending_checks(store: Store, key: SigningKey, escalate_after_s: float = ESCALATE_AFTER_S,
                   now_s: float | None = None) -> list[Proposal]:
    """Proposals that are this key's to check, most useful first (see the module docstring)."""
    now_s = time.time() if now_s is None else now_s
    ranked: list[tuple[tuple[int, int, int, bytes], Proposal]] = []
    for arena in store.arenas():
        state = state_for(store, arena.id)
        standing = state.standing
        if standing is not None and standing.status(key.public) == RETIRED:
            continue
        mine = {a.proposal for a in store.attestations(arena.id) if a.verifier == key.public}
        for cid, info in state.commits.items():
            if cid in mine:
                continue
            p = info.proposal
            parent = state.commits.get(p.parent)
            if parent is not None and parent.status == REJECTED:
                continue
            if not _mine_to_check(store, key, info, standing, escalate_after_s, now_s):
                continue
            parent_script = arena.script if parent is None else parent.proposal.script
            if not (store.has(p.script) and store.has(parent_script)):
                continue
            ready = 0 if (p.parent == arena.id or p.parent in state.accepted) else 1
            improves = sum(1 for v in info.votes.values() if v == IMPROVES)
            ranked.append(((ready, -improves, p.timestamp, cid), p))
    ranked.sort(key=lambda item: item[0])
    return [p for _, p in ranked]


def _mine_to_check(store: Store, key: SigningKey, info: CommitInfo, standing: Standing | None,
                   escalate_after_s: float, now_s: float) -> bool:
    proof = seed_proof(key, info.id)
    if key.public not in info.counted:
        return volunteer_chosen(proof)
    if info.status == REJECTED:
        return False
    if info.status == ACCEPTED:
        founding = standing.founding if standing is not None else info.counted
        if all(k in founding for k, v in info.votes.items() if v == IMPROVES):
            return False  # accepted by founding keys: nothing to audit
    age_s = max(0.0, now_s - store.received_at(info.id) / 1000)
    quorum = standing.quorum if standing is not None else len(info.counted)
    return chosen(proof, counted_threshold(quorum, len(info.counted), age_s, escalate_after_s))


@dataclass
class VerifierStats:
    checked: int = 0
    failed: int = 0
    in_flight: dict[str, float] = field(default_factory=dict)  # proposal hex -> start time
    queue: int = 0
    attempts: dict[bytes, tuple[int, float]] = field(default_factory=dict)


class Verifier:
    """A verifier's trio task. `verify_fn(key, store, proposal)` runs in a worker thread."""

    def __init__(self, key: SigningKey, verify_fn: VerifyFn, workers: int = 1, poll_s: float = 0.1,
                 escalate_after_s: float = ESCALATE_AFTER_S) -> None:
        self.key = key
        self.escalate_after_s = escalate_after_s
        self.verify_fn = verify_fn
        self.workers = max(1, workers)
        self.poll_s = poll_s
        self.stats = VerifierStats()

    def status(self) -> dict[str, Any]:
        now = time.monotonic()
        return {"verifier": {
            "key": self.key.public.hex(), "workers": self.workers, "queue": self.stats.queue,
            "checked": self.stats.checked, "failed": self.stats.failed,
            "in_flight": {k: round(now - t, 1) for k, t in self.stats.in_flight.items()},
        }}

    async def run(self, ctx: RoleContext) -> None:
        store = ctx.store
        version, finished, last_scan = -1, self.stats.checked + self.stats.failed, 0.0
        async with trio.open_nursery() as nursery:
            while True:
                # Rescan (state_for per arena) only when something changed: new objects,
                # a check finished, or a failed one may be retried.
                current, done = store.data_version(), self.stats.checked + self.stats.failed
                free = self.workers - len(self.stats.in_flight)
                stale = time.monotonic() - last_scan > RETRY_AFTER_S
                if free > 0 and (current != version or done != finished or stale):
                    version, finished, last_scan = current, done, time.monotonic()
                    todo = [p for p in pending_checks(store, self.key, self.escalate_after_s)
                            if p.hex not in self.stats.in_flight and self._may_try(p.id)]
                    self.stats.queue = max(0, len(todo) - free)
                    for proposal in todo[:free]:
                        self.stats.in_flight[proposal.hex] = time.monotonic()
                        nursery.start_soon(self._check, ctx, proposal)
                await trio.sleep(self.poll_s)

    def _may_try(self, pid: bytes) -> bool:
        tries, last = self.stats.attempts.get(pid, (0, 0.0))
        return tries < MAX_ATTEMPTS and (tries == 0 or time.monotonic() - last > RETRY_AFTER_S)

    async def _check(self, ctx: RoleContext, proposal: Proposal) -> None:
        started = time.monotonic()
        first_line = (proposal.message.splitlines() or [""])[0][:80]
        ctx.reporter.event("checking", f"checking {short(proposal.id)} {first_line!r} "
                           f"(queue {self.stats.queue}, {len(self.stats.in_flight)} running)",
                           proposal=proposal.hex, queue=self.stats.queue)
        try:
            att = await trio.to_thread.run_sync(self.verify_fn, self.key, ctx.store, proposal,
                                                abandon_on_cancel=True)
            await ctx.network.publish(att)
        except Exception as e:  # a failed check (or a refused attestation) must not stop the verifier
            tries, _ = self.stats.attempts.get(proposal.id, (0, 0.0))
            self.stats.attempts[proposal.id] = (tries + 1, time.monotonic())
            self.stats.failed += 1
            ctx.reporter.event("check_failed", f"check of {short(proposal.id)} failed: {e!r}",
                               proposal=proposal.hex, error=repr(e), attempt=tries + 1)
            return
        finally:
            self.stats.in_flight.pop(proposal.hex, None)
        self.stats.checked += 1
        ctx.reporter.event(
            "attested", f"  {short(proposal.id)}: {att.verdict}, mean gain {att.mean_gain_ubpb:+d} ubpb "
            f"in {time.monotonic() - started:.1f}s", proposal=proposal.hex, verdict=att.verdict,
            gain_ubpb=att.mean_gain_ubpb, seconds=round(time.monotonic() - started, 3))


def real_verify_fn(threads: int, unsafe_no_sandbox: bool, reporter: Reporter | None = None) -> VerifyFn:
    """verify.attest.verify_proposal with this verifier's options (imported on first use); with a
    reporter, one progress line per quarter of each run (parent and candidate, per seed)."""

    def run(key: SigningKey, store: Store, proposal: Proposal) -> Attestation:
        from verify.attest import verify_proposal

        progress = _progress(reporter, proposal) if reporter is not None else None
        return verify_proposal(key, store, proposal, threads=threads, unsafe_no_sandbox=unsafe_no_sandbox,
                               progress=progress)

    return run


def _progress(reporter: Reporter, proposal: Proposal) -> Callable[[str, int, float, float], None]:
    shown: dict[tuple[str, int], int] = {}

    def progress(role: str, seed_index: int, done: float, total: float) -> None:
        quarter = int(4 * done / total) if total else 4
        if quarter > shown.get((role, seed_index), 0):
            shown[(role, seed_index)] = quarter
            reporter.event("progress", f"    {short(proposal.id)} {role} seed {seed_index + 1}: {25 * quarter}%",
                           proposal=proposal.hex, run=role, seed=seed_index, percent=25 * quarter)

    return progress
