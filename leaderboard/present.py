"""Snapshot -> plain dicts: the single shape behind both the HTML pages and the JSON API.

Every page renders exactly the dict its `/api/` twin returns, so the API
mirrors the pages by construction. Values are JSON types only (hex ids,
integer micro-bits next to their exact decimal text, unix milliseconds).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chain.consensus import PENDING, tally
from chain.credit import COMPUTE_MEASURED
from chain.metrics import fmt_ubpb
from chain.objects import Attestation
from chain.profiles import team_id
from leaderboard.errors import BadQueryError
from leaderboard.journal import PROPOSED, RUNNING, EntryRow, JournalPage
from leaderboard.snapshot import ArenaView, Check, CommitRow, Snapshot, checks_of

PER_PAGE = 25
MAX_PER_PAGE = 100
MAX_PAGE = 100_000

CONTRIBUTOR_SORTS = {
    "points": lambda c: (-c.points, c.key),
    "accepted": lambda c: (-c.accepted, -c.points, c.key),
    "proposals": lambda c: (-c.proposals, -c.points, c.key),
    "rate": lambda c: (-c.acceptance_rate, -c.points, c.key),
    "gain": lambda c: (-c.gain_ubpb, c.key),
    "last_seen": lambda c: (-c.last_seen_ms, c.key),
}
VERIFIER_SORTS = {
    "points": lambda v: (-v.points, v.key),
    "checks": lambda v: (-v.checks, -v.points, v.key),
    "agreement": lambda v: (-(v.agreement_rate if v.agreement_rate is not None else -1), -v.points, v.key),
    "compute": lambda v: (-v.compute_ms, v.key),
    "disagreed": lambda v: (-v.disagreed, v.key),
    "last_seen": lambda v: (-v.last_seen_ms, v.key),
}


@dataclass(frozen=True)
class Paging:
    page: int = 1
    per_page: int = PER_PAGE

    @classmethod
    def parse(cls, page: str | None, per_page: str | None) -> Paging:
        return cls(_int_arg("page", page, 1, 1, MAX_PAGE), _int_arg("per_page", per_page, PER_PAGE, 1, MAX_PER_PAGE))

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.per_page

    def meta(self, total: int) -> dict[str, Any]:
        return {"page": self.page, "per_page": self.per_page, "total": total,
                "pages": max(1, -(-total // self.per_page))}

    def slice(self, items: list[Any]) -> tuple[list[Any], dict[str, Any]]:
        return items[self.offset:self.offset + self.per_page], self.meta(len(items))


def _int_arg(name: str, raw: str | None, default: int, lo: int, hi: int) -> int:
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or len(raw) > 7:
        raise BadQueryError(name, raw, f"a whole number from {lo} to {hi}")
    value = int(raw)
    if not lo <= value <= hi:
        raise BadQueryError(name, raw, f"a whole number from {lo} to {hi}")
    return value


def choice_arg(name: str, raw: str | None, allowed: tuple[str, ...] | list[str], default: str) -> str:
    if raw is None or raw == "":
        return default
    if raw not in allowed:
        raise BadQueryError(name, raw, "one of " + ", ".join(allowed))
    return raw


def bpb(ubpb: int | None, signed: bool = False) -> str | None:
    return None if ubpb is None else fmt_ubpb(ubpb, signed=signed)


def short(value: bytes) -> str:
    return value.hex()[:12]


COMPUTE_NOTE = {
    "measured": f"Verifier compute: the {COMPUTE_MEASURED}.",
    "contributors": "A contributor's own search is not measured by the network: what it knows is their "
                    "proposals (accepted, rejected, pending) and what checking them cost the verifiers.",
    "self_reported": "Self-reported, proving nothing: names, teams and URLs, and the hardware and val_bpb an "
                     "author claims in a proposal. The key is the identity.",
}


def profile_ref(av: ArenaView, key: bytes) -> dict[str, Any] | None:
    """A key's current profile as every person entry carries it (None: the key set none)."""
    p = av.profiles.get(key)
    if p is None:
        return None
    return {"name": p.name, "team": p.team or None, "team_id": p.team_id or None, "url": p.url or None,
            "updated": p.timestamp, "id": p.id.hex(), "name_looks_like": [k.hex()[:12] for k in p.name_looks_like],
            "team_looks_like": [{"name": t, "id": team_id(t)} for t in p.team_looks_like]}


def person_ref(av: ArenaView, key: bytes) -> dict[str, Any]:
    return {"key": key.hex(), "short": short(key), "profile": profile_ref(av, key)}


def title_of(message: str) -> str:
    first = message.strip().splitlines()[0] if message.strip() else ""
    return first[:120] + ("…" if len(first) > 120 else "")


# -- arenas -------------------------------------------------------------------

def arena_ref(av: ArenaView) -> dict[str, Any]:
    return {"id": av.arena.hex, "short": short(av.id), "name": av.arena.name}


def arenas(snap: Snapshot) -> dict[str, Any]:
    return {"version": snap.version, "arenas": [arena_summary(av) for av in snap.arenas]}


def arena_summary(av: ArenaView) -> dict[str, Any]:
    a = av.arena
    head = av.commits.get(av.head)
    return {
        **arena_ref(av),
        "description": a.description, "hardware": a.hardware, "harness": a.harness,
        "dataset": a.dataset_name, "budget": {"kind": a.budget_kind, "value": a.budget_value},
        "seeds": a.seeds, "quorum": a.quorum, "verifiers": len(a.verifiers),
        "margin_ubpb": a.margin_ubpb, "margin_bpb": bpb(a.margin_ubpb), "created_at": a.created_at,
        "head": commit_row(av, head.id) if head is not None else None,
        "head_metric_ubpb": av.head_metric_ubpb, "head_metric_bpb": bpb(av.head_metric_ubpb),
        "reference_ubpb": av.reference_ubpb, "reference_bpb": bpb(av.reference_ubpb),
        "floor_ubpb": av.floor_ubpb, "floor_bpb": bpb(av.floor_ubpb),
        "cumulative_gain_bpb": bpb(head.cumulative_ubpb if head else 0, signed=True),
        "commits": dict(av.status_counts), "height": head.height if head else 0,
        "contributors": len(av.credit.contributors), "active_verifiers": len(av.credit.verifiers),
    }


# -- commits ------------------------------------------------------------------

def commit_row(av: ArenaView, cid: bytes) -> dict[str, Any]:
    c: CommitRow = av.commits[cid]
    return {
        "id": cid.hex(), "short": short(cid), "height": c.height, "status": c.status,
        "reason": c.reason, "title": title_of(c.message), "author": c.author.hex(),
        "author_short": short(c.author), "author_profile": profile_ref(av, c.author), "timestamp": c.timestamp,
        "val_bpb": bpb(c.metric_ubpb), "val_ubpb": c.metric_ubpb,
        "gain_ubpb": c.gain_ubpb, "gain_bpb": bpb(c.gain_ubpb, signed=True),
        "cumulative_ubpb": c.cumulative_ubpb, "cumulative_bpb": bpb(c.cumulative_ubpb, signed=True),
        "claimed_gain_bpb": bpb(c.claimed_gain_ubpb, signed=True),
        "improves_votes": c.improves_votes, "votes": c.votes, "is_head": cid == av.head,
    }


def commits(av: ArenaView, status: str, paging: Paging) -> dict[str, Any]:
    """`status` "mainline" (the head's lineage), "all", or one commit status; newest first."""
    if status == "mainline":
        ids = av.mainline
    elif status == "all":
        ids = av.newest
    else:
        ids = [c for c in av.newest if av.commits[c].status == status]
    page, meta = paging.slice(ids)
    return {"arena": arena_ref(av), "status": status, **meta, "items": [commit_row(av, c) for c in page]}


def commit_detail(av: ArenaView, cid: bytes, attestations: list[Attestation], diff: dict[str, Any]
                  ) -> dict[str, Any]:
    """A commit with its checks; `attestations` are the commit's, read from the store."""
    p = av.commits[cid]
    parent = av.commits.get(p.parent)
    children = [av.commits[c] for c in av.children.get(cid, [])]
    t = tally(av.arena, cid, attestations, av.counted_sets.get(cid))
    signed = {**t.others, **t.signed}
    return {
        "arena": arena_ref(av), **commit_row(av, cid), "message": p.message,
        "parent": {"id": p.parent.hex(), "short": short(p.parent), "is_arena": parent is None,
                   "status": parent.status if parent else None},
        "children": [{"id": c.id.hex(), "short": short(c.id), "status": c.status} for c in children],
        "script": p.script.hex(), "on_mainline": cid in set(av.mainline),
        "claim": {"parent_bpb": bpb(p.claim_parent_ubpb), "candidate_bpb": bpb(p.claim_candidate_ubpb),
                  "seeds": list(p.claim_seeds), "hardware": p.claim_hardware},
        "checks": [{**check_dict(c, list(signed[c.verifier].values())),
                    "counted": c.verifier in t.signed,
                    "verifier_profile": profile_ref(av, c.verifier)} for c in checks_of(cid, p.status, t)],
        "diff": diff,
    }


def check_dict(check: Check, attestations: list[Attestation]) -> dict[str, Any]:
    atts = []
    for a in attestations:
        seeds = []
        for i, seed in enumerate(a.seeds):
            par = a.parent_ubpb[i] if a.parent_ubpb else None
            cand = a.candidate_ubpb[i] if a.candidate_ubpb else None
            seeds.append({
                "seed": seed, "parent_bpb": bpb(par), "candidate_bpb": bpb(cand),
                "gain_bpb": bpb(par - cand, signed=True) if par is not None and cand is not None else None,
                "floor_bpb": bpb(a.floor_ubpb[i]) if a.floor_ubpb else None,
                "parent_tokens": a.parent_tokens[i] if a.parent_tokens else None,
                "candidate_tokens": a.candidate_tokens[i] if a.candidate_tokens else None,
                "parent_cpu_s": round(a.parent_cpu_ms[i] / 1000, 1) if a.parent_cpu_ms else None,
                "candidate_cpu_s": round(a.candidate_cpu_ms[i] / 1000, 1) if a.candidate_cpu_ms else None,
            })
        atts.append({
            "id": a.hex, "verdict": a.verdict, "seeds": seeds, "hardware": a.hardware, "harness": a.harness,
            "flags": list(a.flags), "wall_ms": a.wall_ms, "timestamp": a.timestamp,
            "mean_gain_bpb": bpb(a.mean_gain_ubpb, signed=True) if a.parent_ubpb else None,
            "compute_ratio": None if a.compute_ratio is None else round(a.compute_ratio, 3),
            "compute_class": a.compute_class,
        })
    return {"verifier": check.verifier.hex(), "verifier_short": short(check.verifier),
            "verdict": check.verdict, "agreed": check.agreed, "attestations": atts}


# -- people -------------------------------------------------------------------

def contributors(av: ArenaView, sort: str, paging: Paging) -> dict[str, Any]:
    ranked = av.credit.contributors  # rank is always by points
    rank = {c.key: i + 1 for i, c in enumerate(ranked)}
    ordered = sorted(ranked, key=CONTRIBUTOR_SORTS[sort])
    page, meta = paging.slice(ordered)
    items = [{
        "rank": rank[c.key], **person_ref(av, c.key), "points": c.points,
        "accepted": c.accepted, "proposals": c.proposals, "rejected": c.rejected,
        "acceptance_rate": round(c.acceptance_rate, 4), "gain_bpb": bpb(c.gain_ubpb, signed=True),
        "last_seen": c.last_seen_ms,
    } for c in page]
    return {"arena": arena_ref(av), "sort": sort, **meta, "items": items}


def verifiers(av: ArenaView, sort: str, paging: Paging) -> dict[str, Any]:
    ranked = av.credit.verifiers
    rank = {v.key: i + 1 for i, v in enumerate(ranked)}
    ordered = sorted(ranked, key=VERIFIER_SORTS[sort])
    page, meta = paging.slice(ordered)
    items = [{
        "rank": rank[v.key], **person_ref(av, v.key), "points": v.points, **verifier_status(av, v.key),
        "checks": v.checks, "agreed": v.agreed, "disagreed": v.disagreed, "pending": v.pending,
        "agreement_rate": None if v.agreement_rate is None else round(v.agreement_rate, 4),
        "compute_ms": v.compute_ms, "hardware": list(v.hardware), "last_seen": v.last_seen_ms,
    } for v in page]
    standing = av.standing
    known = set(standing.records) if standing is not None else set(av.arena.verifiers)  # founding, retired too
    idle = sorted(known - set(rank))
    counted = standing.counted if standing is not None else frozenset(av.arena.verifiers)
    return {"arena": arena_ref(av), "sort": sort, **meta, "items": items,
            "idle": [{**person_ref(av, k), **verifier_status(av, k)} for k in idle],
            "counted": len(counted), "quorum": standing.quorum if standing is not None else av.arena.quorum,
            "amendments": amendments(av)}


def verifier_status(av: ArenaView, key: bytes) -> dict[str, Any]:
    """A key's verifier status (chain.verifiers) and what it still needs to be counted."""
    if av.standing is None:
        return {"status": "founding" if key in set(av.arena.verifiers) else "volunteer", "needed": 0,
                "since_height": 1}
    rec = av.standing.record(key)
    return {"status": rec.status, "needed": rec.needed, "since_height": rec.since, "streak": rec.streak}


def amendments(av: ArenaView) -> list[dict[str, Any]]:
    """Every amendment of the arena and what became of it."""
    notes = av.standing.notes if av.standing is not None else ()
    return [{"id": n.id.hex(), "short": short(n.id), "height": n.height, "applied": n.applied, "note": n.note,
             "retire": [person_ref(av, k) for k in n.retire], "add": [person_ref(av, k) for k in n.add],
             "quorum": n.quorum, "signers": [person_ref(av, k) for k in n.signers], "reason": n.reason}
            for n in notes]


def person(av: ArenaView, key: bytes, paging: Paging) -> dict[str, Any]:
    authored = av.by_author.get(key, [])
    page, meta = paging.slice(authored)
    c = av.contributor.get(key)
    v = av.verifier.get(key)
    checks = av.recent_checks.get(key, [])
    disagreements = av.disagreements.get(key, [])
    by_status: dict[str, int] = {}
    for cid in authored:
        by_status[av.commits[cid].status] = by_status.get(av.commits[cid].status, 0) + 1
    return {
        "arena": arena_ref(av), **person_ref(av, key),
        "in_verifier_set": key in set(av.arena.verifiers), **verifier_status(av, key),
        "history": history_points(av.history.get(key, [])),
        "compute": {"verifier_ms": v.compute_ms if v is not None else 0,
                    "checked_ms": av.checked_ms.get(key, 0), "proposals": by_status, "note": COMPUTE_NOTE},
        "contributor": None if c is None else {
            "rank": av.credit.contributors.index(c) + 1, "points": c.points, "accepted": c.accepted,
            "proposals": c.proposals, "rejected": c.rejected, "acceptance_rate": round(c.acceptance_rate, 4),
            "gain_bpb": bpb(c.gain_ubpb, signed=True), "last_seen": c.last_seen_ms},
        "verifier": None if v is None else {
            "rank": av.credit.verifiers.index(v) + 1, "points": v.points, "checks": v.checks,
            "agreed": v.agreed, "disagreed": v.disagreed, "pending": v.pending,
            "agreement_rate": None if v.agreement_rate is None else round(v.agreement_rate, 4),
            "compute_ms": v.compute_ms, "hardware": list(v.hardware), "last_seen": v.last_seen_ms},
        "commits": {**meta, "items": [commit_row(av, cid) for cid in page]},
        "disagreements": [{**commit_row(av, ch.proposal), "verdict": ch.verdict} for ch in disagreements[:50]],
        "recent_checks": [{**commit_row(av, ch.proposal), "verdict": ch.verdict, "agreed": ch.agreed}
                          for ch in checks[:20]],
    }


def history_points(points: list[tuple[int, int, bytes]]) -> list[dict[str, Any]]:
    """A history (leaderboard.people.history) as the API gives it and chart.points_svg draws it."""
    return [{"timestamp": t, "points": n, "id": c.hex(), "short": short(c)} for t, n, c in points]


def has_person(av: ArenaView, key: bytes) -> bool:
    return key in av.by_author or key in av.recent_checks or key in set(av.arena.verifiers)


# -- overview -----------------------------------------------------------------

def overview(av: ArenaView, chart: dict[str, Any]) -> dict[str, Any]:
    recent = []
    for e in av.recent:
        row = av.commits[e.commit]
        recent.append({"kind": e.kind, "timestamp": e.timestamp, "commit": e.commit.hex(),
                       "commit_short": short(e.commit), "title": title_of(row.message),
                       "status": row.status, "key": e.key.hex(), "key_short": short(e.key),
                       "profile": profile_ref(av, e.key), "verdict": e.verdict})
    pending = [c for c in av.newest if av.commits[c].status == PENDING][:10]
    in_flight = [commit_row(av, c) for c in pending]
    top_c = contributors(av, "points", Paging(1, 10))["items"]
    top_v = verifiers(av, "points", Paging(1, 10))["items"]
    return {"arena": arena_summary(av), "chart": chart, "recent": recent, "in_flight": in_flight,
            "mainline": [commit_row(av, c) for c in av.mainline[:10]],
            "top_contributors": top_c, "top_verifiers": top_v}


# -- contributor journal ------------------------------------------------------

def journal(av: ArenaView, page: JournalPage | None, decision: str, paging: Paging) -> dict[str, Any]:
    """The local contributor journal's experiments on this arena; `page` None: no journal here."""
    counts = page.counts if page else {}
    return {"arena": arena_ref(av), "journal": page is not None, "decision": decision,
            "summary": {k: counts.get(k, 0) for k in ("experiments", "proposed", "discarded", "invalid",
                                                      "stale", RUNNING)},
            **paging.meta(page.total if page else 0),
            "items": [journal_entry(av, e) for e in page.entries] if page else []}


def journal_entry(av: ArenaView, e: EntryRow) -> dict[str, Any]:
    gain = e.mean_gain_ubpb
    held = av.commits.get(e.proposal) if e.proposal else None
    return {
        "seq": e.seq, "uid": e.uid, "started_at": e.started_at, "finished_at": e.finished_at,
        "wall_ms": e.wall_ms, "proposer": e.proposer, "summary": e.summary, "changes": e.changes,
        "diffstat": e.diffstat, "parent": e.parent.hex(), "decision": e.decision or RUNNING,
        "reason": e.reason, "mean_gain_ubpb": gain, "mean_gain_bpb": bpb(gain, signed=True),
        "stages": [{"name": s.name, "seeds": s.seeds, "parent_ubpb": s.parent_ubpb,
                    "candidate_ubpb": s.candidate_ubpb, "verdict": s.verdict,
                    "mean_gain_ubpb": s.mean_gain_ubpb, "mean_gain_bpb": bpb(s.mean_gain_ubpb, signed=True),
                    "stderr_ubpb": s.stderr_ubpb} for s in e.stages],
        "proposal": e.proposal.hex() if e.proposal else None,
        "proposal_short": short(e.proposal) if e.proposal else None,
        # a link only to a commit this store holds (a proposal may not have reached it yet)
        "proposal_status": held.status if held is not None and e.decision == PROPOSED else None,
    }
