"""The chain's immutable objects: Arena, Blob, Proposal, Attestation, Profile, Amendment.

Each object is a fixed-order msgpack array [tag, version, field..., signature].
Its id is SHA-256 over a type-tagged prefix plus that encoding; its signature
covers the encoding without the signature, under `ratchet/v1/<type>`.
Constructing an object validates every field; `decode` additionally checks the
encoding is canonical and the signature verifies.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any, ClassVar

import msgpack

from chain import keys
from chain.encoding import (
    MAX_OBJECT_BYTES,
    Field,
    integer,
    pack,
    pairs,
    raw,
    seq,
    sorted_pairs,
    text,
    unpack_array,
)
from chain.errors import (
    ArityError,
    BadSignatureError,
    FieldValueError,
    IdMismatchError,
    MalformedError,
    NonCanonicalError,
    TrailingBytesError,
    UnknownTypeError,
    VersionError,
)
from chain.names import MAX_NAME_CHARS, MAX_TEAM_CHARS, display_text, web_url

ID_SIZE = 32
MAX_BLOB_BYTES = 512 * 1024
MAX_SEEDS = 64
VERDICT_PATTERN = r"improves|no_gain|(invalid|cheat):[a-z0-9_.\-]{1,100}"
FLAG_PATTERN = r"[a-z0-9_.\-]{1,64}"
TIME_MAX = 2**53  # unix milliseconds, far beyond any real clock

_id32 = raw(ID_SIZE)
_sig = raw(keys.SIGNATURE_SIZE)
_ubpb = integer(-(10**9), 10**9)
_seed = integer(0, 2**31 - 1)
_count = integer(0, 10**13)


def itemgetter_value(index: int) -> Any:
    """A getter reading one slot of an object's value tuple (used as a field property)."""

    def get(self: ChainObject) -> Any:
        return self._values[index]

    return get


class ChainObject:
    """Base of every object. Subclasses declare TYPE, FIELDS and SIGNER (the key field)."""

    TYPE: ClassVar[str]
    VERSION: ClassVar[int] = 1
    FIELDS: ClassVar[tuple[Field, ...]]
    SIGNER: ClassVar[str | None] = None
    __slots__ = ("_values", "_encoding", "_id")

    # Per-class caches filled by __init_subclass__: the full field list and name -> index.
    _ALL: ClassVar[tuple[Field, ...]] = ()
    _NAMES: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Cache the schema and give every field a fast read-only property."""
        super().__init_subclass__(**kwargs)
        fields = cls.FIELDS if cls.SIGNER is None else (*cls.FIELDS, Field("signature", _sig))
        cls._ALL = fields
        cls._NAMES = tuple(f.name for f in fields)
        for i, name in enumerate(cls._NAMES):
            if name not in cls.__dict__:
                setattr(cls, name, property(itemgetter_value(i), doc=fields[i].doc or None))

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        names = self._NAMES
        if kwargs or len(args) != len(names):
            if len(args) > len(names):
                raise ArityError(self.TYPE, len(names), len(args))
            given = dict(zip(names, args, strict=False))
            for k, v in kwargs.items():
                if k not in names or k in given:
                    raise TypeError(f"{self.TYPE}: unexpected or repeated field {k!r}")
                given[k] = v
            if len(given) != len(names):
                missing = [n for n in names if n not in given]
                raise TypeError(f"{self.TYPE}: missing fields {missing}")
            args = tuple(given[n] for n in names)
        t = self.TYPE
        values = tuple([f.check(t, f.name, v) for f, v in zip(self._ALL, args, strict=True)])
        object.__setattr__(self, "_values", values)
        object.__setattr__(self, "_encoding", pack([t, self.VERSION, *values]))
        object.__setattr__(self, "_id", None)
        self._check_consistency()

    # -- schema -------------------------------------------------------------
    @classmethod
    def all_fields(cls) -> tuple[Field, ...]:
        return cls._ALL

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return cls._NAMES

    def _check_consistency(self) -> None:
        """Rules that span several fields; subclasses override."""

    # -- access -------------------------------------------------------------
    def __getattr__(self, name: str) -> Any:
        # Only reached for names that are not fields (fields are properties).
        raise AttributeError(f"{self.TYPE} has no field {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{self.TYPE} objects are immutable")

    def fields(self) -> dict[str, Any]:
        return dict(zip(self._NAMES, self._values, strict=True))

    def replace(self, **changes: Any) -> ChainObject:
        """A copy with some fields changed (its signature is then usually invalid)."""
        return type(self)(**{**self.fields(), **changes})

    # -- bytes and ids ------------------------------------------------------
    def encode(self) -> bytes:
        return self._encoding

    def payload(self) -> bytes:
        """What the signature covers: the encoding without the signature field.

        The signature is the last element, a 64-byte bin (2 header bytes), so the
        payload is the encoding with that element cut off and the array header
        rewritten for one element fewer: the same bytes as re-packing, cheaper.
        """
        if not self.SIGNER:
            return self._encoding
        n = len(self._values) + 2
        head = 1 if n < 16 else 3
        new_head = bytes([0x90 | (n - 1)]) if n - 1 < 16 else b"\xdc" + (n - 1).to_bytes(2, "big")
        return new_head + self._encoding[head : -(2 + keys.SIGNATURE_SIZE)]

    @property
    def id(self) -> bytes:
        if self._id is None:
            h = hashlib.sha256(f"ratchet/v1/id/{self.TYPE}\x00".encode() + self._encoding)
            object.__setattr__(self, "_id", h.digest())
        return self._id  # type: ignore[return-value]

    @property
    def hex(self) -> str:
        return self.id.hex()

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other._encoding == self._encoding  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.hex[:12]}…)"

    # -- signatures ---------------------------------------------------------
    @classmethod
    def create(cls, key: keys.SigningKey, **fields: Any) -> Any:
        """Build and sign an object; the signer field is set to `key.public`."""
        assert cls.SIGNER is not None, f"{cls.TYPE} is not signed"
        fields[cls.SIGNER] = key.public
        unsigned = cls(**fields, signature=b"\x00" * keys.SIGNATURE_SIZE)
        return cls(**fields, signature=key.sign(cls.TYPE, unsigned.payload()))

    def signature_claims(self) -> list[tuple[str, bytes, bytes, str, bytes]]:
        """Every signature this object carries: (what, public key, signature, domain, message).

        Separate from checking so bulk validation can verify many in a batch.
        """
        if self.SIGNER is None:
            return []
        return [(self.TYPE, getattr(self, self.SIGNER), self.signature, self.TYPE, self.payload())]

    def check_derived(self) -> None:
        """Rules tying fields to the signatures (checked once those verify); subclasses override."""

    def check_signature(self) -> None:
        for what, public, signature, domain_type, message in self.signature_claims():
            if not keys.verify(public, signature, domain_type, message):
                raise BadSignatureError(what, public.hex())
        self.check_derived()


class Blob(ChainObject):
    """Raw bytes addressed by their hash: a training script."""

    TYPE = "blob"
    FIELDS = (Field("data", raw(max_len=MAX_BLOB_BYTES)),)
    __slots__ = ()


class Arena(ChainObject):
    """The genesis of one chain: what is trained, on what data, under which budget and rule."""

    TYPE = "arena"
    SIGNER = "creator"
    FIELDS = (
        Field("name", text(64, r"[a-z0-9][a-z0-9_\-]*")),
        Field("description", text(2000)),
        Field("script", _id32, "blob id of the reference train.py"),
        Field("harness", text(64), "harness version that runs the check"),
        Field("dataset_name", text(64)),
        Field("dataset_sha256", raw(max_len=32), "SHA-256 of the data, or empty if generated per check"),
        Field("dataset_source", text(500)),
        Field("budget_kind", text(16, r"tokens|seconds|compute")),
        Field("budget_value", integer(1, 10**13)),
        Field("wall_cap_s", integer(1, 7 * 86400)),
        Field("hardware", text(64, r"[a-z0-9:_.\-]+")),
        Field("seeds", integer(1, MAX_SEEDS), "seeds per check"),
        Field("quorum", integer(1, 1000)),
        Field("verifiers", seq(_id32, 1000, sorted_unique=True)),
        Field("margin_ubpb", integer(0, 10**7), "minimum mean paired improvement, micro-bits"),
        Field("max_script_bytes", integer(1, MAX_BLOB_BYTES)),
        Field("settings", pairs(64), "harness settings (sorted key/value strings)"),
        Field("bootstrap", seq(text(300), 32), "multiaddrs of well-known peers"),
        Field("created_at", integer(0, TIME_MAX), "unix milliseconds"),
        Field("creator", _id32),
    )
    __slots__ = ()

    def _check_consistency(self) -> None:
        if len(self.dataset_sha256) not in (0, 32):
            raise FieldValueError(self.TYPE, "dataset_sha256", "must be empty or 32 bytes")
        if self.quorum > len(self.verifiers):
            raise FieldValueError(
                self.TYPE, "quorum", f"{self.quorum} exceeds the {len(self.verifiers)} verifiers"
            )

    def setting(self, key: str, default: str | None = None) -> str | None:
        return dict(self.settings).get(key, default)


class Proposal(ChainObject):
    """A candidate commit: a new script against a parent, with what its author measured."""

    TYPE = "proposal"
    SIGNER = "author"
    FIELDS = (
        Field("arena", _id32),
        Field("parent", _id32, "parent commit id, or the arena id for the first commit"),
        Field("script", _id32, "blob id of the new train.py"),
        Field("message", text(4096)),
        Field("claim_parent_ubpb", _ubpb, "author's mean val_bpb of the parent, micro-bits"),
        Field("claim_candidate_ubpb", _ubpb, "author's mean val_bpb of the candidate"),
        Field("claim_seeds", seq(_seed, MAX_SEEDS)),
        Field("claim_hardware", text(64)),
        Field("timestamp", integer(0, TIME_MAX), "unix milliseconds"),
        Field("author", _id32),
    )
    __slots__ = ()

    def _check_consistency(self) -> None:
        if self.parent == self.id_placeholder():
            raise FieldValueError(self.TYPE, "parent", "cannot be zero")

    @staticmethod
    def id_placeholder() -> bytes:
        return b"\x00" * ID_SIZE

    @property
    def claimed_gain_ubpb(self) -> int:
        return self.claim_parent_ubpb - self.claim_candidate_ubpb


class Attestation(ChainObject):
    """A verifier's signed measurement of one proposal, and its verdict."""

    TYPE = "attestation"
    VERSION = 2  # 2: what each run consumed (tokens, CPU time) and the compute class
    SIGNER = "verifier"
    SPENT = ("parent_tokens", "candidate_tokens", "parent_cpu_ms", "candidate_cpu_ms")
    FIELDS = (
        Field("proposal", _id32),
        Field("arena", _id32),
        Field("seeds", seq(_seed, MAX_SEEDS)),
        Field("seed_proof", _sig, "verifier's signature over the proposal id; seeds derive from it"),
        Field("parent_ubpb", seq(_ubpb, MAX_SEEDS), "per seed, as measured"),
        Field("candidate_ubpb", seq(_ubpb, MAX_SEEDS)),
        Field("floor_ubpb", seq(_ubpb, MAX_SEEDS), "per seed, where the arena has an exact floor"),
        Field("parent_tokens", seq(_count, MAX_SEEDS), "per seed, training tokens the parent consumed"),
        Field("candidate_tokens", seq(_count, MAX_SEEDS)),
        Field("parent_cpu_ms", seq(_count, MAX_SEEDS), "per seed, CPU time of the parent's training process tree"),
        Field("candidate_cpu_ms", seq(_count, MAX_SEEDS)),
        Field("parent_class", integer(-64, 64), "the parent's compute class it ran at (verify.compute)"),
        Field("compute_class", integer(-64, 64), "the candidate's compute class (verify.compute); 0 elsewhere"),
        Field("compute_x_milli", integer(-(10**7), 10**7), "its drift against the genesis, in 1/1000 classes"),
        Field("hardware", text(64)),
        Field("harness", text(64)),
        Field("verdict", text(200, VERDICT_PATTERN)),
        Field("flags", seq(text(64, FLAG_PATTERN), 16, sorted_unique=True)),
        Field("wall_ms", integer(0, 10**10)),
        Field("timestamp", integer(0, TIME_MAX), "unix milliseconds"),
        Field("verifier", _id32),
    )
    __slots__ = ()

    def _check_consistency(self) -> None:
        n = len(self.seeds)
        for name in ("parent_ubpb", "candidate_ubpb", "floor_ubpb", *self.SPENT):
            if len(getattr(self, name)) not in (0, n):
                raise FieldValueError(self.TYPE, name, f"must hold 0 or {n} values (one per seed)")
        if self.verdict in ("improves", "no_gain") and (
            n == 0 or len(self.parent_ubpb) != n or len(self.candidate_ubpb) != n
        ):
            raise FieldValueError(self.TYPE, "verdict", f"{self.verdict} needs a measurement per seed")

    @classmethod
    def create(cls, key: keys.SigningKey, **fields: Any) -> Any:
        """Sign an attestation; what the runs consumed defaults to unrecorded (empty, class 0)."""
        for name in cls.SPENT:
            fields.setdefault(name, [])
        fields.setdefault("parent_class", 0)
        fields.setdefault("compute_class", 0)
        fields.setdefault("compute_x_milli", 0)
        return super().create(key, **fields)

    @property
    def compute_ratio(self) -> float | None:
        """Candidate over parent CPU time, summed over the seeds (None when not recorded)."""
        p, c = sum(self.parent_cpu_ms), sum(self.candidate_cpu_ms)
        return c / p if p > 0 and self.candidate_cpu_ms else None

    def signature_claims(self) -> list[tuple[str, bytes, bytes, str, bytes]]:
        from chain.seeds import SEED_DOMAIN

        return [
            *super().signature_claims(),
            ("attestation.seed_proof", self.verifier, self.seed_proof, SEED_DOMAIN, self.proposal),
        ]

    def check_derived(self) -> None:
        from chain.seeds import derive_seeds

        if list(self.seeds) != derive_seeds(self.seed_proof, len(self.seeds)):
            raise FieldValueError(self.TYPE, "seeds", "do not derive from the seed proof")

    @property
    def paired_gains(self) -> list[int]:
        """Per seed, parent minus candidate (positive = the candidate is better)."""
        return [p - c for p, c in zip(self.parent_ubpb, self.candidate_ubpb, strict=True)]

    @property
    def mean_gain_ubpb(self) -> int:
        """Mean paired gain, floored (the sum of differences is the difference of sums)."""
        parent, candidate = self.parent_ubpb, self.candidate_ubpb
        if not parent or len(parent) != len(candidate):
            return 0
        return (sum(parent) - sum(candidate)) // len(parent)

    @property
    def improves(self) -> bool:
        return self.verdict == "improves"


class Profile(ChainObject):
    """What a key calls itself: a display name, an optional team and URL (chain.names has the rules).

    Belongs to no arena. A key may sign many; the newest (by timestamp, then id) is its profile
    (chain.profiles.current). Names prove nothing: pages show the key beside them.
    """

    TYPE = "profile"
    SIGNER = "owner"
    FIELDS = (
        Field("name", display_text(MAX_NAME_CHARS, required=True), "display name"),
        Field("team", display_text(MAX_TEAM_CHARS), "team name, or empty"),
        Field("url", web_url(), "http(s) URL, or empty"),
        Field("timestamp", integer(0, TIME_MAX), "unix milliseconds; the newest profile of a key wins"),
        Field("owner", _id32),
    )
    __slots__ = ()


def _signer_pairs(max_items: int) -> Any:
    """[[public key, signature], ...] sorted by key, keys unique: a multi-signature, canonically ordered."""
    return sorted_pairs(max_items, _id32, _sig, "[key, signature] pair", "signers must be sorted by key and unique")


class Amendment(ChainObject):
    """A change to an arena's verifier set or quorum, signed by several keys (chain.verifiers decides
    whether it applies: a quorum of the keys counted at its height must be among the signers).

    The signatures cover the payload: the encoding without the `signatures` field.
    """

    TYPE = "amendment"
    FIELDS = (
        Field("arena", _id32),
        Field("height", integer(1, 2**32), "applies to proposals from this height on"),
        Field("retire", seq(_id32, 1000, sorted_unique=True), "keys that stop counting for good"),
        Field("add", seq(_id32, 1000, sorted_unique=True), "keys added as founding keys"),
        Field("quorum", integer(0, 1000), "the new quorum, or 0 for unchanged"),
        Field("reason", text(500)),
        Field("timestamp", integer(0, TIME_MAX), "unix milliseconds"),
        Field("signatures", _signer_pairs(1000), "[key, signature] pairs over the payload, by key"),
    )
    __slots__ = ()

    def _check_consistency(self) -> None:
        if set(self.retire) & set(self.add):
            raise FieldValueError(self.TYPE, "add", "a key cannot be both retired and added")
        if not (self.retire or self.add or self.quorum):
            raise FieldValueError(self.TYPE, "quorum", "an amendment must change something")
        if not self.signatures:
            raise FieldValueError(self.TYPE, "signatures", "at least one signature is needed")

    def payload(self) -> bytes:
        return pack([self.TYPE, self.VERSION, *self._values[:-1]])

    @property
    def signers(self) -> tuple[bytes, ...]:
        return tuple(k for k, _ in self.signatures)

    @classmethod
    def sign(cls, signers: list[keys.SigningKey], **fields: Any) -> Amendment:
        """Build the amendment and sign its payload with every key of `signers`."""
        placeholder = [(k.public, b"\x00" * keys.SIGNATURE_SIZE) for k in sorted(signers, key=lambda k: k.public)]
        unsigned = cls(**fields, signatures=placeholder)
        payload = unsigned.payload()
        pairs = [(k.public, k.sign(cls.TYPE, payload)) for k in sorted(signers, key=lambda k: k.public)]
        return cls(**fields, signatures=pairs)

    def signature_claims(self) -> list[tuple[str, bytes, bytes, str, bytes]]:
        payload = self.payload()
        return [(f"{self.TYPE}.signatures[{i}]", k, sig, self.TYPE, payload)
                for i, (k, sig) in enumerate(self.signatures)]


TYPES: dict[str, type[ChainObject]] = {c.TYPE: c for c in (Arena, Blob, Proposal, Attestation, Profile, Amendment)}
AnyObject = Arena | Blob | Proposal | Attestation | Profile | Amendment


def decode(
    data: bytes,
    expected_id: bytes | None = None,
    max_bytes: int = MAX_OBJECT_BYTES,
    *,
    verify: bool = True,
) -> Any:
    """Decode and fully check one object: structure, fields, canonical bytes, signature, id.

    `verify=False` skips only the signature check: for re-reading objects this
    node already verified when it stored them (the store's own rows).
    """
    items = unpack_array(data, max_bytes)
    if not items or type(items[0]) is not str:
        raise UnknownTypeError(items[0] if items else None)
    cls = TYPES.get(items[0])
    if cls is None:
        raise UnknownTypeError(items[0])
    if len(items) < 2 or type(items[1]) is not int or items[1] != cls.VERSION:
        raise VersionError(cls.TYPE, cls.VERSION, items[1] if len(items) > 1 else None)
    n = len(cls._ALL)
    if len(items) - 2 != n:
        raise ArityError(cls.TYPE, n, len(items) - 2)
    obj = cls(*items[2:])
    if obj.encode() != bytes(data):
        raise NonCanonicalError(cls.TYPE)
    if verify:
        obj.check_signature()
    if expected_id is not None and obj.id != expected_id:
        raise IdMismatchError(expected_id.hex(), obj.hex)
    return obj


def encode_stream(objects: Iterator[ChainObject] | list[ChainObject]) -> Iterator[bytes]:
    """Objects as a stream: each object's encoding wrapped as one msgpack bin."""
    for obj in objects:
        yield pack(obj.encode())


def load_trusted(data: bytes, expected_id: bytes) -> Any:
    """Rebuild an object from bytes this node validated when it stored them (its own store).

    Skips the field checks and the signature: only the id is recomputed, which
    proves the bytes are exactly those that were validated under that id. Never
    use on bytes from a peer or a file; chain.audit re-validates a store fully.
    """
    try:
        items = msgpack.unpackb(data, raw=False, use_list=False)
        cls = TYPES[items[0]]
        values = items[2:]
        if items[1] != cls.VERSION:
            raise VersionError(cls.TYPE, cls.VERSION, items[1])
        if len(values) != len(cls._ALL):
            raise ArityError(cls.TYPE, len(cls._ALL), len(values))
    except (ValueError, TypeError, KeyError, IndexError, msgpack.UnpackException) as e:
        raise MalformedError(f"stored bytes do not load: {e}") from e
    obj = cls.__new__(cls)
    object.__setattr__(obj, "_values", values)
    object.__setattr__(obj, "_encoding", bytes(data))
    object.__setattr__(obj, "_id", None)
    if obj.id != expected_id:
        raise IdMismatchError(expected_id.hex(), obj.hex)
    return obj


def decode_stream(data: bytes) -> Iterator[Any]:
    """Inverse of encode_stream; each object is decoded and checked as it is reached."""
    unpacker = msgpack.Unpacker(raw=False, max_bin_len=MAX_OBJECT_BYTES + 16, max_str_len=0,
                                max_array_len=0, max_map_len=0, max_ext_len=0)
    unpacker.feed(data)
    index = pos = 0
    while True:
        try:
            item = unpacker.unpack()
        except msgpack.OutOfData:
            # tell() is not reliable after a failed read: use the end of the last item.
            if pos != len(data):
                raise TrailingBytesError(len(data) - pos) from None
            return
        except (ValueError, msgpack.UnpackException) as e:
            raise MalformedError(f"stream item {index}: {e}") from e
        pos = unpacker.tell()
        if type(item) is not bytes:
            raise MalformedError(f"stream item {index}: expected an encoded object (bin)")
        yield decode(item)
        index += 1
