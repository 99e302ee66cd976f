"""scripts/fuzz.py end to end at a few hundred inputs per entry point (the full run is 100,000)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
import fuzz  # noqa: E402

ENTRIES = {"chain.objects.decode", "chain.objects.decode_stream", "Store.add_encoded", "wire.decode_request",
           "wire.decode_summary", "wire.decode_peer_addrs", "wire.decode_gossip", "wire.unpack (answers)",
           "wire.read_frame", "gossip validator"}


def test_fuzz_script_covers_every_entry_point(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "fuzz.json"
    assert fuzz.main(["-n", "300", "--seed", "1", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())
    assert {r["entry"] for r in rows} == ENTRIES
    for r in rows:
        assert r["inputs"] == 300 and r["crashes"] == 0 and r["hangs"] == 0, r
        assert r["accepted"] >= 1 and sum(r["rejections"].values()) >= 50, r
    printed = capsys.readouterr().out
    assert "full re-validation passed" in printed and "inputs/s" in printed
