"""Who counts: each key's verifier status, height by height, from the chain's objects alone.

The rule (docs/ARCHITECTURE.md, "Open verification"): founding keys (the
genesis's `verifiers`) are counted from the start; any other key that attests
is a volunteer; a volunteer whose last ADMIT_AFTER checks of decided proposals
(under its volunteer ticket, chain.sortition) agreed with the outcome becomes
eligible, and at most ADMIT_PER_HEIGHT eligible keys are admitted at the start
of each height (the one eligible longest, then the smaller key). An admitted
key is demoted by one disagreement with a decided outcome or by no check of the
last INACTIVE_AFTER decided proposals; a demoted key may earn its way back.
Founding keys change only by amendment: an Amendment (chain.objects) of height h
applies at the start of h, after that height's admission, when at least the
current quorum of its signers are counted then, and it leaves no fewer counted
keys than its quorum; the amendments of one height apply in id order, each
checked against the set before any of them.

`Roster` is driven by chain.consensus.compute_state as it walks the tree by
height: `begin(h)` fixes the counted set of height h, `end(h, outcomes)` applies
what that height decided. Every update of a height is applied at its end and
every choice is made on sorted data, so the result does not depend on the order
objects arrived in, nor on the order of proposals within a height.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from chain.objects import Amendment
from chain.sortition import volunteer_chosen

FOUNDING, COUNTED, VOLUNTEER, DEMOTED, RETIRED = "founding", "counted", "volunteer", "demoted", "retired"
KEY_STATUSES = (FOUNDING, COUNTED, VOLUNTEER, DEMOTED, RETIRED)
VOTING = frozenset((FOUNDING, COUNTED))
ADMIT_AFTER = 10  # agreeing checks in a row (BOINC trusts a host after 10 valid results)
INACTIVE_AFTER = 100  # decided proposals without a check of an admitted key's: demoted
ADMIT_PER_HEIGHT = 1  # keys admitted at the start of one height, at most
CONFLICTING = "conflicting"  # the verdict of a key that signed several on one proposal (chain.consensus)


@dataclass
class KeyRecord:
    """One key's standing on an arena, as the walk left it."""

    key: bytes
    status: str
    since: int = 1  # the height from which this status holds
    streak: int = 0  # agreeing checks in a row (volunteer and demoted keys)
    checks: int = 0  # checks of decided proposals that the rule read
    agreed: int = 0
    disagreed: int = 0
    eligible_at: int | None = None  # the height whose end made it eligible for admission
    last_active: int = 0  # decided proposals walked at its last check (or its admission)
    admissions: int = 0
    demotions: int = 0

    @property
    def counted(self) -> bool:
        return self.status in VOTING

    @property
    def needed(self) -> int:
        """Agreeing checks in a row still needed to become eligible (0 for counted keys)."""
        return 0 if self.counted or self.status == RETIRED else max(0, ADMIT_AFTER - self.streak)


@dataclass(frozen=True)
class Check:
    """One key's check of one decided proposal, as the rule reads it."""

    verdict: str  # the verdict, or CONFLICTING
    seed_proof: bytes  # its ticket's source (chain.sortition)


@dataclass(frozen=True)
class Outcome:
    """What one height decided about one proposal, and who checked it."""

    proposal: bytes
    improves: bool  # accepted or orphaned (the quorum said improves) rather than rejected
    checks: Mapping[bytes, Check]  # every key that attested it, counted or not


@dataclass(frozen=True)
class AmendmentNote:
    """What became of one amendment."""

    id: bytes
    height: int
    applied: bool
    note: str  # why refused, or what it did; "waits" when its height is not reached yet
    retire: tuple[bytes, ...] = ()
    add: tuple[bytes, ...] = ()
    quorum: int = 0
    signers: tuple[bytes, ...] = ()
    reason: str = ""


@dataclass(frozen=True)
class Standing:
    """Where every key stands after the walk, and the counted set a new proposal at the next height faces."""

    records: dict[bytes, KeyRecord]  # every founding key and every key that attested
    counted: frozenset[bytes]  # counted at the height after the last one walked
    quorum: int
    founding: frozenset[bytes]
    height: int  # that next height
    notes: tuple[AmendmentNote, ...] = ()  # every amendment of the arena, by height then id

    def status(self, key: bytes) -> str:
        rec = self.records.get(key)
        return rec.status if rec is not None else VOLUNTEER

    def record(self, key: bytes) -> KeyRecord:
        """The key's record (a fresh volunteer's when it never attested here)."""
        rec = self.records.get(key)
        return replace(rec) if rec is not None else KeyRecord(key, VOLUNTEER, since=self.height)


@dataclass
class Roster:
    """The walk's mutable state (see the module docstring)."""

    founding: set[bytes]
    quorum: int
    records: dict[bytes, KeyRecord] = field(default_factory=dict)
    decided: int = 0
    notes: list[AmendmentNote] = field(default_factory=list)
    waiting: dict[int, list[Amendment]] = field(default_factory=dict)  # height -> amendments not yet applied

    @classmethod
    def genesis(cls, verifiers: Iterable[bytes], quorum: int, amendments: Iterable[Amendment] = ()) -> Roster:
        keys = set(verifiers)
        roster = cls(keys, quorum, {k: KeyRecord(k, FOUNDING) for k in sorted(keys)})
        for a in {a.id: a for a in amendments}.values():
            roster.waiting.setdefault(a.height, []).append(a)
        return roster

    def counted(self) -> frozenset[bytes]:
        return frozenset(k for k, r in self.records.items() if r.status in VOTING)

    def begin(self, height: int) -> frozenset[bytes]:
        """Admit up to ADMIT_PER_HEIGHT eligible keys; the counted set of `height`."""
        eligible = sorted((r.eligible_at, k) for k, r in self.records.items()
                          if r.status in (VOLUNTEER, DEMOTED) and r.eligible_at is not None)
        for _, key in eligible[:ADMIT_PER_HEIGHT]:
            rec = self.records[key]
            rec.status, rec.since, rec.eligible_at = COUNTED, height, None
            rec.last_active, rec.admissions = self.decided, rec.admissions + 1
        self._amend(height)
        return self.counted()

    def _amend(self, height: int) -> None:
        todo = sorted(self.waiting.pop(height, ()), key=lambda a: a.id)
        if not todo:
            return
        before, quorum = self.counted(), self.quorum
        for a in todo:
            signed = len(set(a.signers) & before)
            after = (self.counted() - set(a.retire)) | set(a.add)
            new_quorum = a.quorum or self.quorum
            if signed < quorum:
                self._note(a, False, f"{signed} counted signers of the {quorum} it needs")
            elif new_quorum > len(after):
                self._note(a, False, f"quorum {new_quorum} exceeds the {len(after)} keys it would leave counted")
            else:
                for k in a.retire:
                    rec = self.records.setdefault(k, KeyRecord(k, RETIRED, since=height))
                    rec.status, rec.since, rec.eligible_at = RETIRED, height, None
                    self.founding.discard(k)
                for k in a.add:
                    rec = self.records.setdefault(k, KeyRecord(k, FOUNDING, since=height))
                    rec.status, rec.since, rec.eligible_at, rec.streak = FOUNDING, height, None, 0
                    self.founding.add(k)
                self.quorum = new_quorum
                self._note(a, True, f"applied at height {height}")

    def _note(self, a: Amendment, applied: bool, note: str) -> None:
        self.notes.append(AmendmentNote(a.id, a.height, applied, note, tuple(a.retire), tuple(a.add), a.quorum,
                                        a.signers, a.reason))

    def rejection_threshold(self, counted: int) -> int:
        """r: counted non-improves verdicts that reject (the old `n - q + 1` with founding keys only)."""
        q = self.quorum
        return min(counted - q + 1, max(q, len(self.founding) - q + 1))

    def end(self, height: int, counted: frozenset[bytes], outcomes: Iterable[Outcome]) -> None:
        """Apply one height's decided outcomes to every record (all at once: order-free)."""
        agreed: dict[bytes, int] = {}
        disagreed: set[bytes] = set()
        for o in outcomes:
            self.decided += 1
            for key, check in o.checks.items():
                rec = self.records.get(key)
                if rec is None:
                    rec = self.records[key] = KeyRecord(key, VOLUNTEER, since=height)
                if rec.status == RETIRED:
                    continue
                rec.last_active = self.decided
                if key not in counted and not volunteer_chosen(check.seed_proof):
                    continue  # a check it chose itself builds no record
                ok = check.verdict != CONFLICTING and (check.verdict == "improves") == o.improves
                rec.checks += 1
                if ok:
                    rec.agreed += 1
                    agreed[key] = agreed.get(key, 0) + 1
                else:
                    rec.disagreed += 1
                    disagreed.add(key)
        for key in sorted(agreed.keys() | disagreed):
            rec = self.records[key]
            if rec.status == FOUNDING:
                continue
            if key in disagreed:
                rec.streak, rec.eligible_at = 0, None
                if rec.status == COUNTED:
                    self._demote(rec, height)
            elif rec.status in (VOLUNTEER, DEMOTED):
                rec.streak += agreed[key]
                if rec.streak >= ADMIT_AFTER and rec.eligible_at is None:
                    rec.eligible_at = height
        for rec in self.records.values():
            if rec.status == COUNTED and self.decided - rec.last_active >= INACTIVE_AFTER:
                self._demote(rec, height)

    def _demote(self, rec: KeyRecord, height: int) -> None:
        rec.status, rec.since, rec.streak, rec.eligible_at = DEMOTED, height + 1, 0, None
        rec.demotions += 1

    def standing(self, next_height: int) -> Standing:
        """The result: call after `begin(next_height)` (the set a proposal at that height faces)."""
        for height in sorted(self.waiting):
            for a in sorted(self.waiting[height], key=lambda a: a.id):
                self._note(a, False, f"waits for height {height}")
        notes = tuple(sorted(self.notes, key=lambda n: (n.height, n.id)))
        return Standing({k: replace(r) for k, r in sorted(self.records.items())}, self.counted(), self.quorum,
                        frozenset(self.founding), next_height, notes)
