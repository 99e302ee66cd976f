"""A script's knobs: its top-level UPPER_CASE constants with literal values, and how each may move.

Reference scripts keep every knob as a constant at the top (`LR = 3e-3  # ...`).
We read them with `ast` (never executing the script: it is untrusted) and keep
the byte span of each literal, so a mutation rewrites exactly those bytes.
A tuple of literals (`BETAS = (0.9, 0.95)`) yields one knob per element,
named `BETAS[0]`, `BETAS[1]`. A name assigned more than once at top level is
not a knob: rewriting one of its assignments might change nothing.

The rule of each knob (how it steps, which values are valid) is inferred from
its name, value and trailing comment; see `infer_rule`.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

from node.research.errors import ScriptParseError

Value = bool | int | float | str

NAME_RE = re.compile(r"[A-Z][A-Z0-9_]*\Z")

# Rule kinds (how a knob steps); see mutate.step_value.
LOG = "log"  # positive float, multiplicative steps (learning rates, weight decay, init scales)
UNIT = "unit"  # float in (0, 1) near 1 (betas, EMA decays): steps on log(1 - x)
FRAC = "frac"  # float in [0, 1) (dropout, warmup fraction): multiplicative, may reach 0
INT_ADD = "int_add"  # small counts (layers, heads, MLP ratio): +-1
INT_MUL = "int_mul"  # sizes (batch, sequence length, widths): multiplicative, rounded
BOOL = "bool"  # toggles: structural switches the script exposes
CHOICE = "choice"  # strings whose comment lists the options
FIXED = "fixed"  # never mutated (seeds, devices, vocabulary, logging)

# Name parts (split on "_") that decide a knob's rule.
_FIXED = {"SEED", "DEVICE", "VOCAB", "LOG", "LOGGING", "PRINT", "VERBOSE", "EVAL", "DTYPE",
          "COMPILE", "PATH", "DIR", "NAME", "VERSION", "DEBUG"}
_UNIT = {"BETA", "BETAS", "BETA1", "BETA2", "MOMENTUM", "EMA", "GAMMA", "RHO"}
_FRAC = {"DROPOUT", "FRAC", "FRACTION", "RATIO", "PCT", "PERCENT", "WARMUP", "COOLDOWN",
         "WARMDOWN", "SMOOTHING"}
_COUNT = {"LAYER", "LAYERS", "DEPTH", "BLOCKS", "HEAD", "HEADS", "MULT", "RATIO", "EXPANSION",
          "GROUPS", "KV"}
_WIDTH = {"EMBD", "EMBED", "EMB", "WIDTH", "DIM", "HIDDEN", "DMODEL"}
_OPTIONS_RE = re.compile(r"(?:one of|options?|choices?)\s*[:=]?\s*(.+)", re.IGNORECASE)
_WORD_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")


@dataclass(frozen=True)
class Knob:
    """One mutable literal: where it is in the script's bytes and how it may move."""

    name: str  # constant name, or NAME[i] for a tuple element
    value: Value
    start: int  # byte offset of the literal's source text
    end: int
    text: str  # the literal's source text as written
    comment: str  # the trailing comment of its line, without '#'
    rule: str  # one of the rule kinds above
    options: tuple[str, ...] = ()  # for CHOICE: the values the comment lists

    @property
    def constant(self) -> str:
        """The constant this knob belongs to (`BETAS` for `BETAS[1]`)."""
        return self.name.split("[", 1)[0]

    @property
    def mutable(self) -> bool:
        return self.rule != FIXED


def parse_knobs(script: bytes) -> dict[str, Knob]:
    """Every top-level literal constant of `script`, by knob name, in source order."""
    try:
        tree = ast.parse(script)
    except (SyntaxError, ValueError) as e:
        raise ScriptParseError(str(getattr(e, "msg", e)), getattr(e, "lineno", None)) from e
    lines = script.splitlines(keepends=True)
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line))

    counts: dict[str, int] = {}
    for node in tree.body:
        for name in _assigned_names(node):
            counts[name] = counts.get(name, 0) + 1

    knobs: dict[str, Knob] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None and node.simple:
            target, value = node.target, node.value
        else:
            continue
        if not isinstance(target, ast.Name) or not NAME_RE.match(target.id):
            continue
        if counts.get(target.id, 0) != 1:
            continue
        comment = _trailing_comment(lines, node)
        if isinstance(value, ast.Tuple):
            for i, elt in enumerate(value.elts):
                _add(knobs, f"{target.id}[{i}]", elt, comment, script, starts)
        else:
            _add(knobs, target.id, value, comment, script, starts)
    return knobs


def _assigned_names(node: ast.stmt) -> list[str]:
    """Names a top-level statement binds (assignments, imports, defs, loops)."""
    names: list[str] = []
    targets: list[ast.expr] = []
    if isinstance(node, ast.Assign):
        targets = list(node.targets)
    elif isinstance(node, ast.AugAssign | ast.AnnAssign):
        targets = [node.target]
    elif isinstance(node, ast.For | ast.AsyncFor):
        targets = [node.target]
    elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        names.append(node.name)
    elif isinstance(node, ast.Import | ast.ImportFrom):
        names.extend((a.asname or a.name).split(".")[0] for a in node.names)
    for t in targets:
        names.extend(n.id for n in ast.walk(t) if isinstance(n, ast.Name))
    return names


def _literal(node: ast.expr) -> Value | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, bool | int | float | str):
        return node.value
    if (
        isinstance(node, ast.UnaryOp)
        and isinstance(node.op, ast.USub)
        and isinstance(node.operand, ast.Constant)
        and type(node.operand.value) in (int, float)
    ):
        return -node.operand.value
    return None


def _add(knobs: dict[str, Knob], name: str, node: ast.expr, comment: str, script: bytes,
         starts: list[int]) -> None:
    value = _literal(node)
    if value is None or node.end_lineno is None or node.end_col_offset is None:
        return
    if isinstance(value, str) and node.lineno != node.end_lineno:
        return  # multi-line strings are prose, not knobs
    start = starts[node.lineno - 1] + node.col_offset
    end = starts[node.end_lineno - 1] + node.end_col_offset
    text = script[start:end].decode("utf-8")
    rule, options = infer_rule(name, value, comment)
    knobs[name] = Knob(name, value, start, end, text, comment, rule, options)


def _trailing_comment(lines: list[bytes], node: ast.stmt) -> str:
    if node.end_lineno is None or node.end_col_offset is None:
        return ""
    rest = lines[node.end_lineno - 1][node.end_col_offset:].decode("utf-8", "replace")
    m = re.match(r"\s*#(.*)", rest)
    return m.group(1).strip() if m else ""


def _parts(name: str) -> set[str]:
    base = name.split("[", 1)[0].replace("D_MODEL", "DMODEL").replace("MODEL_DIM", "DMODEL")
    return set(base.split("_"))


def infer_rule(name: str, value: Value, comment: str) -> tuple[str, tuple[str, ...]]:
    """How a knob named `name` holding `value` may move (a rule kind, and options for CHOICE)."""
    parts = _parts(name)
    if parts & _FIXED:
        return FIXED, ()
    if isinstance(value, bool):
        return BOOL, ()
    if isinstance(value, str):
        options = comment_options(comment)
        if value in options and len(options) > 1:
            return CHOICE, options
        return FIXED, ()
    if value < 0:
        return FIXED, ()
    if isinstance(value, int):
        if is_width(name) or "DIM" in parts:
            return INT_MUL, ()
        if parts & _COUNT:
            return INT_ADD, ()
        return INT_MUL, ()
    unit = parts & _UNIT or ("DECAY" in parts and "WEIGHT" not in parts)
    if unit and 0 < value < 1:
        return UNIT, ()
    if parts & _FRAC and 0 <= value < 1:
        return FRAC, ()
    if value == 0:
        return FRAC, ()  # a zero float can only be switched on by an additive first step
    return LOG, ()


def comment_options(comment: str) -> tuple[str, ...]:
    """The options a comment lists: `one of: a, b, c`, `options a|b` or `"a" | "b"`."""
    m = _OPTIONS_RE.search(comment)
    text = m.group(1) if m else (comment if "|" in comment else "")
    if not text:
        return ()
    words = []
    for w in _WORD_RE.findall(text.replace("|", " ").replace(",", " ").replace("/", " ")):
        if w.lower() not in ("or", "and") and w not in words:
            words.append(w)
    return tuple(words)


def is_width(name: str) -> bool:
    """A model width: must stay divisible by the number of heads."""
    parts = _parts(name)
    return bool(parts & _WIDTH) and not parts & {"MLP", "FF", "FFN", "HEAD", "HEADS", "RATIO"}


def is_heads(name: str) -> bool:
    parts = _parts(name)
    return bool(parts & {"HEAD", "HEADS"}) and "KV" not in parts and "DIM" not in parts


def is_kv_heads(name: str) -> bool:
    parts = _parts(name)
    return "KV" in parts and bool(parts & {"HEAD", "HEADS"})
