"""Pure parts of the p2p layer: wire messages, peer scores and limits, discovery settings, topics."""

from __future__ import annotations

import json
import os
import pkgutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

import node.p2p
from chain.builders import key, make_arena
from node.p2p import wire
from node.p2p.discovery import ConfigError, bootstrap_addrs, merge_bootstrap, read_config
from node.p2p.gossip import parse_topic, topic
from node.p2p.host import AddressError, dialable, local_ips
from node.p2p.peers import Limits, PeerBook
from node.p2p.statusfile import FRESH_STATUS_S, STATUS_FILE, local_node, wait_for, write_status

PEER_A = "/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWHyTnRMMUi77KabLPKsvHbKPtC4zJxVQHcNcjhni2LMoF"
PEER_B = "/ip4/10.0.0.2/tcp/4001/p2p/12D3KooWNYZM7bxDVdtpGB38o18VkoiCBDio7ekMCCPK7JMF2JAt"


def test_requests_decode_only_when_well_formed() -> None:
    ids = [bytes([i]) * 32 for i in range(3)]
    assert wire.decode_request(wire.encode_request("get", ids)) == ("get", ids)
    assert wire.decode_request(wire.encode_request("inv", ids[0])) == ("inv", ids[0])
    assert wire.decode_request(wire.encode_request("arenas", b"")) == ("arenas", b"")
    bad = [
        wire.pack(["get", [b"x" * 31]]),  # short id
        wire.pack(["get", [ids[0]] * (wire.MAX_FETCH_IDS + 1)]),  # too many
        wire.pack(["delete", ids[0]]),  # unknown kind
        wire.pack(["arenas", b"x"]),
        wire.pack({"get": 1}),
        b"\xc1",
        b"",
        wire.pack(["inv", 1.5]),
    ]
    for data in bad:
        with pytest.raises(wire.WireError):
            wire.decode_request(data)


def test_gossip_messages_are_checked_field_by_field() -> None:
    a, h = b"\x01" * 32, b"\x02" * 32
    assert wire.decode_gossip(wire.encode_gossip_head(a, h, 7)) == ("head", (a, h, 7))
    assert wire.decode_gossip(wire.encode_gossip_object(b"abc")) == ("object", b"abc")
    for data in (
        wire.pack(["head", [a, h, -1]]),
        wire.pack(["head", [a, h]]),
        wire.pack(["object", "text"]),
        wire.pack(["other", b""]),
        wire.pack(["object", b"x" * (wire.MAX_GOSSIP_BYTES + 1)]),
    ):
        with pytest.raises(wire.WireError):
            wire.decode_gossip(data)


def test_topics_round_trip_and_junk_is_not_a_topic() -> None:
    arena = b"\xab" * 32
    assert parse_topic(topic(arena, "heads")) == (arena, "heads")
    for junk in ("/ratchet/1/zz/heads", "/ratchet/2/" + "ab" * 32 + "/heads", "/ratchet/1/abab/heads",
                 "/ratchet/1/" + "ab" * 32 + "/blobs"):
        assert parse_topic(junk) is None


def test_one_invalid_message_bans_a_peer_and_a_flood_ends_in_a_ban() -> None:
    now = [0.0]
    banned: list[str] = []
    book = PeerBook(Limits(peer_rate=10, peer_burst=10, ban_s=60),
                    on_ban=lambda p, why: banned.append(p), clock=lambda: now[0])
    assert book.invalid("liar", "bad signature")
    assert book.is_banned("liar") and banned == ["liar"]
    now[0] = 61.0
    assert not book.is_banned("liar")  # bans expire
    results = [book.allow_peer("flooder") for _ in range(40)]
    assert results[:10] == [True] * 10 and not any(results[10:30])
    assert book.is_banned("flooder")
    book.reward("good")
    assert book.summary()["good"]["score"] > 0


def test_key_rate_limit_refills_over_time() -> None:
    now = [0.0]
    book = PeerBook(Limits(key_rate=1, key_burst=2), clock=lambda: now[0])
    k = b"\x05" * 32
    assert [book.allow_key(k) for _ in range(3)] == [True, True, False]
    now[0] = 1.0
    assert book.allow_key(k)
    assert book.allow_key(b"\x06" * 32)  # another key has its own budget


def test_config_file_and_bootstrap_sources(tmp_path: Path) -> None:
    assert read_config(tmp_path).bootstrap == ()
    (tmp_path / "node.toml").write_text(f'[network]\nbootstrap = ["{PEER_B}"]\nport = 4001\n')
    cfg = read_config(tmp_path)
    assert cfg.port == 4001
    merged = merge_bootstrap([PEER_A], cfg)
    assert merged == (PEER_A, PEER_B)
    with pytest.raises(AddressError):
        merge_bootstrap(["/ip4/1.2.3.4/tcp/1"], cfg)  # no /p2p/ part
    arena, _ = make_arena(key(0), [key(1).public], 1)
    arena = arena.replace(bootstrap=[PEER_A, "garbage"])  # unsigned copy: only the field matters
    own = PEER_B.rsplit("/p2p/", 1)[1]
    assert bootstrap_addrs(merged, [arena], own_peer_id=own) == [PEER_A]
    (tmp_path / "node.toml").write_text("[network]\nport = 'x'\n")
    with pytest.raises(ConfigError, match="port"):
        read_config(tmp_path)


def test_wildcard_addresses_become_dialable_ones() -> None:
    ips = local_ips()
    assert ips[-1] == "127.0.0.1" and "0.0.0.0" not in ips
    assert dialable("/ip4/0.0.0.0/tcp/4001/p2p/Qm", ["10.0.0.5", "127.0.0.1"]) == [
        "/ip4/10.0.0.5/tcp/4001/p2p/Qm", "/ip4/127.0.0.1/tcp/4001/p2p/Qm"]
    assert dialable(PEER_A) == [PEER_A]


def test_the_p2p_layer_imports_nothing_of_research_or_roles() -> None:
    """The transport sits below what uses it: importing every p2p module pulls in no research or roles."""
    modules = [f"node.p2p.{m.name}" for m in pkgutil.iter_modules(node.p2p.__path__)]
    code = f"import importlib, json, sys\nfor m in {modules!r}: importlib.import_module(m)\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    loaded = json.loads(out.stdout)
    assert "node.p2p.network" in loaded and "node.p2p.claimgossip" in loaded
    assert [m for m in loaded if m.startswith(("node.research", "node.roles", "node.commands"))] == []


def test_the_status_file_names_a_node_only_while_it_is_fresh_and_alive(tmp_path: Path) -> None:
    assert local_node(tmp_path) is None  # no file
    status = {"pid": os.getpid(), "updated_ms": int(time.time() * 1000), "addrs": ["/ip4/127.0.0.1/tcp/1"]}
    write_status(tmp_path, status)
    assert local_node(tmp_path) == status and not list((tmp_path / "p2p").glob("*.tmp"))
    assert wait_for(tmp_path, lambda s: s["addrs"] == status["addrs"], 5) == status
    assert wait_for(tmp_path, lambda s: False, 60, gone=lambda: True) is None  # at once, not in 60 s
    write_status(tmp_path, {**status, "updated_ms": status["updated_ms"] - int(FRESH_STATUS_S * 1000) - 1000})
    assert local_node(tmp_path) is None  # stale: the node is gone or hung
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True, timeout=60)
    write_status(tmp_path, {**status, "pid": int(dead.stdout)})
    assert local_node(tmp_path) is None  # fresh, but its process has exited
    (tmp_path / STATUS_FILE).write_text("{half a fi")
    assert local_node(tmp_path) is None
