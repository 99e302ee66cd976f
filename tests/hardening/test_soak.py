"""scripts/soak.py at its smallest (3 relay nodes, 3 verifiers, scripted checks, ~10 s of kills).

The full run (20 nodes, 10 minutes, real checks) is a benchmark; this keeps the
script working and checks its verdict end to end: every process converges on
the same objects and head after random SIGKILLs, and every store re-validates.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
import soak  # noqa: E402

pytestmark = pytest.mark.timeout(240)


def test_small_soak_converges_after_random_kills(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "soak.json"
    code = soak.main(["--nodes", "3", "--verifiers", "3", "--quorum", "2", "--checks", "scripted",
                      "--duration", "9", "--kill-every", "2.5", "--propose-every", "2",
                      "--sync-interval", "1", "--drain", "15", "--converge-timeout", "120",
                      "--dir", str(tmp_path / "run"), "--seed", "7", "--json", str(out)])
    printed = capsys.readouterr().out
    result = json.loads(out.read_text())
    assert code == 0, printed[-3000:]
    assert result["converged"] and result["consistent"], result["problems"]
    assert sum(p["restarts"] for p in result["processes"]) >= 1, "no process was killed"
    assert sum(result["commits"].values()) >= 1, f"no proposal went through: {result['commits']}"
    assert "final check (status --json, validate_store, identical stores and heads): PASS" in printed
