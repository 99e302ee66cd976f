"""An immutable, indexed picture of every arena in a store at one data version.

The leaderboard never computes consensus per request: a Snapshot is built once
per store version and every page and API answer is a cheap read of it.
Building is CPU-bound (consensus and credit over every object), so `ratchet
serve` runs it in a separate process (`build_in_worker`) that sends back only
plain values (CommitRow, Check, credit rows): the serving process keeps its
interpreter lock for requests. A commit page reads that commit's attestations
from the store itself when it is rendered.
"""

from __future__ import annotations

import copyreg
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from chain.consensus import (
    STATUSES,
    ChainState,
    MeasuredField,
    Tally,
    compute_state,
    counted_sets,
    state_tallies,
)
from chain.credit import ContributorCredit, Credit, VerifierCredit, credit_from
from chain.objects import Arena, Attestation, load_trusted
from chain.store import Store
from chain.verifiers import Standing
from leaderboard import people
from leaderboard.people import Point, ProfileRow, TeamRow

RECENT_EVENTS = 16
PERSON_CHECKS = 50
PARENT_CHECK_S = 0.5

# An Arena crosses the process boundary as its validated bytes (objects refuse attribute setting).
copyreg.pickle(Arena, lambda a: (load_trusted, (a.encode(), a.id)))


class CommitRow(NamedTuple):
    """One commit as the pages show it: consensus outcome plus the proposal's own fields.

    Rows, checks and events are NamedTuples: thousands of them cross from the builder process
    each rebuild, and tuples unpickle about five times faster than frozen dataclasses.
    """

    id: bytes
    height: int
    status: str
    reason: str
    improves_votes: int
    votes: int  # verifier-set keys that checked it
    gain_ubpb: int
    cumulative_ubpb: int
    metric_ubpb: int | None  # the quorum's metric when decided, else the median of what was measured
    author: bytes
    parent: bytes
    script: bytes
    message: str
    timestamp: int
    claim_parent_ubpb: int
    claim_candidate_ubpb: int
    claim_seeds: tuple[int, ...]
    claim_hardware: str

    @property
    def claimed_gain_ubpb(self) -> int:
        return self.claim_parent_ubpb - self.claim_candidate_ubpb


class Check(NamedTuple):
    """One verifier's verdict on one commit, and whether it agreed with the decided outcome."""

    verifier: bytes
    proposal: bytes
    verdict: str  # the verdict, or "conflicting" for a key that signed several
    agreed: bool | None  # None while the commit is pending


class Event(NamedTuple):
    """A line of recent activity: a proposal made or a verdict signed."""

    kind: str  # "proposal" | "attestation"
    timestamp: int
    commit: bytes
    key: bytes
    verdict: str = ""


@dataclass
class ArenaView:
    """One arena's commits, credit and the indexes the pages need (plain values only)."""

    arena: Arena
    commits: dict[bytes, CommitRow]
    head: bytes  # the arena id while nothing is accepted
    credit: Credit
    mainline: list[bytes]  # the head's lineage, head first
    newest: list[bytes]  # every commit id, newest proposal first
    by_author: dict[bytes, list[bytes]]  # author key -> commit ids, newest first
    recent_checks: dict[bytes, list[Check]]  # verifier key -> its newest PERSON_CHECKS checks
    disagreements: dict[bytes, list[Check]]  # verifier key -> its newest PERSON_CHECKS disagreements
    children: dict[bytes, list[bytes]]  # commit id -> its children, oldest first
    contributor: dict[bytes, ContributorCredit]
    verifier: dict[bytes, VerifierCredit]
    recent: list[Event]
    floor_ubpb: int | None  # the exact loss floor the head's checks measured, if the arena has one
    reference_ubpb: int | None  # the reference script's metric, as the first commits' checks measured it
    status_counts: dict[str, int] = field(default_factory=dict)
    profiles: dict[bytes, ProfileRow] = field(default_factory=dict)  # every key's current profile (shared)
    teams: list[TeamRow] = field(default_factory=list)  # ranked (leaderboard.people.teams)
    history: dict[bytes, list[Point]] = field(default_factory=dict)  # key -> cumulative points over time
    team_history: dict[str, list[Point]] = field(default_factory=dict)  # team id -> the same
    checked_ms: dict[bytes, int] = field(default_factory=dict)  # author -> what checking its proposals cost
    counted_sets: dict[bytes, frozenset[bytes]] = field(default_factory=dict)  # commit -> keys counted there
    standing: Standing | None = None  # every key's verifier status (chain.verifiers)

    @property
    def id(self) -> bytes:
        return self.arena.id

    @property
    def head_metric_ubpb(self) -> int | None:
        head = self.commits.get(self.head)
        return head.metric_ubpb if head is not None else None


@dataclass(frozen=True)
class Snapshot:
    version: int
    arenas: list[ArenaView]  # sorted by name, then id (the store's order)
    build_ms: float

    def find(self, name_or_prefix: str) -> ArenaView | None:
        """An arena by exact name or by an unambiguous hex id prefix (4+ characters)."""
        named = [a for a in self.arenas if a.arena.name == name_or_prefix]
        text = name_or_prefix.lower()
        prefixed = []
        if 4 <= len(text) <= 64 and all(c in "0123456789abcdef" for c in text):
            prefixed = [a for a in self.arenas if a.arena.hex.startswith(text)]
        found = {a.id: a for a in named + prefixed}
        return next(iter(found.values())) if len(found) == 1 else None


# -- building -----------------------------------------------------------------------

_worker_store: Store | None = None


def open_worker(home: str) -> None:
    """Initializer of the builder process: its own store connection, kept for its lifetime."""
    global _worker_store
    # Ctrl-C reaches the whole process group: the server stops this process itself, quietly.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _worker_store = Store.open(Path(home))
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()


def _exit_with_parent(parent: int) -> None:
    """A server killed outright (SIGKILL) cannot stop its pool: leave once it is gone."""
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_S)
    os._exit(0)


def build_in_worker() -> Snapshot:
    """The builder process's task (see open_worker)."""
    if _worker_store is None:
        raise RuntimeError("builder process started without open_worker")
    return build_snapshot(_worker_store)


def build_snapshot(store: Store) -> Snapshot:
    """Read everything once (version first, so a concurrent write only makes it conservative)."""
    started = time.perf_counter()
    version = store.data_version()
    profiles = people.profile_rows(store.current_profiles())
    views = []
    for arena in store.arenas():
        atts = store.attestations(arena.id)
        state = compute_state(arena, store.proposals(arena.id), atts, store.amendments(arena.id))
        views.append(build_view(state, atts, profiles))
    return Snapshot(version, views, (time.perf_counter() - started) * 1000)


def build_view(state: ChainState, atts: list[Attestation], profiles: dict[bytes, ProfileRow] | None = None
               ) -> ArenaView:
    """Index one arena's state with the current profiles (pure: tests can build views without a store)."""
    arena = state.arena
    counted = state_tallies(state, atts)
    credit = credit_from(state, counted)
    profiles = profiles if profiles is not None else {}
    events = people.credit_events(state, counted)
    checked = people.checked_ms(state, counted)
    team_rows, team_history = people.teams(credit, profiles, checked, events)
    newest = sorted(state.commits, key=lambda c: (-state.commits[c].proposal.timestamp, c))
    rank = {cid: i for i, cid in enumerate(newest)}

    by_verifier: dict[bytes, list[Check]] = {}
    for pid, t in counted.items():
        for check in checks_of(pid, state.commits[pid].status, t):
            by_verifier.setdefault(check.verifier, []).append(check)
    for lst in by_verifier.values():
        lst.sort(key=lambda c: rank[c.proposal])
    # Only what a person's page shows crosses the process boundary, not every check.
    recent_checks = {k: lst[:PERSON_CHECKS] for k, lst in by_verifier.items()}
    disagreements = {k: [c for c in lst if c.agreed is False][:PERSON_CHECKS] for k, lst in by_verifier.items()}

    commits: dict[bytes, CommitRow] = {}
    by_author: dict[bytes, list[bytes]] = {}
    children: dict[bytes, list[bytes]] = {}
    counts = dict.fromkeys(STATUSES, 0)
    for cid in reversed(newest):  # oldest first, so children lists come out oldest first
        info, p, t = state.commits[cid], state.commits[cid].proposal, counted.get(cid)
        metric = info.metric_ubpb
        if metric is None and t is not None:
            metric = t.measured("candidate_ubpb")
        commits[cid] = CommitRow(
            id=cid, height=info.height, status=info.status, reason=info.reason,
            improves_votes=len(t.improving) if t is not None else 0, votes=len(t.signed) if t is not None else 0,
            gain_ubpb=info.gain_ubpb, cumulative_ubpb=info.cumulative_ubpb,
            metric_ubpb=metric, author=p.author, parent=p.parent, script=p.script, message=p.message,
            timestamp=p.timestamp, claim_parent_ubpb=p.claim_parent_ubpb,
            claim_candidate_ubpb=p.claim_candidate_ubpb, claim_seeds=tuple(p.claim_seeds),
            claim_hardware=p.claim_hardware,
        )
        children.setdefault(p.parent, []).append(cid)
        counts[info.status] = counts.get(info.status, 0) + 1
    for cid in newest:
        by_author.setdefault(commits[cid].author, []).append(cid)

    mainline = state.lineage(state.head) if state.head != arena.id else []
    first = [c for c, info in state.commits.items() if info.height == 1]
    return ArenaView(
        arena=arena, commits=commits, head=state.head, credit=credit,
        mainline=mainline, newest=newest, by_author=by_author, recent_checks=recent_checks,
        disagreements=disagreements, children=children,
        contributor={c.key: c for c in credit.contributors},
        verifier={v.key: v for v in credit.verifiers},
        recent=_recent(commits, atts, newest),
        # The exact floor as the head's checks measured it (arenas with one record it per seed);
        # the reference script's metric as checks of a first commit measured its parent.
        floor_ubpb=_first_measured(counted, mainline or list(state.commits), "floor_ubpb"),
        reference_ubpb=_first_measured(counted, mainline[-1:] + first, "parent_ubpb"),
        status_counts=counts, profiles=profiles, teams=team_rows,
        history={k: people.history(v) for k, v in events.items()}, team_history=team_history,
        checked_ms=checked, counted_sets=counted_sets(state), standing=state.standing,
    )


def checks_of(pid: bytes, status: str, t: Tally) -> list[Check]:
    """One Check per key that attested in `t`, the tally of `pid`, counted or not (chain.credit's rule)."""
    keys = sorted(t.signed.keys() | t.others.keys())
    return [Check(key, pid, t.verdict(key), t.agreed(key, status)) for key in keys]


def _recent(commits: dict[bytes, CommitRow], atts: list[Attestation], newest: list[bytes]) -> list[Event]:
    events = [Event("proposal", commits[c].timestamp, c, commits[c].author) for c in newest[:RECENT_EVENTS]]
    events += [Event("attestation", a.timestamp, a.proposal, a.verifier, a.verdict)
               for a in atts[-RECENT_EVENTS:] if a.proposal in commits]
    events.sort(key=lambda e: (-e.timestamp, e.kind, e.commit, e.key))
    return events[:RECENT_EVENTS]


def _first_measured(counted: dict[bytes, Tally], cids: list[bytes], field: MeasuredField) -> int | None:
    """What the checks of the first of `cids` that measured `field` measured (their low median)."""
    for cid in cids:
        value = counted[cid].measured(field) if cid in counted else None
        if value is not None:
            return value
    return None
