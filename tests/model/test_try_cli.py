"""`ratchet arena init` with the model presets and `ratchet try` end to end (real harness, real training)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from model.arenas import harness_config, reference_script
from model.sources import draw
from node.cli import main

pytestmark = pytest.mark.timeout(240)

BUDGET = 100_000  # tokens: a few seconds of training on one thread


def invoke(home: Path, *args: str) -> tuple[int, str]:
    r = CliRunner().invoke(main, ["--home", str(home), *args], catch_exceptions=False)
    return r.exit_code, r.output


def unigram_bpb(config: object, seed: int) -> float:
    """Bits per byte of the best context-free model fitted on the training text."""
    d = draw(config, seed)  # type: ignore[arg-type]
    p = np.bincount(d.train, minlength=256) / len(d.train)
    return float(-np.log2(p[d.val[1:]]).mean())


def test_arena_init_tiny_then_try_the_reference(tmp_path: Path) -> None:
    code, out = invoke(tmp_path, "keys", "new")
    assert code == 0, out
    code, out = invoke(tmp_path, "--json", "arena", "init", "tiny", "--set", f"budget_value={BUDGET}",
                       "--set", "eval_rows=160", "--set", "probe_cuts=1")
    assert code == 0, out
    created = json.loads(out)
    assert created["name"] == "tiny" and created["budget"] == f"compute={BUDGET}"
    assert created["settings"]["eval_rows"] == "160"
    script = tmp_path / "train.py"
    script.write_bytes(reference_script("tiny"))
    code, out = invoke(tmp_path, "try", str(script), "--threads", "1", "--seed", "5", "--json")
    assert code == 0, out
    r = json.loads(out[out.index("{"):])
    assert r["status"] == "ok" and r["arena"] == "tiny" and r["seed"] == 5
    from chain.store import Store

    with Store.open(tmp_path) as store:
        config = harness_config(store.arenas()[0])
    baseline = unigram_bpb(config, 5)
    assert r["floor_bpb"] < r["val_bpb"] < baseline - 0.3, (r, baseline)
    assert r["excess_bpb"] == pytest.approx(r["val_bpb"] - r["floor_bpb"])
    assert r["tokens"] <= BUDGET and r["tokens"] > BUDGET - 2 * 16 * 128
    assert r["params"] > 10_000 and r["tokens_per_s"] > 0


def test_try_without_a_store_uses_the_builtin_tiny_and_prints_the_floor(tmp_path: Path) -> None:
    script = tmp_path / "train.py"
    script.write_bytes(reference_script("tiny"))
    code, out = invoke(tmp_path / "home", "try", str(script), "--threads", "1", "--budget", "4096")
    assert code == 0, out
    assert "floor_bpb:" in out and "val_bpb:" in out and "tokens_per_s:" in out
    assert not (tmp_path / "home").exists()  # nothing stored


def test_try_names_the_failure(tmp_path: Path) -> None:
    script = tmp_path / "bad.py"
    script.write_text("def train(feed):\n    raise RuntimeError('no luck')\n")
    code, out = invoke(tmp_path, "try", str(script), "--threads", "1", "--budget", "4096")
    assert code == 1
    assert "invalid: script_error" in out and "no luck" in out
