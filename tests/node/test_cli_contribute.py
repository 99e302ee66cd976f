"""`ratchet contribute`'s network flags: bad input is a usage error before anything starts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from chain.store import Store

CLI = [sys.executable, "-c", "from node.cli import main; main()"]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("flag", ["--bootstrap=garbage", "--bootstrap=/ip4/127.0.0.1/tcp/4001",
                                  "--listen=not-an-address"])
def test_bad_network_flags_are_refused_before_a_node_starts(tmp_path: Path, flag: str) -> None:
    home = tmp_path / "home"
    for args in (["keys", "new"], ["arena", "init", "tiny"]):
        subprocess.run([*CLI, "--home", str(home), *args], check=True, capture_output=True, timeout=60)
    with Store.open(home) as store:
        before = store.counts()
    r = subprocess.run([*CLI, "--home", str(home), "contribute", flag, "--max-experiments", "1"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "Invalid value" in r.stderr and flag.split("=", 1)[0].lstrip("-") in r.stderr
    assert not (home / "logs" / "contribute-node.log").exists()  # no node was started
    with Store.open(home) as store:
        assert store.counts() == before
