"""The shipped arenas (tiny, text, gpu): building their signed Arena objects and reading them back.

An Arena stores what decides a score: the budget and cap as fields, the data
source and evaluation shape as `settings` (sorted key/value strings).
`harness_config` turns a stored arena into the HarnessConfig the harness
runs, so a verifier needs nothing besides the arena object (and, for the
text arena, the pinned data file).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from chain.keys import SigningKey
from chain.objects import Arena, Blob
from model.errors import ConfigError, UnknownPresetError
from model.harness.config import HARNESS_VERSION, HarnessConfig
from model.harness.evaluate import rows_needed
from model.sources.text import PINNED_URL

PRESETS: tuple[str, ...] = ("tiny", "text", "gpu")

# Arena fields an override may set (as strings, like settings), with their types.
FIELD_OVERRIDES: dict[str, type] = {
    "description": str, "budget_kind": str, "budget_value": int, "wall_cap_s": int, "hardware": str,
    "seeds": int, "margin_ubpb": int, "max_script_bytes": int,
}
# Settings the harness reads; anything else is refused so a typo is not silently ignored.
SETTING_KEYS = frozenset({
    "source", "words", "topics", "train_bytes", "eval_seq_len", "eval_batch", "eval_rows",
    "tolerance", "max_batch_tokens", "max_seq_len", "max_model_bytes", "device", "data_file",
    "probe_cuts", "splice_bytes",
})


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    script: str  # file under model/scripts/
    dataset_name: str
    dataset_source: str
    budget_kind: str
    budget_value: int
    wall_cap_s: int
    hardware: str
    seeds: int
    margin_ubpb: int
    settings: dict[str, str] = field(default_factory=dict)
    max_script_bytes: int = 64 * 1024


TINY = Preset(
    name="tiny",
    description=("A byte-level language model trained for a fixed token budget on two CPU cores "
                 "(about a minute). Every check draws a fresh tinylang source from its seed; "
                 "the score is val_bpb, printed next to the source's exact floor."),
    script="tiny.py",
    dataset_name="tinylang-1",
    dataset_source="generated per check from the seed (model/sources/tinylang.py)",
    budget_kind="compute",
    budget_value=4_000_000,
    wall_cap_s=1800,  # 30x a run on idle cores: measured here, a loaded machine runs 10x slower
    hardware="cpu",
    seeds=3,
    margin_ubpb=3_000,
    settings={"source": "tinylang", "words": "512", "topics": "4", "train_bytes": str(1 << 20),
              "eval_seq_len": "128", "eval_batch": "32", "eval_rows": "672", "tolerance": "0.0002",
              "probe_cuts": "5"},  # 5 x 127 lookahead rows + a batch: scripts/bench_attacks.py
)


TEXT = Preset(
    name="text",
    description=("A byte-level language model trained on real English text (Tiny Shakespeare, pinned "
                 "by SHA-256, or a local file) for a fixed token budget on two CPU cores. The last "
                 "val_bytes of the text are the validation split; there is no floor."),
    script="tiny.py",
    dataset_name="tinyshakespeare",
    dataset_source=PINNED_URL,
    budget_kind="compute",
    budget_value=6_000_000,
    wall_cap_s=2700,
    hardware="cpu",
    seeds=3,
    margin_ubpb=3_000,
    settings={"source": "text", "eval_seq_len": "128", "eval_batch": "32", "eval_rows": "672",
              "tolerance": "0.0002", "probe_cuts": "5"},
)

GPU = Preset(
    name="gpu",
    description=("The 5-minute single-GPU check: a modern GPT (RMSNorm, rotary, QK-norm, Muon) trained "
                 "for 300 seconds on one CUDA GPU on a fresh tinylang source per seed (larger "
                 "vocabulary and text than tiny). Its timings need the named GPU class."),
    script="gpu.py",
    dataset_name="tinylang-1-large",
    dataset_source="generated per check from the seed (model/sources/tinylang.py)",
    budget_kind="seconds",
    budget_value=300,
    wall_cap_s=1200,
    hardware="cuda:h100",
    seeds=3,
    margin_ubpb=2_000,
    settings={"source": "tinylang", "words": "4096", "topics": "8", "train_bytes": str(32 << 20),
              "eval_seq_len": "512", "eval_batch": "32", "eval_rows": "1568", "tolerance": "0.005",
              "max_batch_tokens": str(1 << 21), "probe_cuts": "3"},  # 3 x 511 lookahead rows + a batch
)

_TABLE = {"tiny": TINY, "text": TEXT, "gpu": GPU}


def preset(name: str) -> Preset:
    if name not in _TABLE:
        raise UnknownPresetError(name, PRESETS)
    return _TABLE[name]


def reference_script(preset_name: str) -> bytes:
    p = preset(preset_name)
    return resources.files("model.scripts").joinpath(p.script).read_bytes()


def build_arena(preset_name: str, creator: SigningKey, verifiers: list[bytes], quorum: int, *,
                overrides: dict[str, str] | None = None, created_at_ms: int | None = None,
                text_path: Path | None = None) -> tuple[Arena, Blob]:
    """The signed arena of a preset and its reference-script blob (raises ValueError on bad overrides)."""
    p = preset(preset_name)
    fields: dict[str, object] = {
        "description": p.description, "budget_kind": p.budget_kind, "budget_value": p.budget_value,
        "wall_cap_s": p.wall_cap_s, "hardware": p.hardware, "seeds": p.seeds,
        "margin_ubpb": p.margin_ubpb, "max_script_bytes": p.max_script_bytes,
    }
    settings = dict(p.settings)
    dataset_sha = b""
    source = p.dataset_source
    if p.name == "text":
        from model.sources.text import install_text

        dataset_sha, extra = install_text(text_path)
        settings.update(extra)
        if text_path is not None:
            source = f"local file {extra['data_file']} (SHA-256 {dataset_sha.hex()})"
    elif text_path is not None:
        raise ValueError(f"--text applies to the text arena, not {p.name!r}")
    for k, v in (overrides or {}).items():
        if k in FIELD_OVERRIDES:
            try:
                fields[k] = FIELD_OVERRIDES[k](v)
            except ValueError as e:
                raise ValueError(f"override {k}={v!r}: not an integer") from e
        elif k in SETTING_KEYS:
            settings[k] = str(v)
        else:
            known = sorted([*FIELD_OVERRIDES, *SETTING_KEYS])
            raise ValueError(f"unknown arena setting {k!r}; known: {', '.join(known)}")
    blob = Blob(data=reference_script(p.name))
    arena = Arena.create(
        creator, name=p.name, script=blob.id, harness=HARNESS_VERSION, dataset_name=p.dataset_name,
        dataset_sha256=dataset_sha, dataset_source=source, quorum=quorum,
        verifiers=sorted(set(verifiers)), settings=sorted(settings.items()), bootstrap=[],
        created_at=created_at_ms if created_at_ms is not None else int(time.time() * 1000),
        **fields,
    )
    harness_config(arena)  # refuse an arena the harness could not run
    return arena, blob


def harness_config(arena: Arena) -> HarnessConfig:
    """What the harness needs from a stored arena; ConfigError if its settings are unusable."""
    s = dict(arena.settings)

    def num(key: str, default: int, lo: int = 1, hi: int = 1 << 40) -> int:
        raw = s.get(key, str(default))
        try:
            v = int(raw)
        except ValueError as e:
            raise ConfigError(key, raw, "not an integer") from e
        if not lo <= v <= hi:
            raise ConfigError(key, raw, f"must be in [{lo}, {hi}]")
        return v

    raw_tol = s.get("tolerance", "0.0002")
    try:
        tol = float(raw_tol)
    except ValueError as e:
        raise ConfigError("tolerance", raw_tol, "not a number") from e
    if not 0 <= tol < 1:
        raise ConfigError("tolerance", raw_tol, "must be in [0, 1)")
    source = s.get("source", "tinylang")
    if source not in ("tinylang", "text"):
        raise ConfigError("source", source, "unknown data source (tinylang, text)")
    device = s.get("device", "cuda" if arena.hardware.startswith("cuda") else "cpu")
    if device not in ("cpu", "cuda"):
        raise ConfigError("device", device, "must be cpu or cuda")
    batch = num("eval_batch", 32, 1, 4096)
    rows = num("eval_rows", 512, 2, 1 << 20)
    seq_len = num("eval_seq_len", 128, 2, 1 << 16)
    cuts = num("probe_cuts", 3, 1, 64)
    need = rows_needed(cuts, seq_len, batch)
    if rows % batch or rows < need:
        raise ConfigError("eval_rows", str(rows), f"must be a multiple of eval_batch {batch} and at least {need}: "
                          f"probe_cuts {cuts} lookahead rows at each of the {seq_len - 1} cut positions "
                          "plus a batch of exact rows")
    data_path = ""
    if source == "text":
        from model.sources.text import data_path_for

        data_path = str(data_path_for(arena.dataset_sha256.hex()))
    reserved = {"source", "eval_seq_len", "eval_batch", "eval_rows", "tolerance", "max_batch_tokens",
                "max_seq_len", "max_model_bytes", "device", "probe_cuts"}
    config = HarnessConfig(
        source=source, budget_kind=arena.budget_kind, budget_value=arena.budget_value,
        wall_cap_s=float(arena.wall_cap_s), device=device,
        eval_seq_len=seq_len, eval_batch=batch, eval_rows=rows, probe_cuts=cuts,
        max_batch_tokens=num("max_batch_tokens", 1 << 20), max_seq_len=num("max_seq_len", 8192),
        max_model_bytes=num("max_model_bytes", 1 << 30, 1, (1 << 32) - 64),
        tolerance=tol, source_settings=tuple(sorted((k, v) for k, v in s.items() if k not in reserved)),
        data_path=data_path, data_sha256=arena.dataset_sha256.hex(), harness=arena.harness,
    )
    if source == "text":
        from model.sources.text import splice_bytes

        splice_bytes(config)  # refuse a bad splice pool size now, not at the first run
    return config
