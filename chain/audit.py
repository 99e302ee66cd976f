"""Full validation of a store, trusting nothing it holds.

Every row is decoded again with every check (structure, canonical bytes, both
signatures of an attestation, derived seeds, id), every blob file is re-hashed,
every admission rule is replayed in insertion order, the index tables are
compared with the objects, and the chain state of every arena is recomputed.
Used after a crash, by tests and by the benchmark.

Signature checks are about three quarters of the work. They run in worker
processes (not threads: the main thread's decoding would hold the GIL and
starve them) while the main process decodes, re-hashes blobs and applies the rules.
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chain.consensus import ChainState, compute_state
from chain.errors import (
    BadSignatureError,
    CorruptBlobError,
    CorruptObjectError,
    DecodeError,
    StoreError,
    UnknownArenaError,
    UnknownParentError,
    UnknownProposalError,
    WrongArenaError,
)
from chain.keys import verify_batch
from chain.objects import (
    MAX_BLOB_BYTES,
    Amendment,
    Arena,
    Attestation,
    Blob,
    ChainObject,
    Profile,
    Proposal,
    decode,
)

if TYPE_CHECKING:
    from chain.store import Store

CHUNK = 1024  # objects per signature batch


@dataclass(frozen=True)
class AuditReport:
    objects: int
    blobs: int
    signatures: int
    states: dict[bytes, ChainState]  # per arena id
    load_s: float  # reading the rows
    decode_s: float  # decoding every row, in the main process
    rules_s: float  # admission rules, chain states, index tables (overlapping the workers' checks)
    verify_s: float  # waiting for the workers' signature, seed and blob checks

    @property
    def total_s(self) -> float:
        return self.load_s + self.decode_s + self.rules_s + self.verify_s


def _pool(workers: int) -> Executor:
    """Worker processes; forked when this process has no other thread (cheap and safe), else spawned."""
    if workers <= 0:
        return ThreadPoolExecutor(max_workers=1)
    method = "fork" if threading.active_count() == 1 and "fork" in multiprocessing.get_all_start_methods() else "spawn"
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context(method))


def _verify_chunk(
    claims: list[tuple[bytes, bytes, str, bytes]],
    seeds: list[tuple[bytes, tuple[int, ...]]],
    blob_paths: list[tuple[bytes, str]],
) -> tuple[list[int], list[int], list[tuple[int, str]]]:
    """Worker side: failing signature indexes, failing seed derivations, blob (index, problem) or sizes."""
    from chain.blobfiles import blob_id_of
    from chain.seeds import derive_seeds

    bad_sigs = verify_batch(claims)
    bad_seeds = [i for i, (proof, s) in enumerate(seeds) if derive_seeds(proof, len(s)) != list(s)]
    blob_results: list[tuple[int, str]] = []
    for i, (blob_id, path) in enumerate(blob_paths):
        try:
            with open(path, "rb") as f:
                data = f.read(MAX_BLOB_BYTES + 1)
        except OSError as e:
            blob_results.append((-1 - i, f"unreadable file ({e.strerror})"))
            continue
        found = blob_id_of(data)
        if found != blob_id:
            blob_results.append((-1 - i, f"hashes to {found.hex()}"))
        else:
            blob_results.append((i, str(len(data))))
    return bad_sigs, bad_seeds, blob_results


def validate_store(store: Store, workers: int = 2) -> AuditReport:
    """Re-check everything `store` holds; raises the first problem found (a ChainError).

    `workers` processes check signatures (0: in a thread of this process).
    """
    t0 = time.perf_counter()
    rows = store.encoded_rows()
    t1 = time.perf_counter()
    decoded: list[Any] = []
    blob_ids: list[bytes] = []
    batches: list[tuple[Future[Any], list[tuple[ChainObject, str, bytes]], list[ChainObject], list[bytes]]] = []
    n_sigs = 0
    with _pool(workers) as pool:
        claims: list[tuple[bytes, bytes, str, bytes]] = []
        owners: list[tuple[ChainObject, str, bytes]] = []
        seeds: list[tuple[bytes, tuple[int, ...]]] = []
        seed_owners: list[ChainObject] = []

        def flush(blob_batch: list[bytes]) -> None:
            paths = [(b, str(store.blob_path(b))) for b in blob_batch]
            batches.append((pool.submit(_verify_chunk, claims, seeds, paths), owners, seed_owners, blob_batch))

        for oid, type_name, data in rows:
            if (type_name == Blob.TYPE) != (data is None):
                raise CorruptObjectError(oid.hex(), f"a {type_name} row {'without' if data is None else 'with'} an encoding")
            if data is None:
                blob_ids.append(oid)
                continue
            obj = _decode_row(oid, type_name, data)
            decoded.append(obj)
            for what, public, signature, domain_type, message in obj.signature_claims():
                claims.append((public, signature, domain_type, message))
                owners.append((obj, what, public))
            if isinstance(obj, Attestation):
                seeds.append((obj.seed_proof, obj.seeds))
                seed_owners.append(obj)
            if len(claims) >= CHUNK:
                n_sigs += len(claims)
                flush([])
                claims, owners, seeds, seed_owners = [], [], [], []
        n_sigs += len(claims)
        flush([])
        claims, owners, seeds, seed_owners = [], [], [], []
        for i in range(0, len(blob_ids), CHUNK):
            flush(blob_ids[i : i + CHUNK])
        t2 = time.perf_counter()
        _check_rules(decoded)
        states = _states(decoded)
        _check_indexes(store, decoded)
        t3 = time.perf_counter()
        blob_sizes: dict[bytes, int] = {}
        for future, sig_owners, seed_objs, blob_batch in batches:
            bad_sigs, bad_seeds, blob_results = future.result()
            for i in bad_sigs:
                obj, what, public = sig_owners[i]
                raise CorruptObjectError(obj.hex, str(BadSignatureError(what, public.hex())))
            for i in bad_seeds:
                raise CorruptObjectError(seed_objs[i].hex, "attestation.seeds: do not derive from the seed proof")
            for i, result in blob_results:
                if i < 0:
                    raise CorruptBlobError(blob_batch[-1 - i].hex(), result)
                blob_sizes[blob_batch[i]] = int(result)
    _check_table(store, "blobs", set(blob_sizes.items()))
    t4 = time.perf_counter()
    return AuditReport(len(rows), len(blob_sizes), n_sigs, states, t1 - t0, t2 - t1, t3 - t2, t4 - t3)


def _decode_row(oid: bytes, type_name: str, data: bytes) -> Any:
    obj = _checked_decode(oid, data)
    if obj.TYPE != type_name:
        raise CorruptObjectError(oid.hex(), f"row says {type_name}, bytes hold a {obj.TYPE}")
    return obj


def _checked_decode(oid: bytes, data: bytes) -> Any:
    try:
        return decode(data, expected_id=oid, verify=False)  # signatures: in the pool
    except DecodeError as e:
        raise CorruptObjectError(oid.hex(), f"{type(e).__name__}: {e}") from e


def _states(objects: list[Any]) -> dict[bytes, ChainState]:
    by_arena: dict[bytes, tuple[list[Proposal], list[Attestation], list[Amendment]]] = {
        o.id: ([], [], []) for o in objects if isinstance(o, Arena)
    }
    for o in objects:
        if isinstance(o, Proposal):
            by_arena[o.arena][0].append(o)
        elif isinstance(o, Attestation):
            by_arena[o.arena][1].append(o)
        elif isinstance(o, Amendment):
            by_arena[o.arena][2].append(o)
    arenas = {o.id: o for o in objects if isinstance(o, Arena)}
    return {aid: compute_state(arenas[aid], ps, ats, ams) for aid, (ps, ats, ams) in by_arena.items()}


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
        elif isinstance(obj, Amendment):
            if obj.arena not in arenas:
                raise UnknownArenaError(obj.arena.hex())
        elif isinstance(obj, Attestation):
            if obj.proposal not in proposal_arena:
                raise UnknownProposalError(obj.proposal.hex())
            if proposal_arena[obj.proposal] != obj.arena:
                raise WrongArenaError(proposal_arena[obj.proposal].hex(), obj.arena.hex())


def _check_indexes(store: Store, objects: list[Any]) -> None:
    """Every index table holds exactly the rows its objects imply (no partial writes)."""
    expected: dict[str, set[tuple[Any, ...]]] = {"arenas": set(), "proposals": set(), "attestations": set(),
                                                 "profiles": set()}
    for o in objects:
        if isinstance(o, Arena):
            expected["arenas"].add((o.id, o.name, o.script))
        elif isinstance(o, Proposal):
            expected["proposals"].add((o.id, o.arena, o.parent, o.script, o.author, o.timestamp))
        elif isinstance(o, Attestation):
            expected["attestations"].add((o.id, o.arena, o.proposal, o.verifier, o.timestamp))
        elif isinstance(o, Profile):
            expected["profiles"].add((o.id, o.owner, o.timestamp))
    for table, want in expected.items():
        _check_table(store, table, want)


def _check_table(store: Store, table: str, want: set[tuple[Any, ...]]) -> None:
    found = set(store._query(f"SELECT * FROM {table}"))  # noqa: SLF001 - same package
    if found != want:
        raise StoreError(
            f"index table {table} disagrees with the objects: "
            f"{len(found - want)} extra rows, {len(want - found)} missing"
        )
