"""`ratchet profile set|show` through CliRunner on a real store, and once through real node processes."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from p2p_helpers import node_processes, poll, ratchet

from chain.builders import key
from chain.objects import Profile
from chain.store import Store
from node.cli import main
from node.p2p.statusfile import write_status


def run(home: Path, *args: str, ok: bool = True) -> str:
    result = CliRunner().invoke(main, ["--home", str(home), *args], catch_exceptions=False)
    assert (result.exit_code == 0) == ok, result.output
    return result.output


@pytest.fixture
def home(tmp_path: Path) -> Path:
    key(10).save(tmp_path / "keys" / "identity.pem")
    return tmp_path


def test_set_then_show_text_and_json(home: Path) -> None:
    out = run(home, "profile", "set", "--name", "  Ada Lovelace ", "--team", "Rockets", "--url", "https://ada.example")
    assert "'Ada Lovelace' (key " in out and "no node runs on this data directory" in out
    text = run(home, "profile", "show")
    me = key(10).public.hex()
    assert f"name:     Ada Lovelace  (key {me[:12]})" in text and "team:     Rockets" in text
    data = json.loads(run(home, "profile", "show", "--json"))
    assert (data["key"], data["name"], data["team"], data["url"]) == (me, "Ada Lovelace", "Rockets",
                                                                      "https://ada.example")
    assert data["name_looks_like"] == [] and len(data["team_id"]) == 16
    assert json.loads(run(home, "--json", "profile", "show", me[:10]))["id"] == data["id"]


def test_set_keeps_what_is_not_given_and_clears_with_empty(home: Path) -> None:
    run(home, "profile", "set", "--name", "Ada", "--team", "Rockets", "--url", "https://a.example")
    run(home, "profile", "set", "--name", "Ada L.")
    data = json.loads(run(home, "--json", "profile", "show"))
    assert (data["name"], data["team"], data["url"]) == ("Ada L.", "Rockets", "https://a.example")
    run(home, "profile", "set", "--name", "Ada L.", "--team", "", "--url", "")
    data = json.loads(run(home, "--json", "profile", "show"))
    assert (data["team"], data["url"], data["team_id"]) == ("", "", None)
    assert "unchanged" in run(home, "profile", "set", "--name", "Ada L.")
    with Store.open(home) as s:
        assert len(s.profiles()) == 3 and s.counts()["profile"] == 3


@pytest.mark.parametrize(("args", "said"), [
    (["--name", "Ada\u202eecila"], "bidirectional control character U+202E RIGHT-TO-LEFT OVERRIDE at position 3"),
    (["--name", "Ada\x1b[31m"], "control character U+001B"),
    (["--name", "Ada\u200bL"], "invisible format character U+200B ZERO WIDTH SPACE"),
    (["--name", "   "], "profile.name: must not be empty"),
    (["--name", "x" * 41], "profile.name (characters): 41 exceeds the limit of 40"),
    (["--name", "Ada", "--team", "T\u2066eam"], "profile.team: bidirectional control character U+2066"),
    (["--name", "Ada", "--url", "javascript:alert(1)"], "is not an http:// or https:// URL"),
])
def test_bad_input_is_refused_with_a_specific_error_and_nothing_is_stored(home: Path, args: list[str],
                                                                          said: str) -> None:
    run(home, "profile", "set", "--name", "Ada")
    with Store.open(home) as s:
        before = (s.counts(), s.data_version())
    out = run(home, "profile", "set", *args, ok=False)
    assert "profile not set: " in out and said in out, out
    with Store.open(home) as s:
        assert (s.counts(), s.data_version()) == before
        assert s.current_profiles()[key(10).public].name == "Ada"


def test_show_marks_a_look_alike_name_and_explains_missing_profiles(home: Path) -> None:
    run(home, "profile", "set", "--name", "Ada")
    with Store.open(home) as s:
        s.add(Profile.create(key(11), name="\u0410da", team="", url="", timestamp=1))  # a Cyrillic A
    text = run(home, "profile", "show")
    assert f"looks like the name of key {key(11).public.hex()[:12]}" in text
    assert json.loads(run(home, "--json", "profile", "show", key(11).public.hex()))["name_looks_like"] == [
        key(10).public.hex()]
    assert "has no profile in this store" in run(home, "profile", "show", key(12).public.hex(), ok=False)
    assert "at least 8 characters" in run(home, "profile", "show", "abc", ok=False)
    assert "no key with a profile starts with" in run(home, "profile", "show", "00000000", ok=False)
    other = home / "other"
    key(12).save(other / "keys" / "identity.pem")
    assert "ratchet profile set --name NAME" in run(other, "profile", "show", ok=False)


def test_set_goes_through_a_node_running_on_the_home(home: Path) -> None:
    """The local node's status file says it published something new: `set` reports it (the node's
    watcher does the gossiping; the two-process test below runs a real one)."""
    status = {"pid": os.getpid(), "updated_ms": int(time.time() * 1000), "counters": {"published": 4}}
    write_status(home, status)
    stop = threading.Event()

    def node() -> None:  # a node that publishes once the profile is in the store
        while not stop.is_set():
            with Store.open(home) as s:
                published = 5 if s.counts()["profile"] else 4
            write_status(home, {**status, "updated_ms": int(time.time() * 1000),
                                "counters": {"published": published}})
            time.sleep(0.1)

    t = threading.Thread(target=node)
    t.start()
    try:
        data = json.loads(run(home, "--json", "profile", "set", "--name", "Ada", "--wait", "20"))
    finally:
        stop.set()
        t.join()
    assert data["via"] == "local-node" and data["confirmed_by"] == ["local-node"]


@pytest.mark.timeout(240)
def test_a_profile_set_beside_a_running_node_reaches_its_peer(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    key(10).save(a / "keys" / "identity.pem")
    with node_processes() as start:
        node_a = start(a, "node")
        node_b = start(b, "node", "--bootstrap", node_a.addr())
        node_b.addr()
        poll(lambda: node_a.peers() >= 1, 60, "the nodes to connect")
        out = json.loads(ratchet(a, "--json", "profile", "set", "--name", "Ada", "--team", "Rockets").stdout)
        assert out["confirmed_by"] == ["local-node"]

        def arrived() -> bool:
            with Store.open(b) as s:
                got = s.current_profiles().get(key(10).public)
            return got is not None and got.name == "Ada" and got.team == "Rockets"

        poll(arrived, 60, "the profile to reach the second node")


def test_ratchet_show_prints_a_profile_and_whether_it_is_current(home: Path) -> None:
    run(home, "profile", "set", "--name", "Ada")
    first = json.loads(run(home, "--json", "profile", "show"))["id"]
    run(home, "profile", "set", "--name", "Ada L.")
    data = json.loads(run(home, "--json", "show", first[:12]))
    assert (data["type"], data["name"], data["current"]) == ("profile", "Ada", False)
    assert "superseded by a newer profile" in run(home, "show", first)


def test_export_carries_profiles_and_import_restores_them(home: Path, tmp_path: Path) -> None:
    from chain.builders import make_arena

    arena, ref = make_arena(key(0), [key(1).public], quorum=1)
    with Store.open(home) as s:
        s.add(ref)
        s.add(arena)
    run(home, "profile", "set", "--name", "Ada", "--team", "Rockets")
    stream = tmp_path / "chain.bin"
    run(home, "export", "-o", str(stream))
    other = tmp_path / "elsewhere"
    assert json.loads(run(other, "--json", "import", str(stream)))["added"] == 3
    with Store.open(other) as s:
        assert s.current_profiles()[key(10).public].team == "Rockets"
