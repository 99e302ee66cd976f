"""The store against a real SQLite database and real blob files."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from chain.audit import validate_store
from chain.builders import make_arena, make_attestation, make_proposal
from chain.errors import (
    AmbiguousIdError,
    BadSignatureError,
    CorruptBlobError,
    DecodeError,
    NotFoundError,
    StoreError,
    UnknownArenaError,
    UnknownParentError,
    UnknownProposalError,
    WrongArenaError,
)
from chain.objects import Arena, Attestation, Blob, Proposal
from chain.store import Store


def snapshot(store: Store) -> tuple[dict[str, int], int, list[str]]:
    files = sorted(p.name for p in (store.home / "blobs").rglob("*") if p.is_file())
    return store.counts(), store.data_version(), files


def test_add_is_idempotent_and_reads_back(arena_store: Store, world) -> None:
    p, blob = make_proposal(world.authors[0], world.arena, world.arena.id)
    assert arena_store.add(blob) is True
    assert arena_store.add(p) is True
    assert arena_store.add(p) is False
    assert arena_store.add_encoded(p.encode()) == p
    assert arena_store.get(p.id) == p
    assert arena_store.get_encoded(p.id) == p.encode()
    assert arena_store.get(blob.id) == blob
    assert arena_store.get_encoded(blob.id) == blob.encode()
    assert arena_store.blob_data(blob.id) == blob.data
    assert arena_store.blob_path(blob.id).read_bytes() == blob.data
    assert arena_store.has(p.id) and not arena_store.has(b"\x01" * 32)
    assert arena_store.counts() == {"arena": 1, "blob": 2, "proposal": 1, "attestation": 0, "profile": 0,
                                    "amendment": 0}


def test_missing_objects_raise_not_found(store: Store) -> None:
    for call in (store.get, store.get_encoded, store.blob_data, store.received_at):
        with pytest.raises(NotFoundError):
            call(b"\x07" * 32)
    with pytest.raises(NotFoundError):
        store.find_arena("nope")


def test_data_version_and_received_at_grow(arena_store: Store, world) -> None:
    v0 = arena_store.data_version()
    p, blob = make_proposal(world.authors[0], world.arena, world.arena.id)
    arena_store.add(p)
    assert arena_store.data_version() > v0
    v1 = arena_store.data_version()
    arena_store.add(p)
    assert arena_store.data_version() == v1
    assert arena_store.received_at(p.id) >= arena_store.received_at(world.arena.id) > 1_600_000_000_000


def test_resolve_prefixes(arena_store: Store, world) -> None:
    assert arena_store.resolve(world.arena.hex[:4]) == world.arena.id
    assert arena_store.resolve(world.arena.hex[:9].upper()) == world.arena.id
    assert arena_store.resolve(world.arena.hex) == world.arena.id
    for bad in ("abc", "xyz1", "", world.arena.hex + "00"):
        with pytest.raises(NotFoundError):
            arena_store.resolve(bad)
    # Make two ids share a prefix: add proposals until some pair collides on 4 hex chars.
    seen: dict[str, bytes] = {}
    for i in range(2000):
        p, _ = make_proposal(world.authors[0], world.arena, world.arena.id, message=f"m{i}")
        arena_store.add(p)
        if p.hex[:4] in seen:
            with pytest.raises(AmbiguousIdError) as e:
                arena_store.resolve(p.hex[:4])
            assert e.value.count >= 2
            assert arena_store.resolve(p.hex) == p.id
            return
        seen[p.hex[:4]] = p.id
    pytest.fail("no 4-hex-char prefix collision in 2000 ids")


def test_arenas_sorted_and_found(store: Store, world) -> None:
    vs = [v.public for v in world.verifiers]
    b, _ = make_arena(world.creator, vs, 1, name="beta")
    a1, _ = make_arena(world.creator, vs, 1, name="alpha", created_at=1)
    a2, _ = make_arena(world.creator, vs, 1, name="alpha", created_at=2)
    for x in (b, a2, a1):
        store.add(x)
    names = [(x.name, x.id) for x in store.arenas()]
    assert names == sorted(names)
    assert store.find_arena("beta") == b
    with pytest.raises(AmbiguousIdError):
        store.find_arena("alpha")
    assert store.find_arena(a1.hex[:10]) == a1
    assert store.find_arena(a1.hex) == a1
    squatter, _ = make_arena(world.creator, vs, 1, name=b.hex[:8])  # a name that is another's id prefix
    store.add(squatter)
    with pytest.raises(AmbiguousIdError):
        store.find_arena(b.hex[:8])
    assert store.find_arena(b.hex[:9]) == b


def test_proposals_attestations_inventory_and_order(arena_store: Store, world) -> None:
    arena = world.arena
    p1, b1 = make_proposal(world.authors[0], arena, arena.id, message="one", timestamp=20)
    p2, b2 = make_proposal(world.authors[1], arena, p1.id, message="two", timestamp=10)
    atts = [make_attestation(v, p1, timestamp=30 - i) for i, v in enumerate(world.verifiers)]
    for obj in (p1, b1, p2, *atts):  # b2 never arrives: inventory lists only held blobs
        arena_store.add(obj)
    assert arena_store.proposals(arena.id) == [p2, p1]  # (timestamp, id)
    assert arena_store.attestations(arena.id, p1.id) == sorted(atts, key=lambda a: (a.timestamp, a.id))
    assert arena_store.attestations(arena.id, p2.id) == []
    assert set(arena_store.attestations(arena.id)) == set(atts)
    inv = arena_store.inventory(arena.id)
    assert set(inv) == {arena.id, world.script.id, b1.id, p1.id, p2.id, *(a.id for a in atts)}
    assert b2.id not in inv and len(inv) == len(set(inv))
    objs = list(arena_store.iter_objects(arena.id))
    assert [o.id for o in objs] == inv
    kinds = [o.TYPE for o in objs]
    assert kinds == sorted(kinds, key=["arena", "blob", "proposal", "attestation"].index)
    with pytest.raises(NotFoundError):
        arena_store.inventory(p1.id)


def test_iter_objects_replays_into_a_fresh_store(arena_store: Store, world, tmp_path: Path) -> None:
    arena = world.arena
    parent = arena.id
    for i in range(4):
        p, b = make_proposal(world.authors[i % 2], arena, parent, message=f"c{i}", timestamp=100 - i)
        arena_store.add(b)
        arena_store.add(p)
        for v in world.verifiers[:2]:
            arena_store.add(make_attestation(v, p))
        parent = p.id
    stray = Blob(data=b"unreferenced")
    arena_store.add(stray)
    with Store.open(tmp_path / "other") as other:
        for obj in arena_store.iter_objects():
            assert other.add_encoded(obj.encode()) == obj  # dependency order: never rejected
        assert other.counts() == arena_store.counts()
        assert set(other.inventory(arena.id)) == set(arena_store.inventory(arena.id))


def test_semantic_errors_leave_the_store_untouched(arena_store: Store, world, tmp_path: Path) -> None:
    arena = world.arena
    other_arena, _ = make_arena(world.creator, [world.verifiers[0].public], 1, name="other")
    p, _ = make_proposal(world.authors[0], arena, arena.id)
    arena_store.add(p)
    before = snapshot(arena_store)

    orphan, _ = make_proposal(world.authors[0], arena, b"\x05" * 32)
    unknown_arena, _ = make_proposal(world.authors[0], other_arena, other_arena.id)
    att_unknown = make_attestation(world.verifiers[0], make_proposal(world.authors[1], arena, arena.id,
                                                                      message="never stored")[0])
    cases = [(orphan, UnknownParentError), (unknown_arena, UnknownArenaError),
             (att_unknown, UnknownProposalError)]
    for obj, error in cases:
        with pytest.raises(error):
            arena_store.add(obj)
        with pytest.raises(error):
            arena_store.add_encoded(obj.encode())
        assert snapshot(arena_store) == before

    # A key outside the verifier set may attest: stored (chain.verifiers decides what counts).
    assert arena_store.add(make_attestation(world.outsider, p))
    arena_store.add(other_arena)
    before = snapshot(arena_store)
    cross, _ = make_proposal(world.authors[0], other_arena, p.id)  # parent from another arena
    with pytest.raises(WrongArenaError):
        arena_store.add(cross)
    cross_arena_parent, _ = make_proposal(world.authors[0], other_arena, arena.id)
    with pytest.raises(WrongArenaError):
        arena_store.add(cross_arena_parent)
    mislabeled = make_attestation(world.verifiers[0], p).replace(arena=other_arena.id)
    mislabeled = Attestation.create(world.verifiers[0], **{
        k: v for k, v in mislabeled.fields().items() if k not in ("verifier", "signature")})
    with pytest.raises(WrongArenaError):
        arena_store.add(mislabeled)
    assert snapshot(arena_store) == before


def test_bad_signatures_and_garbage_are_refused(arena_store: Store, world) -> None:
    p, _ = make_proposal(world.authors[0], world.arena, world.arena.id)
    forged = p.replace(message="changed after signing")
    before = snapshot(arena_store)
    with pytest.raises(BadSignatureError):
        arena_store.add(forged)
    with pytest.raises(BadSignatureError):
        arena_store.add_encoded(forged.encode())
    for junk in (b"", b"\xc1", b"\x93\x01\x02\x03", p.encode()[:-1], p.encode() + b"\x00"):
        with pytest.raises(DecodeError):
            arena_store.add_encoded(junk)
    with pytest.raises(TypeError):
        arena_store.add(p.encode())  # type: ignore[arg-type]
    assert snapshot(arena_store) == before


def test_blob_corruption_is_detected_on_read(arena_store: Store, world) -> None:
    path = arena_store.blob_path(world.script.id)
    os.chmod(path, 0o644)
    path.write_bytes(world.script.data + b"# tampered\n")
    with pytest.raises(CorruptBlobError):
        arena_store.blob_data(world.script.id)
    path.unlink()
    with pytest.raises(CorruptBlobError):
        arena_store.get(world.script.id)
    assert arena_store.add(world.script) is False  # already held: no new row, but the file is healed
    assert arena_store.blob_data(world.script.id) == world.script.data


def test_reopen_keeps_everything(tmp_path: Path, world) -> None:
    home = tmp_path / "h"
    with Store.open(home) as s:
        s.add(world.script)
        s.add(world.arena)
        counts = s.counts()
    with Store.open(home) as s:
        assert s.counts() == counts
        assert s.get(world.arena.id) == world.arena
        assert validate_store(s).objects == 2
    with pytest.raises(StoreError):
        s.has(world.arena.id)  # closed


def test_open_refuses_bad_homes(tmp_path: Path) -> None:
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(StoreError):
        Store.open(f)
    home = tmp_path / "h"
    home.mkdir()
    (home / "chain.sqlite3").write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError):
        Store.open(home)


WRITER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from chain.builders import key, make_arena, make_attestation, make_proposal
    from chain.store import Store
    home, who = Path(sys.argv[1]), int(sys.argv[2])
    vs = [key(1), key(2), key(3)]
    arena, blob = make_arena(key(0), [v.public for v in vs], quorum=2)
    with Store.open(home) as s:
        s.add(blob); s.add(arena)
        for i in range(40):
            # both writers add the same proposals (overlap) and their own attestations
            p, b = make_proposal(key(10), arena, arena.id, message=f"p{i}")
            s.add(b); s.add(p)
            s.add(make_attestation(vs[who], p))
            s.arenas(); s.proposals(arena.id)
    print("done")
""")


def test_two_processes_write_and_read_one_home(tmp_path: Path, world) -> None:
    home = tmp_path / "shared"
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(home), str(i)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for i in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err.decode()
        assert out.strip() == b"done"
    with Store.open(home) as s:
        assert s.counts() == {"arena": 1, "blob": 41, "proposal": 40, "attestation": 80, "profile": 0,
                              "amendment": 0}
        report = validate_store(s)
        assert report.objects == 162


def test_blob_larger_than_an_arena_limit_is_storable(arena_store: Store, world) -> None:
    big = Blob(data=b"#" * (world.arena.max_script_bytes + 1))
    assert arena_store.add(big)
    assert arena_store.blob_data(big.id) == big.data


def test_objects_of_all_types_round_trip_through_get(arena_store: Store, world) -> None:
    p, b = make_proposal(world.authors[0], world.arena, world.arena.id)
    a = make_attestation(world.verifiers[1], p, "invalid:syntax_error")
    for obj in (b, p, a):
        arena_store.add(obj)
    for obj, cls in ((world.arena, Arena), (b, Blob), (p, Proposal), (a, Attestation)):
        got = arena_store.get(obj.id)
        assert type(got) is cls and got.encode() == obj.encode()


def test_an_old_version_object_is_refused_with_a_clear_error(tmp_path: Path, world) -> None:
    """A store written before attestation v2 (harness 2) names what to do, and is not called corrupt."""
    import hashlib
    import sqlite3

    import msgpack

    from chain.errors import OldObjectError

    home = tmp_path / "old"
    proposal, blob = make_proposal(world.authors[0], world.arena, world.arena.id)
    att = make_attestation(world.verifiers[0], proposal)
    with Store.open(home) as s:
        for obj in (world.script, world.arena, blob, proposal, att):
            s.add(obj)
    items = msgpack.unpackb(att.encode(), raw=False)
    names = list(Attestation.field_names())
    v1 = [v for name, v in zip(names, items[2:], strict=True) if name not in (*Attestation.SPENT, "parent_class", "compute_class",
                                                                             "compute_x_milli")]
    old = msgpack.packb([items[0], 1, *v1], use_bin_type=True)  # the layout version 1 had
    old_id = hashlib.sha256(b"ratchet/v1/id/attestation\x00" + old).digest()
    with sqlite3.connect(home / "chain.sqlite3") as db:
        db.execute("UPDATE objects SET encoding = ?, id = ? WHERE id = ?", (old, old_id, att.id))
        db.execute("UPDATE attestations SET id = ? WHERE id = ?", (old_id, att.id))
    with Store.open(home) as s:
        with pytest.raises(OldObjectError, match="older ratchet.*start a new one"):
            s.attestations(world.arena.id)
        assert s.get(proposal.id) == proposal  # everything else still reads
