"""Real `ratchet node` / `ratchet verify` / `ratchet propose` / `ratchet status` processes on loopback.

Verifiers run with the scripted check (node.roles.fakecheck): the verdict is named in
the candidate script, so these tests exercise the network and the roles, not training.
Every process is stopped (SIGTERM, then SIGKILL) when a test ends, pass or fail.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
from p2p_helpers import CHECK, node_processes, poll, ratchet, setup_homes, small_chain

from chain.builders import key, make_arena
from chain.store import Store

pytestmark = [pytest.mark.timeout(400), pytest.mark.slow]
LIAR = "node.roles.fakecheck:liar"


def _status(home: Path) -> dict:  # type: ignore[type-arg]
    return json.loads(ratchet(home, "--json", "status").stdout)


def _heads(homes: list[Path]) -> list[str]:
    """Each home's head, read from its store (cheaper than a `ratchet status` process per poll)."""
    from chain.consensus import state_for

    out = []
    for home in homes:
        with Store.open(home) as store:
            arenas = store.arenas()
            out.append(state_for(store, arenas[0].id).head.hex() if arenas else "")
    return out


def _script(root: Path, name: str, verdict: str) -> Path:
    path = root / name
    path.write_text(f"# reference train.py\nLR = 2e-3\n# {name}\n# verdict: {verdict}\n")
    return path


def test_quorum_accepts_on_every_node_and_a_lying_verifier_changes_nothing(tmp_path: Path) -> None:
    """Relay + 3 verifiers (quorum 2; the third always lies) + an offline node that catches up.

    The first proposal goes through the node running on the author's home, the
    second through a short-lived node of `ratchet propose` itself.
    """
    h = setup_homes(tmp_path, verifiers=3, quorum=2, others=2)
    relay_home, late_home = h["others"]
    author = tmp_path / "author"  # holds only a key: propose syncs the arena first
    key(20).save(author / "keys" / "identity.pem")
    with node_processes() as start:
        relay = start(relay_home, "node")
        addr = relay.addr()
        late = start(late_home, "node", "--bootstrap", addr)
        # Honest checks take 2 s, the liar answers at once: its vote is always in before
        # a decision (a verifier skips proposals already decided), so it is really tested.
        checks = [(CHECK, "2"), (CHECK, "2"), (LIAR, "0")]
        verifiers = [start(v, "verify", "--bootstrap", addr, "--check-with", c,
                           env={"RATCHET_FAKE_CHECK_S": pause})
                     for v, (c, pause) in zip(h["verifiers"], checks, strict=True)]
        poll(lambda: relay.peers() == 4, 120, "4 peers on the relay")
        assert late.stop(signal.SIGINT) == 0  # goes offline, cleanly
        assert "stopped (SIGINT)" in late.output()

        good = ratchet(relay_home, "--json", "propose", str(_script(tmp_path, "good.py", "improves")),
                       "-m", "good change", "--wait", "90")
        sent = json.loads(good.stdout)
        assert sent["via"] == "local-node" and sent["confirmed_by"]
        good_id = sent["proposal"]
        everyone = [relay_home, *h["verifiers"]]
        poll(lambda: _heads(everyone) == [good_id] * 4, 150, "the good proposal accepted everywhere", 0.5)

        bad = ratchet(author, "--json", "propose", str(_script(tmp_path, "bad.py", "no_gain")),
                      "-m", "bad change", "--bootstrap", addr, "--wait", "90")
        sent = json.loads(bad.stdout)
        assert sent["via"] == "peers" and sent["parent"] == good_id and sent["confirmed_by"]
        bad_id = sent["proposal"]

        def rejected() -> bool:
            with Store.open(relay_home) as store:
                from chain.consensus import state_for

                info = state_for(store, h["arena"].id).commits.get(bytes.fromhex(bad_id))
                return info is not None and info.status == "rejected"

        poll(rejected, 150, "the bad proposal rejected", 0.5)
        assert _heads(everyone) == [good_id] * 4
        def liar_votes() -> list[str] | None:
            from chain.consensus import state_for

            with Store.open(relay_home) as store:
                commits = state_for(store, h["arena"].id).commits
                votes = [commits[bytes.fromhex(p)].votes.get(key(3).public) for p in (good_id, bad_id)]
            return votes if all(votes) else None

        # the liar voted on both, and lost both times
        assert poll(liar_votes, 60, "the liar's votes", 0.5) == ["no_gain", "improves"]

        late = start(late_home, "node", "--bootstrap", addr)  # back online: catches up
        poll(lambda: _heads([late_home]) == [good_id], 150, "the offline node to catch up", 0.5)
        # the relay sees all four again (the late node's reconnect may still be settling)
        def relay_status() -> dict | None:
            status = _status(relay_home)
            return status if len(status["node"]["peers"]) >= 4 else None

        status = poll(relay_status, 60, "4 peers on the relay after the restart", 0.5)
        assert status["node"]["role"] == "node"
        v_status = _status(h["verifiers"][0])["node"]["verifier"]
        assert v_status["checked"] == 2 and v_status["queue"] == 0
        for v in verifiers:
            assert v.stop(signal.SIGTERM) == 0
            assert "stopped (SIGTERM)" in v.output()


def test_a_split_network_heals_to_one_head(tmp_path: Path) -> None:
    """Two verifiers (quorum 1) each accept a different first commit while apart; a node
    connecting both halves makes every node agree on one head."""
    v1, v2, author = tmp_path / "v1", tmp_path / "v2", tmp_path / "bridge"
    arena, ref = make_arena(key(0), [key(1).public, key(2).public], quorum=1, name="split")
    for i, home in enumerate((v1, v2, author)):
        key([1, 2, 20][i]).save(home / "keys" / "identity.pem")
        with Store.open(home) as store:
            store.add(arena)
            store.add(ref)
    with node_processes() as start:
        a = start(v1, "verify", "--check-with", CHECK)
        b = start(v2, "verify", "--check-with", CHECK)
        a.addr(), b.addr()
        pa = json.loads(ratchet(v1, "--json", "propose", str(_script(tmp_path, "a.py", "improves")),
                                "-m", "left", "--wait", "90").stdout)["proposal"]
        pb = json.loads(ratchet(v2, "--json", "propose", str(_script(tmp_path, "b.py", "improves")),
                                "-m", "right", "--wait", "90").stdout)["proposal"]
        poll(lambda: _heads([v1, v2]) == [pa, pb], 150, "each half to accept its own commit", 0.5)
        start(author, "node", "--bootstrap", a.addr(), "--bootstrap", b.addr())
        expected = min(pa, pb)  # equal gain and height: the smaller id wins
        poll(lambda: _heads([v1, v2, author]) == [expected] * 3, 150, "one head everywhere", 0.5)


def test_sigkill_mid_sync_leaves_a_consistent_store_that_resumes(tmp_path: Path) -> None:
    from chain.audit import validate_store
    from chain.consensus import state_for

    arena, blobs, props, atts = small_chain(600)
    source, fresh = tmp_path / "source", tmp_path / "fresh"
    with Store.open(source) as store:
        for obj in [arena, *blobs, *props, *atts]:
            store.add(obj)
        total = len(store.inventory(arena.id))
    with node_processes() as start:
        addr = start(source, "node").addr()
        victim = start(fresh, "node", "--bootstrap", addr)

        def partly() -> bool:
            with Store.open(fresh) as store:
                return 50 < sum(store.counts().values()) < total

        poll(partly, 150, "the sync to be under way", 0.05)
        victim.stop(signal.SIGKILL)
        with Store.open(fresh) as store:
            held = sum(store.counts().values())
            report = validate_store(store, workers=0)  # raises on any inconsistency
            assert report.objects == held < total
        start(fresh, "node", "--bootstrap", addr)

        def complete() -> bool:
            with Store.open(fresh) as store:
                return len(store.inventory(arena.id)) == total

        poll(complete, 150, "the restarted node to finish syncing", 0.5)
        with Store.open(fresh) as store:
            assert state_for(store, arena.id).head == props[-1].id
