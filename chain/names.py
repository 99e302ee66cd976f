"""Display text chosen by people (a profile's name and team, its URL) and how names are compared.

A name is shown to strangers beside a key, so its text is held to rules that
keep what is displayed honest:

- it is NFC-normalised (one encoding per visible string) and has no leading or
  trailing whitespace; `clean()` makes typed input so;
- characters of these classes are refused, each with its own error
  (`RefusedCharacterError` naming the class, the code point and where it is):
  control characters (C0, DEL, C1), bidirectional controls (embeddings,
  overrides, isolates, marks: they reorder what is shown around them), line
  and paragraph separators, invisible format characters (zero-width space,
  word joiner, soft hyphen, fillers, tags...), private-use characters (every
  font draws them differently), noncharacters and surrogates;
- at most MAX_MARKS combining marks in a row (no text that climbs over its row).

The refused classes are fixed tables below, not `unicodedata` categories, so
nodes on different Python versions agree on which objects are valid. NFC and
the combining-mark count do read this Python's Unicode database; for assigned
characters both are stable across Unicode versions.

Names prove nothing and are not unique. `skeleton()` says when two names look
alike: equal after NFKC, dropping the invisible joiners and variation
selectors names may hold, case folding, and the confusables table below
(common Cyrillic, Greek and digit look-alikes of Latin letters, plus "rn"/"m"
and "vv"/"w"). It is deliberately conservative: "i", "l", "1" and "|" are one
letter to it, so "Ali" and "All" look alike (as "AlI" and "All" do).
"""

from __future__ import annotations

import bisect
import re
import unicodedata
from typing import Any

from chain.encoding import Check
from chain.errors import FieldTypeError, FieldValueError, OversizeError, RefusedCharacterError

MAX_NAME_CHARS = 40
MAX_TEAM_CHARS = 40
MAX_URL_CHARS = 200
MAX_MARKS = 4  # combining marks in a row

CONTROL = "control character"
BIDI = "bidirectional control character"
SEPARATOR = "line or paragraph separator"
INVISIBLE = "invisible format character"
PRIVATE = "private-use character"
NONCHARACTER = "noncharacter"
SURROGATE = "surrogate code point"

# (first, last, class), sorted and disjoint.
_REFUSED: list[tuple[int, int, str]] = sorted([
    (0x0000, 0x001F, CONTROL), (0x007F, 0x009F, CONTROL),
    (0x00AD, 0x00AD, INVISIBLE),  # soft hyphen
    (0x034F, 0x034F, INVISIBLE),  # combining grapheme joiner
    (0x061C, 0x061C, BIDI),  # Arabic letter mark
    (0x115F, 0x1160, INVISIBLE), (0x3164, 0x3164, INVISIBLE), (0xFFA0, 0xFFA0, INVISIBLE),  # Hangul fillers
    (0x17B4, 0x17B5, INVISIBLE),  # Khmer inherent vowels
    (0x180B, 0x180F, INVISIBLE),  # Mongolian variation selectors, vowel separator
    (0x200B, 0x200B, INVISIBLE),  # zero-width space (ZWNJ and ZWJ, 200C-D, are allowed: scripts need them)
    (0x200E, 0x200F, BIDI),  # left-to-right and right-to-left marks
    (0x2028, 0x2029, SEPARATOR),
    (0x202A, 0x202E, BIDI),  # embeddings and overrides
    (0x2060, 0x2064, INVISIBLE),  # word joiner, invisible operators
    (0x2066, 0x2069, BIDI),  # isolates
    (0x206A, 0x206F, INVISIBLE),  # deprecated format characters
    (0xD800, 0xDFFF, SURROGATE),
    (0xE000, 0xF8FF, PRIVATE),
    (0xFDD0, 0xFDEF, NONCHARACTER),
    (0xFEFF, 0xFEFF, INVISIBLE),  # byte order mark / zero-width no-break space
    (0xFFF9, 0xFFFB, INVISIBLE),  # interlinear annotation
    (0x1D173, 0x1D17A, INVISIBLE),  # musical format characters
    (0xE0000, 0xE0FFF, INVISIBLE),  # tags, variation selectors supplement
    (0xF0000, 0x10FFFF, PRIVATE),  # planes 15 and 16 (their last two code points are noncharacters too)
])
_STARTS = [lo for lo, _, _ in _REFUSED]
# Invisible characters a name may hold (joiners scripts and emoji need, variation selectors): ignored
# when comparing names.
_IGNORED = dict.fromkeys([0x200C, 0x200D, *range(0xFE00, 0xFE10)])

# Confusables, as a table from a character to the Latin text it imitates. UPPER is applied before
# case folding (capitals whose lower case looks different: Greek Eta is H, its lower case eta is not h);
# LOWER after it. Sources: the look-alikes that appear in homograph attacks on names and domains.
_UPPER = {
    # Cyrillic capitals
    "А": "A", "В": "B", "Е": "E", "Ѕ": "S", "І": "I", "Ј": "J", "К": "K", "М": "M", "Н": "H",
    "О": "O", "Р": "P", "С": "C", "Т": "T", "Х": "X", "У": "Y",
    # Greek capitals
    "Α": "A", "Β": "B", "Ε": "E", "Ζ": "Z", "Η": "H", "Ι": "I", "Κ": "K", "Μ": "M", "Ν": "N",
    "Ο": "O", "Ρ": "P", "Τ": "T", "Υ": "Y", "Χ": "X",
}
_LOWER = {
    # Cyrillic small letters
    "а": "a", "е": "e", "о": "o", "р": "p", "с": "c", "у": "y", "х": "x", "ѕ": "s", "і": "l",
    "ј": "j", "ԁ": "d", "ԛ": "q", "ԝ": "w", "һ": "h", "ӏ": "l", "ь": "b", "ѡ": "w", "ү": "y",
    # Greek small letters
    "α": "a", "ο": "o", "ι": "l", "υ": "u", "ν": "v", "ρ": "p", "κ": "k", "χ": "x",
    # Latin letters and digits that pass for one another
    "0": "o", "1": "l", "i": "l", "|": "l", "ı": "l", "ɡ": "g",
}
_SEQUENCES = (("rn", "m"), ("vv", "w"))
# scheme, host (letters, digits, dots, hyphens), optional port, then RFC 3986's characters only
_URL = re.compile(r"https?://[A-Za-z0-9.\-]+(:[0-9]{1,5})?([/?#][A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]*)?")


def refused_kind(ch: str) -> str | None:
    """The refused class of one character, or None if a name may hold it."""
    cp = ord(ch)
    i = bisect.bisect_right(_STARTS, cp) - 1
    if i >= 0 and cp <= _REFUSED[i][1]:
        return _REFUSED[i][2]
    if (cp & 0xFFFE) == 0xFFFE:  # U+FFFE, U+FFFF and their twins in every plane
        return NONCHARACTER
    return None


def check_display(type_name: str, field: str, value: str, max_chars: int) -> str:
    """`value` if it is valid display text of at most `max_chars` code points; else the specific error."""
    if type(value) is not str:
        raise FieldTypeError(type_name, field, "str", value)
    if len(value) > max_chars:
        raise OversizeError(f"{type_name}.{field} (characters)", max_chars, len(value))
    if value.isascii() and value.isprintable():  # the common case: nothing below can fail but whitespace
        if value != value.strip():
            raise FieldValueError(type_name, field, "has leading or trailing whitespace")
        return value
    marks = 0
    for i, ch in enumerate(value):
        kind = refused_kind(ch)
        if kind is not None:
            raise RefusedCharacterError(type_name, field, ch, i, kind)
        marks = marks + 1 if unicodedata.category(ch) in ("Mn", "Me") else 0
        if marks > MAX_MARKS:
            raise FieldValueError(type_name, field, f"more than {MAX_MARKS} combining marks in a row"
                                                    f" at position {i}")
    if not unicodedata.is_normalized("NFC", value):
        raise FieldValueError(type_name, field, "is not in Unicode NFC form (normalise it first)")
    if value != value.strip():
        raise FieldValueError(type_name, field, "has leading or trailing whitespace")
    return value


def display_text(max_chars: int, required: bool = False) -> Check:
    """A Field check for display text (empty allowed unless `required`)."""

    def check(type_name: str, field: str, value: Any) -> str:
        text = check_display(type_name, field, value, max_chars)
        if required and not text:
            raise FieldValueError(type_name, field, "must not be empty")
        return text

    return check


def web_url(max_chars: int = MAX_URL_CHARS) -> Check:
    """A Field check for an optional http(s) URL in printable ASCII (international hosts as punycode)."""

    def check(type_name: str, field: str, value: Any) -> str:
        if type(value) is not str:
            raise FieldTypeError(type_name, field, "str", value)
        if len(value) > max_chars:
            raise OversizeError(f"{type_name}.{field} (characters)", max_chars, len(value))
        if value and not _URL.fullmatch(value):
            raise FieldValueError(type_name, field, f"{value[:60]!r} is not an http:// or https:// URL in "
                                                    "printable ASCII (no spaces; write international hosts"
                                                    " as punycode)")
        return value

    return check


def clean(text: str) -> str:
    """Typed input as display text: NFC-normalised, surrounding whitespace removed."""
    return unicodedata.normalize("NFC", text).strip()


def skeleton(text: str) -> str:
    """What a name looks like, for comparison: two names look alike when their skeletons are equal."""
    s = unicodedata.normalize("NFKC", text)
    s = "".join(_UPPER.get(ch, ch) for ch in s if ord(ch) not in _IGNORED).casefold()
    s = "".join(_LOWER.get(ch, ch) for ch in s)
    for seq, letter in _SEQUENCES:
        s = s.replace(seq, letter)
    return " ".join(s.split())
