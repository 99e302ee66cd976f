"""Errors raised by the chain package.

Every decoding failure has its own class so callers (and peers' logs) can say
exactly what was wrong with an input. Each carries the data that explains it.
"""

from __future__ import annotations


class ChainError(Exception):
    """Base class of every error the chain package raises."""


class DecodeError(ChainError):
    """Bytes that are not a valid encoding of a chain object."""


class MalformedError(DecodeError):
    """Not decodable as msgpack at all, or a structure we never produce (maps, floats, ext)."""


class UnknownTypeError(DecodeError):
    def __init__(self, found: object) -> None:
        super().__init__(f"unknown object type {found!r}")
        self.found = found


class VersionError(DecodeError):
    def __init__(self, type_name: str, expected: int, found: object) -> None:
        super().__init__(f"{type_name}: unsupported version {found!r} (expected {expected})")
        self.expected, self.found = expected, found


class ArityError(DecodeError):
    def __init__(self, type_name: str, expected: int, found: int) -> None:
        super().__init__(f"{type_name}: expected {expected} fields, found {found}")
        self.type_name, self.expected, self.found = type_name, expected, found


class FieldTypeError(DecodeError):
    def __init__(self, type_name: str, field: str, expected: str, found: object) -> None:
        super().__init__(
            f"{type_name}.{field}: expected {expected}, found {type(found).__name__} {_short(found)}"
        )
        self.type_name, self.field, self.expected, self.found = type_name, field, expected, found


class FieldValueError(DecodeError):
    """A field of the right type whose value breaks a rule (range, pattern, order)."""

    def __init__(self, type_name: str, field: str, problem: str) -> None:
        super().__init__(f"{type_name}.{field}: {problem}")
        self.type_name, self.field, self.problem = type_name, field, problem


class RefusedCharacterError(FieldValueError):
    """Display text (a profile's name or team) holding a character of a refused class.

    `kind` names the class (control character, bidirectional control, invisible
    format character, ...), `char` the character and `position` its index.
    """

    def __init__(self, type_name: str, field: str, char: str, position: int, kind: str) -> None:
        import unicodedata

        label = unicodedata.name(char, "")
        shown = f"U+{ord(char):04X}" + (f" {label}" if label else "")
        super().__init__(type_name, field, f"{kind} {shown} at position {position} is not allowed")
        self.char, self.position, self.kind = char, position, kind


class OversizeError(DecodeError):
    def __init__(self, what: str, limit: int, found: int) -> None:
        super().__init__(f"{what}: {found} exceeds the limit of {limit}")
        self.what, self.limit, self.found = what, limit, found


class TrailingBytesError(DecodeError):
    def __init__(self, count: int | None = None) -> None:
        extra = "" if count is None else f" ({count} bytes)"
        super().__init__(f"trailing bytes after the object{extra}")
        self.count = count


class NonCanonicalError(DecodeError):
    """Decodes, but is not the one canonical encoding of its value (e.g. a padded integer)."""

    def __init__(self, type_name: str) -> None:
        super().__init__(f"{type_name}: encoding is not canonical")
        self.type_name = type_name


class BadSignatureError(DecodeError):
    def __init__(self, type_name: str, key_hex: str) -> None:
        super().__init__(f"{type_name}: signature does not verify under key {key_hex[:16]}…")
        self.type_name, self.key_hex = type_name, key_hex


class IdMismatchError(DecodeError):
    def __init__(self, expected: str, found: str) -> None:
        super().__init__(f"object id mismatch: expected {expected}, computed {found}")
        self.expected, self.found = expected, found


class ValidationError(ChainError):
    """A well-formed, signed object that does not fit the chain (wrong arena, parent, key...)."""


class UnknownArenaError(ValidationError):
    def __init__(self, arena_id: str) -> None:
        super().__init__(f"unknown arena {arena_id}")
        self.arena_id = arena_id


class UnknownParentError(ValidationError):
    def __init__(self, parent_id: str) -> None:
        super().__init__(f"unknown parent {parent_id}")
        self.parent_id = parent_id


class UnknownProposalError(ValidationError):
    def __init__(self, proposal_id: str) -> None:
        super().__init__(f"attestation for unknown proposal {proposal_id}")
        self.proposal_id = proposal_id


class NotAVerifierError(ValidationError):
    def __init__(self, key_hex: str, arena_id: str) -> None:
        super().__init__(f"key {key_hex[:16]}… is not in the verifier set of arena {arena_id[:16]}…")
        self.key_hex, self.arena_id = key_hex, arena_id


class WrongArenaError(ValidationError):
    def __init__(self, expected: str, found: str) -> None:
        super().__init__(f"object belongs to arena {found[:16]}…, its parent to {expected[:16]}…")
        self.expected, self.found = expected, found


class StoreError(ChainError):
    """The store could not do what was asked (missing object, corrupt file, bad directory)."""


class NotFoundError(StoreError):
    def __init__(self, what: str) -> None:
        super().__init__(f"not found: {what}")
        self.what = what


class AmbiguousIdError(StoreError):
    def __init__(self, prefix: str, count: int) -> None:
        super().__init__(f"id prefix {prefix!r} matches {count} objects; give more characters")
        self.prefix, self.count = prefix, count


class CorruptBlobError(StoreError):
    def __init__(self, blob_id: str, found: str) -> None:
        super().__init__(f"blob {blob_id} on disk hashes to {found}: corrupt")
        self.blob_id, self.found = blob_id, found


class OldObjectError(StoreError):
    """A stored object of a version this ratchet no longer reads (the store predates a format change)."""

    def __init__(self, object_id: str, problem: str) -> None:
        super().__init__(f"stored object {object_id} was written by an older ratchet ({problem}); this store "
                         "predates the current object formats: start a new one (another --home, or "
                         "`ratchet demo --fresh`)")
        self.object_id, self.problem = object_id, problem


class CorruptObjectError(StoreError):
    """A stored row that no longer decodes to the object it names (disk damage, manual edits)."""

    def __init__(self, object_id: str, problem: str) -> None:
        super().__init__(f"stored object {object_id} is corrupt: {problem}")
        self.object_id, self.problem = object_id, problem


class KeyFileError(ChainError):
    """A key file that is missing, unreadable, malformed or would be overwritten."""


def _short(value: object, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
