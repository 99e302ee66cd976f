"""Faults around the verifier role, with real `ratchet node` / `ratchet verify` processes on loopback.

The check is node.roles.fakecheck:scripted with a pause (RATCHET_FAKE_CHECK_S)
standing in for the training run, so a kill can land in the middle of it:
- a verifier SIGKILLed mid-check restarts, checks again, and its vote counts;
- the only peer of a verifier is SIGKILLed mid-check: the verifier finishes
  offline, and its attestation reaches the network when the peer is back.
Both end with the commit accepted on every node, consistent stores, and one
attestation per verifier (no equivocation from a re-run).

The restarted peer is given the verifiers as bootstrap peers so that it dials
them: py-libp2p 0.8.1 refuses for 60 s to dial a peer whose addresses all
failed once (its swarm's negative peer cache), so verifiers that saw the peer
die would otherwise wait up to a minute before dialing it again (see
/work/notes/hardening_report.md; fix proposed in node/p2p/network.py).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from chain.audit import validate_store
from chain.consensus import state_for
from chain.store import Store

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
from soak import Proc, cli, free_port, wait_for_status, write_config  # noqa: E402

pytestmark = pytest.mark.timeout(180)
CHECK_S = "2.5"


def _wait(pred: Callable[[], bool], timeout: float, what: str) -> None:
    t0 = time.monotonic()
    while time.monotonic() < t0 + timeout:
        if pred():
            print(f"{time.monotonic() - t0:5.1f}s {what}")
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def _in_flight(p: Proc) -> bool:
    st = p.status()
    return bool(st and p.popen is not None and st.get("pid") == p.popen.pid
                and (st.get("verifier") or {}).get("in_flight"))


def _accepted_on(home: Path, arena_id: bytes, pid: bytes) -> bool:
    with Store.open(home) as s:
        if not s.has(pid):
            return False
        return state_for(s, arena_id).commits[pid].status == "accepted"


def test_verifier_faults_mid_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RATCHET_FAKE_CHECK_S", CHECK_S)  # inherited by the verifier processes
    sync = ["--sync-interval", "1"]
    check = ["--check-with", "node.roles.fakecheck:scripted"]
    a = Proc("a", "node", tmp_path / "a", free_port(), ["node", *sync])
    v1 = Proc("v1", "verify", tmp_path / "v1", free_port(), ["verify", *sync, *check])
    v2 = Proc("v2", "verify", tmp_path / "v2", free_port(), ["verify", *sync, *check])
    procs = [a, v1, v2]
    keys = []
    for p in procs:
        p.home.mkdir()
        cli(p.home, "keys", "new")
        keys.append(json.loads(cli(p.home, "--json", "keys", "show"))["public_key"])
    out = json.loads(cli(a.home, "--json", "arena", "init", "tiny", f"--verifier={keys[1]}",
                         f"--verifier={keys[2]}", "--quorum", "2"))
    arena_id = bytes.fromhex(out["id"])
    try:
        write_config(a.home, a.port, [])
        a.start()
        boot = f"/ip4/127.0.0.1/tcp/{a.port}/p2p/{wait_for_status(a)['peer_id']}"
        vboot = []
        for v in (v1, v2):
            write_config(v.home, v.port, [boot])
            v.start()
            vboot.append(f"/ip4/127.0.0.1/tcp/{v.port}/p2p/{wait_for_status(v)['peer_id']}")
        write_config(a.home, a.port, vboot)  # read when a restarts
        _wait(lambda: all(Store.open(v.home).has(arena_id) for v in (v1, v2)), 60, "the arena on the verifiers")

        def propose(n: int) -> bytes:
            script = a.home / f"c{n}.py"
            script.write_text(f"# candidate {n}\n# verdict: improves\nLR = 0.00{n}\n")
            out = json.loads(cli(a.home, "--json", "propose", str(script), "-m", f"candidate {n}", "--wait", "20"))
            return bytes.fromhex(out["proposal"])

        # 1. A verifier SIGKILLed in the middle of its check.
        p1 = propose(1)
        _wait(lambda: _in_flight(v1), 60, "v1 to start checking")
        v1.kill()
        v1.start()
        wait_for_status(v1)
        _wait(lambda: _accepted_on(a.home, arena_id, p1), 90, "the first commit accepted after v1's restart")

        # 2. The only peer of the verifiers SIGKILLed while both are checking.
        p2 = propose(2)
        _wait(lambda: _in_flight(v1) and _in_flight(v2), 60, "both verifiers checking")
        a.kill()
        _wait(lambda: not _in_flight(v1) and not _in_flight(v2), 60, "the checks to finish offline")
        a.start()
        wait_for_status(a)
        _wait(lambda: _accepted_on(a.home, arena_id, p2), 90, "the second commit accepted after a's restart")
        for v in (v1, v2):
            _wait(lambda v=v: _accepted_on(v.home, arena_id, p2), 60, f"{v.name} to hold the verdict")
    finally:
        for p in procs:
            p.stop()
    for p in procs:
        with Store.open(p.home) as s:
            validate_store(s, workers=0)
            atts = s.attestations(arena_id)
            for pid in (p1, p2):
                voters = [x.verifier.hex() for x in atts if x.proposal == pid]
                assert sorted(voters) == sorted(keys[1:]), f"{p.name}: one attestation per verifier on {pid.hex()[:12]}"
            assert state_for(s, arena_id).head == p2
