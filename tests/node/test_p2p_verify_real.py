"""End to end with the real check: a `ratchet verify` process runs verify.attest.verify_proposal
(sandboxed when bubblewrap works here) on a proposal that arrived over the network."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from p2p_helpers import node_processes, poll, ratchet

from chain.builders import key
from chain.consensus import state_for
from chain.store import Store

pytestmark = [pytest.mark.timeout(600), pytest.mark.slow]

# The tiny arena shrunk to seconds per run (as tests/verify does), one seed.
SMALL = {"budget_value": "60000", "wall_cap_s": "600", "train_bytes": "131072", "words": "128",
         "topics": "3", "eval_seq_len": "64", "eval_batch": "16", "eval_rows": "80", "probe_cuts": "1", "seeds": "1",
         "margin_ubpb": "20000"}


def test_a_broken_script_is_checked_by_a_real_verifier_and_rejected_everywhere(tmp_path: Path) -> None:
    from model.arenas import build_arena
    from verify.sandbox import sandbox_available

    arena, ref = build_arena("tiny", key(0), [key(1).public], 1, overrides=SMALL,
                             created_at_ms=1_700_000_000_000)
    verifier, author = tmp_path / "verifier", tmp_path / "author"
    for home, k in ((verifier, key(1)), (author, key(10))):
        k.save(home / "keys" / "identity.pem")
        with Store.open(home) as store:
            store.add(arena)
            store.add(ref)
    script = tmp_path / "train.py"
    script.write_bytes(ref.data.replace(b"def ", b"def def ", 1))  # a syntax error
    unsafe = ["--unsafe-no-sandbox"] if sandbox_available() is not None else []
    with node_processes() as start:
        v = start(verifier, "verify", "--threads", "1", *unsafe)
        sent = json.loads(ratchet(author, "--json", "propose", str(script), "-m", "broken on purpose",
                                  "--bootstrap", v.addr(), "--wait", "120").stdout)
        pid = bytes.fromhex(sent["proposal"])

        def decided() -> str | None:
            with Store.open(author) as store:
                info = state_for(store, arena.id).commits.get(pid)
                return info.status if info is not None and info.status != "pending" else None

        # the author's home has no node: its proposal status arrives when it syncs again
        with node_processes() as start_author:
            start_author(author, "node", "--bootstrap", v.addr())
            assert poll(decided, 480, "the verdict to reach the author", 0.5) == "rejected"
        with Store.open(verifier) as store:
            (att,) = store.attestations(arena.id, pid)
        assert att.verdict.startswith("invalid:") and att.verifier == key(1).public
        assert att.hardware.startswith("cpu:") and att.harness == arena.harness
