"""Full re-validation (chain.audit) finds every kind of damage a store can suffer on disk."""

from __future__ import annotations

import sqlite3

import pytest

from chain.audit import validate_store
from chain.builders import make_attestation, make_proposal
from chain.errors import CorruptBlobError, CorruptObjectError, StoreError, UnknownProposalError
from chain.objects import Attestation
from chain.store import DB_NAME, Store


@pytest.fixture
def full_store(arena_store: Store, world) -> Store:
    parent = world.arena.id
    for i in range(3):
        p, b = make_proposal(world.authors[i % 2], world.arena, parent, message=f"c{i}", timestamp=i)
        arena_store.add(b)
        arena_store.add(p)
        for v in world.verifiers:
            arena_store.add(make_attestation(v, p, gain_ubpb=100 * (i + 1)))
        parent = p.id
    return arena_store


def raw_db(store: Store) -> sqlite3.Connection:
    return sqlite3.connect(store.home / DB_NAME, isolation_level=None)


@pytest.mark.parametrize("workers", [0, 2])
def test_a_healthy_store_validates(full_store: Store, world, workers: int) -> None:
    report = validate_store(full_store, workers=workers)
    assert report.objects == 1 + 4 + 3 + 9
    assert report.blobs == 4 and report.signatures == 1 + 3 + 9 * 2
    state = report.states[world.arena.id]
    assert len(state.accepted) == 3 and state.commits[state.head].cumulative_ubpb == 600
    assert report.total_s > 0


def test_replaced_bytes_are_caught_on_read_and_by_audit(full_store: Store, world) -> None:
    p = full_store.proposals(world.arena.id)[0]
    other = full_store.proposals(world.arena.id)[1]
    raw_db(full_store).execute("UPDATE objects SET encoding = ? WHERE id = ?", (other.encode(), p.id))
    with pytest.raises(CorruptObjectError):
        full_store.get(p.id)
    with pytest.raises(CorruptObjectError):
        validate_store(full_store)


def test_a_forged_row_is_caught_by_its_signature(full_store: Store, world) -> None:
    att = full_store.attestations(world.arena.id)[0]
    forged = att.replace(verdict="no_gain")  # valid structure, signature no longer matches
    assert isinstance(forged, Attestation)
    db = raw_db(full_store)
    db.execute("UPDATE objects SET id = ?, encoding = ? WHERE id = ?", (forged.id, forged.encode(), att.id))
    db.execute("UPDATE attestations SET id = ? WHERE id = ?", (forged.id, att.id))
    assert full_store.get(forged.id).verdict == "no_gain"  # the fast read path trusts its own rows
    with pytest.raises(CorruptObjectError, match="signature"):
        validate_store(full_store)


def test_damaged_blob_files_are_caught(full_store: Store, world) -> None:
    path = full_store.blob_path(world.script.id)
    path.chmod(0o644)
    path.write_bytes(b"not the script")
    with pytest.raises(CorruptBlobError):
        validate_store(full_store)
    path.unlink()
    with pytest.raises(CorruptBlobError):
        validate_store(full_store)


def test_a_missing_index_row_is_caught(full_store: Store, world) -> None:
    p = full_store.proposals(world.arena.id)[-1]
    raw_db(full_store).execute("DELETE FROM proposals WHERE id = ?", (p.id,))
    with pytest.raises(StoreError, match="proposals"):
        validate_store(full_store)


def test_a_row_breaking_the_rules_is_caught(full_store: Store, world) -> None:
    never_stored = make_proposal(world.authors[1], world.arena, world.arena.id, message="never stored")[0]
    outsider = make_attestation(world.verifiers[0], never_stored)  # its proposal is not in the store
    db = raw_db(full_store)
    db.execute("INSERT INTO objects(id, type, arena, encoding, received_at) VALUES (?, ?, ?, ?, 0)",
               (outsider.id, outsider.TYPE, outsider.arena, outsider.encode()))
    db.execute("INSERT INTO attestations VALUES (?, ?, ?, ?, ?)",
               (outsider.id, outsider.arena, outsider.proposal, outsider.verifier, outsider.timestamp))
    with pytest.raises(UnknownProposalError):
        validate_store(full_store)


def test_validation_spawns_workers_when_other_threads_run(full_store: Store, world) -> None:
    """A process with threads (a node, a server) must not fork: the spawned pool gives the same result."""
    import threading

    stop = threading.Event()
    helper = threading.Thread(target=stop.wait, args=(30,))
    helper.start()
    try:
        assert threading.active_count() > 1
        report = validate_store(full_store, workers=2)
    finally:
        stop.set()
        helper.join(timeout=5)
    assert len(report.states[world.arena.id].accepted) == 3
