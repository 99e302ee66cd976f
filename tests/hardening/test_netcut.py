"""A real network cut: two verifier nodes in their own network namespaces, joined by a veth pair.

The test makes the namespaces itself (`ip netns`, needs root: CI runs as root),
connects the nodes, takes the link down while each side accepts a different
commit, brings it back up, and requires both to converge on one head. Unlike
the loopback split test, the nodes' connections are not closed when the
network goes away: they see silence, then the same connections (or new dials)
when it heals.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from chain.builders import key, make_arena
from chain.store import Store

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "node"))
from p2p_helpers import CHECK, node_processes, poll, ratchet  # noqa: E402

pytestmark = [
    pytest.mark.timeout(300),
    pytest.mark.skipif(os.geteuid() != 0 or shutil.which("ip") is None,
                       reason="network namespaces need root and iproute2 (CI runs as root; test.sh installs it)"),
]


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


@contextmanager
def two_hosts() -> Iterator[tuple[str, str, str, str, str]]:
    """Namespaces A and B joined by a veth pair; yields (ns_a, ns_b, ip_a, ip_b, dev_a)."""
    tag = f"{os.getpid() % 100000}"
    ns_a, ns_b, dev_a, dev_b = f"rta{tag}", f"rtb{tag}", f"rva{tag}", f"rvb{tag}"
    subnet = f"10.{200 + os.getpid() % 50}.{os.getpid() % 250}"
    ip_a, ip_b = f"{subnet}.1", f"{subnet}.2"
    try:
        try:
            _ip("netns", "add", ns_a)
        except subprocess.CalledProcessError as e:  # e.g. a container without CAP_SYS_ADMIN
            pytest.skip(f"cannot create a network namespace here: {e.stderr.decode(errors='replace').strip()}")
        _ip("netns", "add", ns_b)
        _ip("link", "add", dev_a, "type", "veth", "peer", "name", dev_b)
        _ip("link", "set", dev_a, "netns", ns_a)
        _ip("link", "set", dev_b, "netns", ns_b)
        for ns, dev, addr in ((ns_a, dev_a, ip_a), (ns_b, dev_b, ip_b)):
            _ip("-n", ns, "addr", "add", f"{addr}/24", "dev", dev)
            _ip("-n", ns, "link", "set", dev, "up")
            _ip("-n", ns, "link", "set", "lo", "up")
        yield ns_a, ns_b, ip_a, ip_b, dev_a
    finally:
        for ns in (ns_a, ns_b):  # deleting a namespace deletes its end of the veth pair too
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)


def _heads(homes: list[Path]) -> list[str]:
    from chain.consensus import state_for

    out = []
    for home in homes:
        with Store.open(home) as store:
            (arena,) = store.arenas()
            out.append(state_for(store, arena.id).head.hex())
    return out


def _script(root: Path, name: str) -> Path:
    path = root / name
    path.write_text(f"# reference train.py\nLR = 2e-3\n# {name}\n# verdict: improves\n")
    return path


def test_a_real_network_cut_heals_to_one_head(tmp_path: Path) -> None:
    v1, v2 = tmp_path / "v1", tmp_path / "v2"
    arena, ref = make_arena(key(0), [key(1).public, key(2).public], quorum=1, name="netcut")
    for i, home in ((1, v1), (2, v2)):
        key(i).save(home / "keys" / "identity.pem")
        with Store.open(home) as store:
            store.add(arena)
            store.add(ref)
    with two_hosts() as (ns_a, ns_b, ip_a, ip_b, dev_a), node_processes() as start:
        a = start(v1, "verify", "--check-with", CHECK, "--listen", ip_a,
                  prefix=["ip", "netns", "exec", ns_a])
        addr_a = a.addr()
        assert f"/ip4/{ip_a}/" in addr_a
        b = start(v2, "verify", "--check-with", CHECK, "--listen", ip_b, "--bootstrap", addr_a,
                  prefix=["ip", "netns", "exec", ns_b])
        poll(lambda: a.peers() == 1 and b.peers() == 1, 90, "the two hosts to connect")

        _ip("-n", ns_a, "link", "set", dev_a, "down")  # the cut: no RST, no FIN, just silence
        pa = json.loads(ratchet(v1, "--json", "propose", str(_script(tmp_path, "a.py")),
                                "-m", "left", "--wait", "30").stdout)["proposal"]
        pb = json.loads(ratchet(v2, "--json", "propose", str(_script(tmp_path, "b.py")),
                                "-m", "right", "--wait", "30").stdout)["proposal"]
        poll(lambda: _heads([v1, v2]) == [pa, pb], 120, "each side to accept its own commit", 0.5)
        time.sleep(3)
        assert _heads([v1, v2]) == [pa, pb]  # still apart: nothing crosses the cut

        _ip("-n", ns_a, "link", "set", dev_a, "up")  # heal
        expected = min(pa, pb)  # equal gain and height: the smaller id wins
        poll(lambda: _heads([v1, v2]) == [expected] * 2, 180, "one head on both sides after the heal", 0.5)
        for home in (v1, v2):  # both hold both commits
            with Store.open(home) as store:
                assert store.has(bytes.fromhex(pa)) and store.has(bytes.fromhex(pb))
