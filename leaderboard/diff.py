"""A commit's script diff against its parent, split into lines of classed tokens.

The output is data (token class, text), never markup: the template escapes
every piece of script text, so a submitted script cannot inject HTML. The
highlighter is a small regex lexer for Python; it only picks CSS classes.
"""

from __future__ import annotations

import builtins
import difflib
import keyword
import re
from typing import Any

MAX_LINES = 4000  # diff lines shown; the unified text is cut at the same point

_TOKEN = re.compile(
    r"""(?P<com>\#.*)
    |(?P<str>[rRbBfFuU]{0,2}(?:"(?:[^"\\]|\\.)*"?|'(?:[^'\\]|\\.)*'?))
    |(?P<num>\b\d[\d_]*(?:\.\d*)?(?:[eE][+-]?\d+)?j?\b|\.\d+(?:[eE][+-]?\d+)?)
    |(?P<name>[A-Za-z_]\w*)
    |(?P<other>[^\w\s#"']+|\s+|.)""",
    re.VERBOSE,
)
_KEYWORDS = frozenset(keyword.kwlist) | frozenset(keyword.softkwlist)
_BUILTINS = frozenset(dir(builtins))
_HUNK = re.compile(r"@@ -(\d+)(?:,\d+)? \+(\d+)(?:,\d+)? @@")


def highlight(line: str) -> list[tuple[str, str]]:
    """(css class, text) pieces of one line of Python; "" is plain text."""
    out: list[tuple[str, str]] = []
    for m in _TOKEN.finditer(line):
        kind, text = m.lastgroup or "other", m.group()
        cls = ""
        if kind == "com":
            cls = "c"
        elif kind == "str":
            cls = "s"
        elif kind == "num":
            cls = "n"
        elif kind == "name":
            cls = "k" if text in _KEYWORDS else ("b" if text in _BUILTINS else "")
        if out and out[-1][0] == cls:
            out[-1] = (cls, out[-1][1] + text)
        else:
            out.append((cls, text))
    return out


def script_diff(old: bytes, new: bytes, *, context: int = 3) -> dict[str, Any]:
    """The unified diff of two scripts, as text and as numbered, highlighted lines."""
    a = old.decode("utf-8", "replace").splitlines()
    b = new.decode("utf-8", "replace").splitlines()
    raw = list(difflib.unified_diff(a, b, "parent/train.py", "train.py", n=context, lineterm=""))
    truncated = len(raw) > MAX_LINES
    raw = raw[:MAX_LINES]
    lines: list[dict[str, Any]] = []
    old_no = new_no = 0
    added = removed = 0
    for i, text in enumerate(raw):
        if i < 2:  # the "--- parent" / "+++ candidate" header
            lines.append({"kind": "file", "old": None, "new": None, "tokens": [("", text)]})
            continue
        if text.startswith("@@"):
            m = _HUNK.match(text)
            if m:
                old_no, new_no = int(m.group(1)), int(m.group(2))
            lines.append({"kind": "hunk", "old": None, "new": None, "tokens": [("", text)]})
            continue
        mark, body = text[:1], text[1:]
        if mark == "+":
            lines.append({"kind": "add", "old": None, "new": new_no, "tokens": highlight(body)})
            new_no += 1
            added += 1
        elif mark == "-":
            lines.append({"kind": "del", "old": old_no, "new": None, "tokens": highlight(body)})
            old_no += 1
            removed += 1
        else:
            lines.append({"kind": "ctx", "old": old_no, "new": new_no, "tokens": highlight(body)})
            old_no += 1
            new_no += 1
    return {"unified": "\n".join(raw), "lines": lines, "added": added, "removed": removed,
            "truncated": truncated, "identical": not raw}
