"""The node's store: SQLite (WAL) for objects and indexes, content-addressed files for blobs.

Every write is validated first (signature, structure, the chain's semantic
rules) and then committed in one transaction per object, so a failure or a
process killed at any instant leaves the store as it was before that object.
Objects are immutable and never deleted, which keeps the rules simple: a row,
once there, stays true; dependencies can be read outside the write lock.

Several processes may open one home (a node writing, a leaderboard reading):
WAL lets readers run beside the writer, and busy_timeout makes writers queue.
Rows are re-read with `load_trusted`: this node validated every object (fields,
signatures, rules) when it stored it, and the id recomputed on every read proves
the bytes are the ones validated (chain.audit re-validates everything).
"""

from __future__ import annotations

import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

from chain.blobfiles import BlobFiles
from chain.encoding import MAX_OBJECT_BYTES
from chain.errors import (
    AmbiguousIdError,
    CorruptObjectError,
    DecodeError,
    NotFoundError,
    OldObjectError,
    OversizeError,
    StoreError,
    UnknownArenaError,
    UnknownParentError,
    UnknownProposalError,
    VersionError,
    WrongArenaError,
)
from chain.objects import (
    Amendment,
    Arena,
    Attestation,
    Blob,
    ChainObject,
    Profile,
    Proposal,
    decode,
    load_trusted,
)

DB_NAME = "chain.sqlite3"
SCHEMA_VERSION = 2  # 2: profiles
BUSY_TIMEOUT_S = 30.0
_HEX_PREFIX = re.compile(r"[0-9a-f]{4,64}")
# The id of each key's newest profile (chain.profiles.newer: timestamp, then the greater id).
_CURRENT_PROFILE_IDS = ("SELECT id FROM (SELECT id, row_number() OVER (PARTITION BY owner"
                        " ORDER BY timestamp DESC, id DESC) AS n FROM profiles) WHERE n = 1")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    seq INTEGER PRIMARY KEY,          -- insertion order: data_version, dependency order
    id BLOB NOT NULL UNIQUE,
    type TEXT NOT NULL,
    arena BLOB,                       -- the arena it belongs to (its own id for an arena)
    encoding BLOB,                    -- NULL for blobs: their bytes live in blobs/
    received_at INTEGER NOT NULL      -- unix ms
);
CREATE INDEX IF NOT EXISTS objects_arena ON objects(arena, type, seq);
CREATE TABLE IF NOT EXISTS arenas (
    id BLOB PRIMARY KEY, name TEXT NOT NULL, script BLOB NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS arenas_name ON arenas(name, id);
CREATE TABLE IF NOT EXISTS proposals (
    id BLOB PRIMARY KEY, arena BLOB NOT NULL, parent BLOB NOT NULL, script BLOB NOT NULL,
    author BLOB NOT NULL, timestamp INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS proposals_arena ON proposals(arena, timestamp, id);
CREATE INDEX IF NOT EXISTS proposals_script ON proposals(script);
CREATE TABLE IF NOT EXISTS attestations (
    id BLOB PRIMARY KEY, arena BLOB NOT NULL, proposal BLOB NOT NULL, verifier BLOB NOT NULL,
    timestamp INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS attestations_proposal ON attestations(proposal, timestamp, id);
CREATE INDEX IF NOT EXISTS attestations_arena ON attestations(arena, timestamp, id);
CREATE TABLE IF NOT EXISTS blobs (id BLOB PRIMARY KEY, size INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS profiles (
    id BLOB PRIMARY KEY, owner BLOB NOT NULL, timestamp INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS profiles_owner ON profiles(owner, timestamp, id);
"""


def _prepare(conn: sqlite3.Connection, home: Path) -> None:
    """WAL mode and the schema (idempotent: several processes may open a new home at once)."""
    if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise StoreError(f"{home / DB_NAME}: cannot switch to WAL mode (got {mode})")
    # NORMAL in WAL mode: a killed process never corrupts or half-applies a
    # transaction; only a power cut may lose the last few commits.
    conn.execute("PRAGMA synchronous = NORMAL")
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise StoreError(f"{home / DB_NAME} has schema {version}; this ratchet knows {SCHEMA_VERSION}")
    if version < SCHEMA_VERSION:
        try:
            conn.executescript(
                f"BEGIN IMMEDIATE; {_SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
            )
        except sqlite3.DatabaseError:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise


def _retry_while_locked(action: Callable[[], None]) -> None:
    """Run `action`, retrying while another process holds a lock SQLite will not wait for.

    Switching a new database to WAL returns "database is locked" at once (no busy
    handler) when another process is doing the same; back off and try again.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    delay = 0.005
    while True:
        try:
            action()
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) and "busy" not in str(e) or time.monotonic() > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.2)


class Store:
    """One node's objects. Open with `Store.open(home)`; close (or use `with`) when done."""

    def __init__(self, home: Path, conn: sqlite3.Connection, blobs: BlobFiles) -> None:
        self.home = home
        self._conn: sqlite3.Connection | None = conn
        self._blobs = blobs
        self._lock = threading.RLock()  # one connection, shared by the threads of a process
        self._arena_cache: dict[bytes, Arena] = {}

    # -- lifecycle -----------------------------------------------------------
    @classmethod
    def open(cls, home: Path | str) -> Store:
        """Open (creating if needed) the store under `home`."""
        home = Path(home)
        try:
            home.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StoreError(f"cannot create data directory {home}: {e.strerror or e}") from e
        if not home.is_dir():
            raise StoreError(f"{home} is not a directory")
        blobs = BlobFiles(home / "blobs")
        try:
            conn = sqlite3.connect(
                home / DB_NAME, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
            conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            _retry_while_locked(lambda: _prepare(conn, home))
        except (sqlite3.DatabaseError, UnicodeDecodeError) as e:  # a damaged schema page can be either
            raise StoreError(f"cannot open the database in {home}: {e}") from e
        blobs.sweep()
        return cls(home, conn, blobs)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError("the store is closed")
        return self._conn

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        with self._lock:
            try:
                return self._db().execute(sql, params).fetchall()
            except (sqlite3.DatabaseError, UnicodeDecodeError) as e:
                raise StoreError(f"database error: {e}") from e

    # -- writes ----------------------------------------------------------------
    def add(self, obj: ChainObject) -> bool:
        """Validate and store `obj`. True if newly stored, False if already held."""
        if not isinstance(obj, ChainObject):
            raise TypeError(f"expected a chain object, got {type(obj).__name__}")
        if self.has(obj.id):
            if isinstance(obj, Blob):  # held: heal its file if it rotted or vanished
                self._blobs.write(obj)
            return False
        if len(obj.encode()) > MAX_OBJECT_BYTES:
            raise OversizeError("encoded object", MAX_OBJECT_BYTES, len(obj.encode()))
        obj.check_signature()
        return self._insert(obj)

    def add_encoded(self, data: bytes) -> ChainObject:
        """Decode `data` (every check of chain.objects.decode) and store it; returns the object."""
        obj = decode(data, verify=False)
        if not self.has(obj.id):  # a held id has exactly these bytes, already verified
            obj.check_signature()
            self._insert(obj)
        elif isinstance(obj, Blob):  # held: heal its file if it rotted or vanished
            self._blobs.write(obj)
        return obj

    def _insert(self, obj: ChainObject) -> bool:
        arena = self._check_semantics(obj)
        if isinstance(obj, Blob):
            self._blobs.write(obj)
        now = time.time_ns() // 1_000_000
        with self._lock:
            db = self._db()
            try:
                db.execute("BEGIN IMMEDIATE")
                try:
                    cur = db.execute(
                        "INSERT OR IGNORE INTO objects(id, type, arena, encoding, received_at)"
                        " VALUES (?, ?, ?, ?, ?)",
                        (obj.id, obj.TYPE, arena, None if isinstance(obj, Blob) else obj.encode(), now),
                    )
                    if cur.rowcount == 0:  # another process stored it meanwhile
                        db.execute("ROLLBACK")
                        return False
                    self._index(db, obj)
                    db.execute("COMMIT")
                except BaseException:
                    if db.in_transaction:
                        db.execute("ROLLBACK")
                    raise
            except (sqlite3.DatabaseError, UnicodeDecodeError) as e:
                raise StoreError(f"cannot store {obj.TYPE} {obj.hex}: {e}") from e
        return True

    @staticmethod
    def _index(db: sqlite3.Connection, obj: ChainObject) -> None:
        if isinstance(obj, Proposal):
            db.execute(
                "INSERT INTO proposals VALUES (?, ?, ?, ?, ?, ?)",
                (obj.id, obj.arena, obj.parent, obj.script, obj.author, obj.timestamp),
            )
        elif isinstance(obj, Attestation):
            db.execute(
                "INSERT INTO attestations VALUES (?, ?, ?, ?, ?)",
                (obj.id, obj.arena, obj.proposal, obj.verifier, obj.timestamp),
            )
        elif isinstance(obj, Arena):
            db.execute("INSERT INTO arenas VALUES (?, ?, ?)", (obj.id, obj.name, obj.script))
        elif isinstance(obj, Blob):
            db.execute("INSERT INTO blobs VALUES (?, ?)", (obj.id, len(obj.data)))
        elif isinstance(obj, Profile):
            db.execute("INSERT INTO profiles VALUES (?, ?, ?)", (obj.id, obj.owner, obj.timestamp))

    def _check_semantics(self, obj: ChainObject) -> bytes | None:
        """The chain's rules for `obj` against what is stored; returns its arena id."""
        if isinstance(obj, Arena):
            return obj.id
        if isinstance(obj, Blob | Profile):  # a profile belongs to no arena and depends on nothing
            return None
        if isinstance(obj, Amendment):  # whether it applies is chain.verifiers' to say, from the chain
            self._arena(obj.arena)
            return obj.arena
        if isinstance(obj, Proposal):
            if not self._query("SELECT 1 FROM arenas WHERE id = ?", (obj.arena,)):
                raise UnknownArenaError(obj.arena.hex())
            if obj.parent != obj.arena:
                rows = self._query(
                    "SELECT arena FROM proposals WHERE id = ? UNION ALL SELECT id FROM arenas WHERE id = ?",
                    (obj.parent, obj.parent),
                )
                if not rows:
                    raise UnknownParentError(obj.parent.hex())
                if rows[0][0] != obj.arena:
                    raise WrongArenaError(rows[0][0].hex(), obj.arena.hex())
            return obj.arena
        if isinstance(obj, Attestation):
            rows = self._query("SELECT arena FROM proposals WHERE id = ?", (obj.proposal,))
            if not rows:
                raise UnknownProposalError(obj.proposal.hex())
            if rows[0][0] != obj.arena:
                raise WrongArenaError(rows[0][0].hex(), obj.arena.hex())
            # Any key may attest (a volunteer's check is stored and relayed); what counts is
            # chain.verifiers' to say, from the chain.
            self._arena(obj.arena)
            return obj.arena
        raise TypeError(f"cannot store a {type(obj).__name__}")

    # -- reads -------------------------------------------------------------------
    def has(self, oid: bytes) -> bool:
        return bool(self._query("SELECT 1 FROM objects WHERE id = ?", (oid,)))

    def get(self, oid: bytes) -> Any:
        """The object with id `oid` (NotFoundError if not held)."""
        rows = self._query("SELECT type, encoding FROM objects WHERE id = ?", (oid,))
        if not rows:
            raise NotFoundError(f"object {oid.hex()}")
        type_name, data = rows[0]
        if type_name == Blob.TYPE:
            return Blob(data=self._blobs.read(oid))
        return self._load(oid, data)

    def get_encoded(self, oid: bytes) -> bytes:
        rows = self._query("SELECT type, encoding FROM objects WHERE id = ?", (oid,))
        if not rows:
            raise NotFoundError(f"object {oid.hex()}")
        if rows[0][0] == Blob.TYPE:
            return Blob(data=self._blobs.read(oid)).encode()
        return bytes(rows[0][1])

    def blob_data(self, blob_id: bytes) -> bytes:
        """A blob's raw bytes, re-hashed against its id (CorruptBlobError if they differ)."""
        if not self._query("SELECT 1 FROM blobs WHERE id = ?", (blob_id,)):
            raise NotFoundError(f"blob {blob_id.hex()}")
        return self._blobs.read(blob_id)

    def resolve(self, prefix_hex: str) -> bytes:
        """The one full id starting with `prefix_hex` (at least 4 hex characters)."""
        prefix = prefix_hex.strip().lower()
        if not _HEX_PREFIX.fullmatch(prefix):
            raise NotFoundError(f"{prefix_hex!r} (an id prefix is 4 to 64 hex characters)")
        lo = bytes.fromhex(prefix.ljust(64, "0"))
        hi = bytes.fromhex(prefix.ljust(64, "f"))
        rows = self._query("SELECT id FROM objects WHERE id BETWEEN ? AND ? LIMIT 2", (lo, hi))
        if not rows:
            raise NotFoundError(f"object with id prefix {prefix}")
        if len(rows) > 1:
            count = self._query("SELECT count(*) FROM objects WHERE id BETWEEN ? AND ?", (lo, hi))[0][0]
            raise AmbiguousIdError(prefix, count)
        return bytes(rows[0][0])

    def arenas(self) -> list[Arena]:
        rows = self._query(
            "SELECT o.id, o.encoding FROM arenas a JOIN objects o ON o.id = a.id ORDER BY a.name, a.id"
        )
        return [self._load(oid, data) for oid, data in rows]

    def find_arena(self, name_or_prefix: str) -> Arena:
        """An arena by exact name or by id prefix (NotFoundError / AmbiguousIdError).

        Names are chosen by arena creators and may look like hex: a name that is also
        another arena's id prefix is ambiguous rather than silently preferred.
        """
        ids = {bytes(r[0]) for r in self._query("SELECT id FROM arenas WHERE name = ?", (name_or_prefix,))}
        prefix = name_or_prefix.strip().lower()
        if _HEX_PREFIX.fullmatch(prefix):
            lo = bytes.fromhex(prefix.ljust(64, "0"))
            hi = bytes.fromhex(prefix.ljust(64, "f"))
            ids |= {bytes(r[0]) for r in self._query("SELECT id FROM arenas WHERE id BETWEEN ? AND ?", (lo, hi))}
        if not ids:
            raise NotFoundError(f"arena {name_or_prefix!r}")
        if len(ids) > 1:
            raise AmbiguousIdError(name_or_prefix, len(ids))
        return self._arena(ids.pop())

    def proposals(self, arena_id: bytes) -> list[Proposal]:
        rows = self._query(
            "SELECT o.id, o.encoding FROM proposals p JOIN objects o ON o.id = p.id"
            " WHERE p.arena = ? ORDER BY p.timestamp, p.id",
            (arena_id,),
        )
        return [self._load(oid, data) for oid, data in rows]

    def attestations(self, arena_id: bytes, proposal_id: bytes | None = None) -> list[Attestation]:
        """Attestations of an arena (or of one of its proposals), ordered by (timestamp, id)."""
        if proposal_id is None:
            sql = ("SELECT o.id, o.encoding FROM attestations a JOIN objects o ON o.id = a.id"
                   " WHERE a.arena = ? ORDER BY a.timestamp, a.id")
            params: tuple[Any, ...] = (arena_id,)
        else:
            sql = ("SELECT o.id, o.encoding FROM attestations a JOIN objects o ON o.id = a.id"
                   " WHERE a.proposal = ? AND a.arena = ? ORDER BY a.timestamp, a.id")
            params = (proposal_id, arena_id)
        return [self._load(oid, data) for oid, data in self._query(sql, params)]

    def amendments(self, arena_id: bytes) -> list[Amendment]:
        """Every amendment of an arena, in insertion order (chain.verifiers orders them itself)."""
        rows = self._query("SELECT id, encoding FROM objects WHERE arena = ? AND type = ? ORDER BY seq",
                           (arena_id, Amendment.TYPE))
        return [self._load(oid, data) for oid, data in rows]

    def profiles(self, owner: bytes | None = None) -> list[Profile]:
        """Every profile held (of one key, or of all), superseded ones included, by (timestamp, id)."""
        where, params = ("WHERE p.owner = ?", (owner,)) if owner is not None else ("", ())
        rows = self._query("SELECT o.id, o.encoding FROM profiles p JOIN objects o ON o.id = p.id "
                           f"{where} ORDER BY p.timestamp, p.id", params)
        return [self._load(oid, data) for oid, data in rows]

    def current_profiles(self) -> dict[bytes, Profile]:
        """Each key's profile: its newest (timestamp, then the greater id; chain.profiles.current)."""
        rows = self._query(f"SELECT id, encoding FROM objects WHERE id IN ({_CURRENT_PROFILE_IDS})")
        found = [self._load(oid, data) for oid, data in rows]
        return {p.owner: p for p in sorted(found, key=lambda p: p.owner)}

    def profile_inventory(self) -> list[bytes]:
        """Ids of the current profile of every key, sorted: what peers compare and sync (superseded
        profiles are kept, but never asked for)."""
        rows = self._query(f"{_CURRENT_PROFILE_IDS} ORDER BY id")
        return [bytes(r[0]) for r in rows]

    def inventory(self, arena_id: bytes) -> list[bytes]:
        """Ids of every object of the arena: itself, its blobs, proposals, attestations, amendments."""
        return [oid for oid, _ in self._arena_rows(arena_id, with_data=False)]

    def iter_objects(self, arena_id: bytes | None = None) -> Iterator[ChainObject]:
        """Objects in dependency order: arena, blobs, proposals (parent first), attestations (and,
        for the whole store, every profile last)."""
        if arena_id is not None:
            for oid, data in self._arena_rows(arena_id, with_data=True):
                yield Blob(data=self._blobs.read(oid)) if data is None else self._load(oid, data)
            return
        seen: set[bytes] = set()
        for arena in self.arenas():
            for oid, data in self._arena_rows(arena.id, with_data=True):
                if oid in seen:
                    continue
                seen.add(oid)
                yield Blob(data=self._blobs.read(oid)) if data is None else self._load(oid, data)
        for (oid,) in self._query("SELECT id FROM objects WHERE type = 'blob' ORDER BY seq"):
            if bytes(oid) not in seen:
                yield Blob(data=self._blobs.read(bytes(oid)))
        yield from self.profiles()

    def _arena_rows(self, arena_id: bytes, with_data: bool) -> list[tuple[bytes, bytes | None]]:
        col = "encoding" if with_data else "NULL"
        arena = self._query(f"SELECT id, {col} FROM objects WHERE id = ? AND type = 'arena'", (arena_id,))
        if not arena:
            raise NotFoundError(f"arena {arena_id.hex()}")
        blobs = self._query(
            "SELECT o.id, NULL FROM objects o WHERE o.type = 'blob' AND o.id IN"
            " (SELECT script FROM arenas WHERE id = ? UNION SELECT script FROM proposals WHERE arena = ?)"
            " ORDER BY o.seq",
            (arena_id, arena_id),
        )
        rest = self._query(
            f"SELECT id, {col} FROM objects WHERE arena = ? AND type = ? ORDER BY seq",
            (arena_id, Proposal.TYPE),
        ) + self._query(
            f"SELECT id, {col} FROM objects WHERE arena = ? AND type = ? ORDER BY seq",
            (arena_id, Attestation.TYPE),
        ) + self._query(
            f"SELECT id, {col} FROM objects WHERE arena = ? AND type = ? ORDER BY seq",
            (arena_id, Amendment.TYPE),
        )
        return [(bytes(i), None if d is None else bytes(d)) for i, d in arena + blobs + rest]

    def received_at(self, oid: bytes) -> int:
        rows = self._query("SELECT received_at FROM objects WHERE id = ?", (oid,))
        if not rows:
            raise NotFoundError(f"object {oid.hex()}")
        return int(rows[0][0])

    def counts(self) -> dict[str, int]:
        out = {t: 0 for t in (Arena.TYPE, Blob.TYPE, Proposal.TYPE, Attestation.TYPE, Profile.TYPE,
                              Amendment.TYPE)}
        for type_name, n in self._query("SELECT type, count(*) FROM objects GROUP BY type"):
            out[type_name] = n
        return out

    def data_version(self) -> int:
        """Grows with every object stored (by any process): a cheap cache key and ETag."""
        return int(self._query("SELECT coalesce(max(seq), 0) FROM objects")[0][0])

    def encoded_rows(self) -> list[tuple[bytes, str, bytes | None]]:
        """(id, type, encoding) of every object in insertion order (encoding None for blobs)."""
        rows = self._query("SELECT id, type, encoding FROM objects ORDER BY seq")
        return [(bytes(i), t, None if d is None else bytes(d)) for i, t, d in rows]

    def blob_path(self, blob_id: bytes) -> Path:
        return self._blobs.path(blob_id)

    # -- helpers -------------------------------------------------------------------
    def _arena(self, arena_id: bytes) -> Arena:
        arena = self._arena_cache.get(arena_id)
        if arena is None:
            rows = self._query("SELECT encoding FROM objects WHERE id = ? AND type = 'arena'", (arena_id,))
            if not rows:
                raise UnknownArenaError(arena_id.hex())
            arena = self._load(arena_id, rows[0][0])
            self._arena_cache[arena_id] = arena
        return arena

    @staticmethod
    def _load(oid: bytes, data: bytes) -> Any:
        try:
            return load_trusted(data, oid)
        except VersionError as e:
            raise OldObjectError(bytes(oid).hex(), str(e)) from e
        except DecodeError as e:
            raise CorruptObjectError(bytes(oid).hex(), str(e)) from e
