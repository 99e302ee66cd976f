"""Full validation of a store, trusting nothing it holds.

Every row is decoded again with every check (structure, canonical bytes, both
signatures of an attestation, id), every blob file is re-hashed, every
semantic rule is re-applied in insertion order, the index tables are compared
with the objects, and the chain state of every arena is recomputed. Used after
a crash, by `ratchet` maintenance commands, by tests and by the benchmark.

Signature checks dominate; libsodium releases the GIL, so they run in a
thread pool (`workers`) while the main thread decodes the next chunk.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chain.blobfiles import BlobFiles
from chain.consensus import ChainState, compute_state
from chain.errors import (
    CorruptObjectError,
    DecodeError,
    NotAVerifierError,
    StoreError,
    UnknownArenaError,
    UnknownParentError,
    UnknownProposalError,
    WrongArenaError,
)
from chain.objects import Arena, Attestation, Blob, Proposal, decode

if TYPE_CHECKING:
    from chain.store import Store

CHUNK = 512


@dataclass(frozen=True)
class AuditReport:
    objects: int
    blobs: int
    states: dict[bytes, ChainState]  # per arena id
    load_s: float  # reading the rows
    decode_s: float  # decoding every row (main thread, overlapping the checks below)
    verify_s: float  # waiting for signature checks and blob re-hashing after decoding ended
    rules_s: float  # semantic rules, index tables, chain states

    @property
    def total_s(self) -> float:
        return self.load_s + self.decode_s + self.verify_s + self.rules_s


def _decode_chunk(rows: list[tuple[bytes, str, bytes]]) -> list[Any]:
    out = []
    for oid, type_name, data in rows:
        try:
            obj = decode(data, expected_id=oid, verify=False)  # signatures: _check_signatures
        except DecodeError as e:
            raise CorruptObjectError(oid.hex(), f"{type(e).__name__}: {e}") from e
        if obj.TYPE != type_name:
            raise CorruptObjectError(oid.hex(), f"row says {type_name}, bytes hold a {obj.TYPE}")
        out.append(obj)
    return out


def _check_signatures(objects: list[Any]) -> None:
    for obj in objects:
        try:
            obj.check_signature()
        except DecodeError as e:
            raise CorruptObjectError(obj.hex, f"{type(e).__name__}: {e}") from e


def _read_blobs(files: BlobFiles, blob_ids: list[bytes]) -> list[Blob]:
    return [Blob(data=files.read(oid)) for oid in blob_ids]


def validate_store(store: Store, workers: int = 2) -> AuditReport:
    """Re-check everything `store` holds; raises the first problem found (a ChainError)."""
    t0 = time.perf_counter()
    rows = store.encoded_rows()
    t1 = time.perf_counter()
    encoded: list[tuple[bytes, str, bytes]] = []
    blob_ids: list[bytes] = []
    for oid, type_name, data in rows:
        if (type_name == Blob.TYPE) != (data is None):
            raise CorruptObjectError(oid.hex(), f"a {type_name} row {'without' if data is None else 'with'} an encoding")
        if data is None:
            blob_ids.append(oid)
        else:
            encoded.append((oid, type_name, data))
    chunks = [encoded[i : i + CHUNK] for i in range(0, len(encoded), CHUNK)]
    # Pipeline: this thread decodes (Python, holds the GIL) while the pool re-hashes
    # blob files and checks the signatures of the chunks already decoded
    # (libsodium releases the GIL, so the pool's threads run on all cores).
    decoded: list[Any] = []
    blob_files = store._blobs  # noqa: SLF001 - same package: no per-blob SQL round trip
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        blob_jobs = [
            pool.submit(_read_blobs, blob_files, blob_ids[i : i + CHUNK])
            for i in range(0, len(blob_ids), CHUNK)
        ]
        checks = []
        for chunk in chunks:
            objs = _decode_chunk(chunk)
            decoded.extend(objs)
            checks.append(pool.submit(_check_signatures, objs))
        t_decoded = time.perf_counter()
        blobs = [b for job in blob_jobs for b in job.result()]
        for f in checks:
            f.result()
    t2 = time.perf_counter()
    _check_rules(decoded)
    _check_indexes(store, decoded, blobs)
    arenas = [o for o in decoded if isinstance(o, Arena)]
    states = {
        a.id: compute_state(
            a,
            (o for o in decoded if isinstance(o, Proposal) and o.arena == a.id),
            (o for o in decoded if isinstance(o, Attestation) and o.arena == a.id),
        )
        for a in arenas
    }
    t3 = time.perf_counter()
    return AuditReport(len(rows), len(blobs), states, t1 - t0, t_decoded - t1, t2 - t_decoded, t3 - t2)


def _check_rules(objects: list[Any]) -> None:
    """The store's admission rules, replayed in insertion order."""
    arenas: dict[bytes, Arena] = {}
    proposal_arena: dict[bytes, bytes] = {}
    for obj in objects:
        if isinstance(obj, Arena):
            arenas[obj.id] = obj
        elif isinstance(obj, Proposal):
            if obj.arena not in arenas:
                raise UnknownArenaError(obj.arena.hex())
            if obj.parent != obj.arena:
                if obj.parent not in proposal_arena:
                    raise UnknownParentError(obj.parent.hex())
                if proposal_arena[obj.parent] != obj.arena:
                    raise WrongArenaError(proposal_arena[obj.parent].hex(), obj.arena.hex())
            proposal_arena[obj.id] = obj.arena
        elif isinstance(obj, Attestation):
            if obj.proposal not in proposal_arena:
                raise UnknownProposalError(obj.proposal.hex())
            if proposal_arena[obj.proposal] != obj.arena:
                raise WrongArenaError(proposal_arena[obj.proposal].hex(), obj.arena.hex())
            if obj.verifier not in arenas[obj.arena].verifiers:
                raise NotAVerifierError(obj.verifier.hex(), obj.arena.hex())


def _check_indexes(store: Store, objects: list[Any], blobs: list[Blob]) -> None:
    """Every index table holds exactly the rows its objects imply (no partial writes)."""
    expected: dict[str, set[tuple[Any, ...]]] = {"arenas": set(), "proposals": set(), "attestations": set()}
    for o in objects:
        if isinstance(o, Arena):
            expected["arenas"].add((o.id, o.name, o.script))
        elif isinstance(o, Proposal):
            expected["proposals"].add((o.id, o.arena, o.parent, o.script, o.author, o.timestamp))
        elif isinstance(o, Attestation):
            expected["attestations"].add((o.id, o.arena, o.proposal, o.verifier, o.timestamp))
    expected["blobs"] = {(b.id, len(b.data)) for b in blobs}
    for table, want in expected.items():
        found = {tuple(bytes(v) if isinstance(v, bytes | memoryview) else v for v in row)
                 for row in store._query(f"SELECT * FROM {table}")}  # noqa: SLF001 - same package
        if found != want:
            raise StoreError(
                f"index table {table} disagrees with the objects: "
                f"{len(found - want)} extra rows, {len(want - found)} missing"
            )
