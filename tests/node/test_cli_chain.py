"""The chain CLI (keys, arena, log, show, import/export) through click's CliRunner on a real store."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from chain.builders import key, make_arena, make_attestation, make_proposal
from chain.objects import encode_stream
from chain.store import Store
from node.cli import main


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def run(runner: CliRunner, home: Path, *args: str, ok: bool = True) -> str:
    result = runner.invoke(main, ["--home", str(home), *args], catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, result.output
    else:
        assert result.exit_code != 0, result.output
    return result.output


def build_chain(home: Path) -> dict[str, bytes]:
    """An arena (quorum 2 of 3) with an accepted first commit, an accepted child and a rejected sibling."""
    verifiers = [key(1), key(2), key(3)]
    arena, ref = make_arena(key(0), [v.public for v in verifiers], quorum=2)
    p1, b1 = make_proposal(key(10), arena, arena.id, message="faster lr", timestamp=1_700_000_100_000)
    p2, b2 = make_proposal(key(11), arena, p1.id, message="<b>wider</b> model", timestamp=1_700_000_200_000)
    p3, b3 = make_proposal(key(11), arena, p1.id, message="bad idea", timestamp=1_700_000_300_000)
    atts = [make_attestation(v, p1, gain_ubpb=2000) for v in verifiers[:2]]
    atts += [make_attestation(v, p2, gain_ubpb=3000) for v in verifiers]
    atts += [make_attestation(v, p3, "no_gain", gain_ubpb=-10) for v in verifiers[:2]]
    with Store.open(home) as store:
        for obj in [ref, arena, b1, b2, b3, p1, p2, p3, *atts]:
            store.add(obj)
    return {"arena": arena.id, "p1": p1.id, "p2": p2.id, "p3": p3.id}


def test_keys_new_is_private_and_never_overwritten(runner: CliRunner, tmp_path: Path) -> None:
    out = run(runner, tmp_path, "keys", "new")
    path = tmp_path / "keys" / "identity.pem"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    public = run(runner, tmp_path, "keys", "show").strip()
    assert public in out and len(public) == 64
    assert "PRIVATE" not in out
    before = path.read_bytes()
    err = run(runner, tmp_path, "keys", "new", ok=False)
    assert "refusing to overwrite" in err
    assert path.read_bytes() == before
    data = json.loads(run(runner, tmp_path, "--json", "keys", "show"))
    assert data["public_key"] == public


def test_keys_show_without_key_says_what_to_do(runner: CliRunner, tmp_path: Path) -> None:
    assert "ratchet keys new" in run(runner, tmp_path, "keys", "show", ok=False)


def test_arena_create_show_list(runner: CliRunner, tmp_path: Path) -> None:
    run(runner, tmp_path, "keys", "new")
    script = tmp_path / "train.py"
    script.write_text("LR = 1e-3\n")
    run(runner, tmp_path, "arena", "create", "--name", "mine", "--script", str(script), "--budget", "1000",
        "--setting", "words=64")
    listed = json.loads(run(runner, tmp_path, "--json", "arena", "list"))
    assert [a["name"] for a in listed] == ["mine"]
    shown = json.loads(run(runner, tmp_path, "--json", "arena", "show", "mine"))
    assert shown["budget"] == "tokens=1000" and shown["settings"] == {"words": "64"}
    assert shown["verifiers"] == [run(runner, tmp_path, "keys", "show").strip()]
    assert "mine" in run(runner, tmp_path, "arena", "show")


def test_arena_create_rejects_bad_flags_and_keeps_store(runner: CliRunner, tmp_path: Path) -> None:
    run(runner, tmp_path, "keys", "new")
    script = tmp_path / "train.py"
    script.write_text("x = 1\n")
    out = run(runner, tmp_path, "arena", "create", "--name", "Bad Name", "--script", str(script),
              "--budget", "10", ok=False)
    assert "name" in out
    out = run(runner, tmp_path, "arena", "create", "--name", "ok", "--script", str(script),
              "--budget", "10", "--verifier", "zz", ok=False)
    assert "not hex" in out
    out = run(runner, tmp_path, "arena", "create", "--name", "ok", "--script", str(script),
              "--budget", "10", "--quorum", "3", ok=False)
    assert "quorum" in out
    out = run(runner, tmp_path, "arena", "create", "--name", "ok", "--script", str(script),
              "--budget", "10", "--setting", "vocab=64", ok=False)
    assert "unknown setting" in out and "vocab" in out
    out = run(runner, tmp_path, "arena", "create", "--name", "ok", "--script", str(script),
              "--budget", "10", "--setting", "eval_rows=100", ok=False)
    assert "eval_rows" in out
    out = run(runner, tmp_path, "arena", "create", "--name", "ok", "--script", str(script),
              "--budget", "10", "--harness", "tiny-1", ok=False)
    assert "tiny-1" in out and "ratchet-harness-" in out
    assert json.loads(run(runner, tmp_path, "--json", "arena", "list")) == []


def test_log_follows_the_head(runner: CliRunner, tmp_path: Path) -> None:
    ids = build_chain(tmp_path)
    data = json.loads(run(runner, tmp_path, "--json", "log"))
    assert data["head"] == ids["p2"].hex()
    assert [c["id"] for c in data["commits"]] == [ids["p2"].hex(), ids["p1"].hex()]
    assert data["commits"][0]["cumulative_ubpb"] == 5000
    text = run(runner, tmp_path, "log")
    assert "(HEAD)" in text and "<b>wider</b> model" in text and "faster lr" in text
    everything = json.loads(run(runner, tmp_path, "--json", "log", "--all"))
    statuses = {c["id"]: c["status"] for c in everything["commits"]}
    assert statuses[ids["p3"].hex()] == "rejected"
    assert len(json.loads(run(runner, tmp_path, "--json", "log", "-n", "1"))["commits"]) == 1


def test_show_commit_with_attestations_and_diff(runner: CliRunner, tmp_path: Path) -> None:
    ids = build_chain(tmp_path)
    data = json.loads(run(runner, tmp_path, "--json", "show", ids["p2"].hex()[:10]))
    assert data["status"] == "accepted" and len(data["attestations"]) == 3
    assert "+" in data["diff"] and "wider" in data["diff"]
    text = run(runner, tmp_path, "show", ids["p1"].hex())
    assert "Attestations (2)" in text and "faster lr" in text
    arena = json.loads(run(runner, tmp_path, "--json", "show", ids["arena"].hex()))
    assert arena["type"] == "arena"


def test_show_bad_ids(runner: CliRunner, tmp_path: Path) -> None:
    build_chain(tmp_path)
    assert "not found" in run(runner, tmp_path, "show", "ffff" * 4, ok=False)
    assert "Error" in run(runner, tmp_path, "show", "xyz!", ok=False)


def test_export_import_round_trip(runner: CliRunner, tmp_path: Path) -> None:
    ids = build_chain(tmp_path / "a")
    stream = tmp_path / "chain.ratchet"
    run(runner, tmp_path / "a", "export", "-o", str(stream))
    out = json.loads(run(runner, tmp_path / "b", "--json", "import", str(stream)))
    assert out["added"] == out["read"] and out["rejected"] == []
    again = json.loads(run(runner, tmp_path / "b", "--json", "import", str(stream)))
    assert again["added"] == 0 and again["already_held"] == out["read"]
    assert json.loads(run(runner, tmp_path / "b", "--json", "log"))["head"] == ids["p2"].hex()


def test_import_in_reverse_order_still_imports(runner: CliRunner, tmp_path: Path) -> None:
    build_chain(tmp_path / "a")
    with Store.open(tmp_path / "a") as store:
        objects = list(store.iter_objects())
    stream = tmp_path / "reversed.ratchet"
    stream.write_bytes(b"".join(encode_stream(list(reversed(objects)))))
    out = json.loads(run(runner, tmp_path / "b", "--json", "import", str(stream)))
    assert out["added"] == len(objects)


def test_corrupt_import_is_refused_and_store_untouched(runner: CliRunner, tmp_path: Path) -> None:
    build_chain(tmp_path / "a")
    stream = tmp_path / "chain.ratchet"
    run(runner, tmp_path / "a", "export", "-o", str(stream))
    data = bytearray(stream.read_bytes())
    data[len(data) // 2] ^= 0x40
    bad = tmp_path / "bad.ratchet"
    bad.write_bytes(bytes(data))
    build_chain(tmp_path / "b")
    with Store.open(tmp_path / "b") as store:
        before = store.counts()
    out = run(runner, tmp_path / "b", "import", str(bad), ok=False)
    assert "invalid" in out and "nothing was imported" in out
    with Store.open(tmp_path / "b") as store:
        assert store.counts() == before
    garbage = tmp_path / "garbage"
    garbage.write_bytes(b"\xc1not msgpack")
    assert "invalid" in run(runner, tmp_path / "b", "import", str(garbage), ok=False)


def test_unknown_subcommand_and_arena(runner: CliRunner, tmp_path: Path) -> None:
    assert "No such command" in run(runner, tmp_path, "frobnicate", ok=False)
    build_chain(tmp_path)
    assert "not found" in run(runner, tmp_path, "--arena", "nope", "log", ok=False).lower()
