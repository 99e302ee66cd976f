"""The shipped presets: building signed arenas, reading them back, the text and gpu arenas."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest
from model_helpers import BIGRAM, script

from chain.keys import SigningKey
from chain.objects import decode
from model import arenas
from model.errors import ConfigError, DataCorruptError, DataUnavailableError, UnknownPresetError
from model.harness import DirectLauncher, run_script
from model.sources import text as text_source
from node.research.knobs import LOG, parse_knobs

pytestmark = pytest.mark.timeout(180)

KEY = SigningKey.from_seed(b"\x07" * 32)
SHAKESPEARE_LIKE = ("First Citizen:\nBefore we proceed any further, hear me speak.\n\n"
                    "All:\nSpeak, speak.\n\n" * 400).encode()


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "data"
    monkeypatch.setenv("RATCHET_DATA", str(d))
    return d


def test_tiny_arena_round_trips_and_parses() -> None:
    arena, blob = arenas.build_arena("tiny", KEY, [KEY.public], 1, created_at_ms=1)
    assert decode(arena.encode()) == arena and arena.script == blob.id
    assert blob.data == arenas.reference_script("tiny")
    c = arenas.harness_config(arena)
    assert (c.source, c.budget_kind, c.device) == ("tinylang", "compute", "cpu")
    assert c.budget_value == arena.budget_value and c.wall_cap_s == arena.wall_cap_s
    assert c.setting("words", "") == "512"


def test_overrides_set_fields_and_settings_and_refuse_typos() -> None:
    arena, _ = arenas.build_arena("tiny", KEY, [KEY.public], 1,
                                  overrides={"budget_value": "8000", "seeds": "2", "eval_rows": "704"})
    assert arena.budget_value == 8000 and arena.seeds == 2 and arena.setting("eval_rows") == "704"
    with pytest.raises(ValueError, match="unknown arena setting"):
        arenas.build_arena("tiny", KEY, [KEY.public], 1, overrides={"budjet": "1"})
    with pytest.raises(ValueError, match="not an integer"):
        arenas.build_arena("tiny", KEY, [KEY.public], 1, overrides={"seeds": "many"})
    with pytest.raises(ConfigError, match="eval_rows"):
        arenas.build_arena("tiny", KEY, [KEY.public], 1, overrides={"eval_rows": "33"})
    with pytest.raises(UnknownPresetError):
        arenas.build_arena("huge", KEY, [KEY.public], 1)


def test_reference_scripts_expose_knobs_and_do_no_work_at_import() -> None:
    for name in ("tiny", "gpu"):
        source = arenas.reference_script(name)
        knobs = parse_knobs(source)
        lr = [n for n, k in knobs.items() if k.rule == LOG and "LR" in n.split("[")[0].split("_")]
        assert lr, f"{name} has no learning-rate knob"
        namespace: dict[str, object] = {}
        exec(compile(source, name, "exec"), namespace)  # definitions only: nothing trains
        assert callable(namespace["train"])


def test_text_arena_from_a_local_file(tmp_path: Path, data_dir: Path) -> None:
    path = tmp_path / "plays.txt"
    path.write_bytes(SHAKESPEARE_LIKE)
    arena, _ = arenas.build_arena("text", KEY, [KEY.public], 1, text_path=path,
                                  overrides={"eval_rows": "40", "eval_seq_len": "32", "eval_batch": "8", "probe_cuts": "1",
                                             "splice_bytes": "4096",
                                             "budget_value": "4096"})
    assert arena.dataset_source.startswith("local file plays.txt")
    c = arenas.harness_config(arena)
    assert Path(c.data_path).read_bytes() == SHAKESPEARE_LIKE
    r = run_script(script(BIGRAM), c, 3, launcher=DirectLauncher(), threads=1)
    assert r.ok and r.floor_bpb is None and r.val_bpb is not None and r.val_bpb < 4, r.detail

    Path(c.data_path).write_bytes(SHAKESPEARE_LIKE[:-1] + b"?")
    with pytest.raises(DataCorruptError, match="SHA-256"):
        run_script(script(BIGRAM), c, 3, launcher=DirectLauncher(), threads=1)
    Path(c.data_path).unlink()
    with pytest.raises(DataUnavailableError, match="copy that file"):
        run_script(script(BIGRAM), c, 3, launcher=DirectLauncher(), threads=1)


def test_text_arena_offline_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(text_source, "PINNED_URL", "http://127.0.0.1:9/input.txt")
    with pytest.raises(DataUnavailableError) as e:
        arenas.build_arena("text", KEY, [KEY.public], 1)
    assert "download failed" in str(e.value) and "--text FILE" in str(e.value)


def test_text_arena_refuses_a_substituted_pinned_file(data_dir: Path) -> None:
    data_dir.mkdir(parents=True)
    text_source.data_path_for(text_source.PINNED_SHA256).write_bytes(b"not shakespeare")
    with pytest.raises(DataCorruptError):
        arenas.build_arena("text", KEY, [KEY.public], 1)


def shrink(source: bytes, **values: str) -> bytes:
    out = source.decode()
    for name, value in values.items():
        out, n = re.subn(rf"^{name} = [^#\n]+", f"{name} = {value} ", out, flags=re.M)
        assert n == 1, name
    return out.encode()


def test_gpu_arena_script_runs_on_cpu_reduced() -> None:
    arena, _ = arenas.build_arena("gpu", KEY, [KEY.public], 1, created_at_ms=1)
    c = arenas.harness_config(arena)
    assert (c.budget_kind, c.device, arena.hardware) == ("seconds", "cuda", "cuda:h100")
    small = shrink(arenas.reference_script("gpu"), N_LAYER="1", N_HEAD="2", N_EMBD="32", BATCH_SIZE="4",
                   SEQ_LEN="64", COMPILE="False")
    cpu = replace(c, device="cpu", budget_kind="tokens", budget_value=8192, eval_seq_len=64, eval_batch=8,
                  eval_rows=72, probe_cuts=1, source_settings=(("topics", "2"), ("train_bytes", "65536"), ("words", "256")))
    r = run_script(small, cpu, 2, launcher=DirectLauncher(), threads=1)
    assert r.ok, r.detail
    assert r.val_bpb is not None and r.floor_bpb is not None and r.floor_bpb < r.val_bpb < 8
    assert "steps: 32" in r.detail
