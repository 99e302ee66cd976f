"""`ratchet check` through click's CliRunner: the table, the verdict, --json, the exit status."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from conftest import hostile

from node.cli import main

pytestmark = pytest.mark.timeout(900)


def test_check_prints_verdict_and_seed_table(tmp_path):
    """A textual no-op on the built-in tiny preset at a tiny budget: no_gain, exit status 1.

    At 20,000 tokens a run is 2 CPU s: its rate's jitter is what the compute rule's noise
    allowance (verify.compute.noise) keeps from moving the candidate's class."""
    from model.arenas import reference_script

    script = tmp_path / "train.py"
    script.write_bytes(reference_script("tiny") + b"\n# no-op\n")
    r = CliRunner().invoke(main, ["--home", str(tmp_path / "home"), "check", str(script),
                                  "--seeds", "5,6,7", "--budget", "20000", "--threads", "1"])
    assert r.exit_code == 1, r.output
    assert "verdict: no_gain" in r.output
    assert "tiny reference" in r.output
    rows = [line.split() for line in r.output.splitlines() if line.split()[:1] in (["5"], ["6"], ["7"])]
    assert len(rows) == 3, r.output
    for _seed, parent, candidate, gain, floor, tokens, cpu in rows:
        assert parent == candidate and gain == "0.000000"  # identical training: zero gain
        assert float(floor) < float(candidate)
        p_tokens, c_tokens = tokens.split("/")
        assert p_tokens == c_tokens and 0 < int(p_tokens) <= 20000  # the same class: the same tokens
        assert all(float(x) > 0 for x in cpu.split("/"))
    assert "compute class +0" in r.output


def test_check_json_for_an_invalid_script(tmp_path):
    script = tmp_path / "bad.py"
    script.write_bytes(hostile("syntax_error.txt"))
    r = CliRunner().invoke(main, ["--home", str(tmp_path / "home"), "check", str(script), "--json",
                                  "--seeds", "1,2", "--budget", "1000", "--threads", "1"])
    assert r.exit_code == 1, r.output
    data = json.loads(r.output)
    assert data["verdict"] == "invalid:syntax_error" and data["seeds"] == [1, 2]
    assert data["candidate_ubpb"] == [] and "SyntaxError" in data["detail"]


def test_check_refuses_without_sandbox(tmp_path, monkeypatch):
    script = tmp_path / "train.py"
    script.write_text("def train(feed):\n    return None\n")
    monkeypatch.setenv("PATH", str(tmp_path))
    r = CliRunner().invoke(main, ["--home", str(tmp_path / "home"), "check", str(script), "--seeds", "1"])
    assert r.exit_code == 1 and "bubblewrap" in r.output and "--unsafe-no-sandbox" in r.output


def test_bad_seeds_are_refused(tmp_path):
    script = tmp_path / "train.py"
    script.write_text("")
    r = CliRunner().invoke(main, ["--home", str(tmp_path / "home"), "check", str(script), "--seeds", "a,b"])
    assert r.exit_code == 2 and "seeds" in r.output


def test_an_arena_created_with_the_defaults_can_be_checked(tmp_path):
    """`ratchet arena create` with its defaults makes an arena that `ratchet check` runs."""
    from model.arenas import reference_script

    home = str(tmp_path / "home")
    ref = tmp_path / "ref.py"
    ref.write_bytes(reference_script("tiny"))
    cand = tmp_path / "cand.py"
    cand.write_bytes(reference_script("tiny") + b"\n# no-op\n")
    runner = CliRunner()
    assert runner.invoke(main, ["--home", home, "keys", "new"]).exit_code == 0
    r = runner.invoke(main, ["--home", home, "arena", "create", "--name", "mine", "--script", str(ref),
                             "--budget", "8000"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(main, ["--home", home, "--json", "check", str(cand), "--arena", "mine",
                             "--seeds", "3", "--threads", "1"])
    data = json.loads(r.output)
    assert data["verdict"] == "no_gain" and data["parent_ubpb"] == data["candidate_ubpb"], r.output
