"""The demo's built-in verifier worker, for a shared store when no network layer is installed.

`python -m node.research.demo_verifier --store HOME --key KEYFILE` checks, one
at a time and oldest first, every proposal of the store's arenas that this key
has not attested yet, with verify.attest.verify_proposal (the verifier's own
seeds, the sandbox, its statistics), and stores the signed attestation. The
network's `ratchet verify` does the same job over libp2p; this worker only
lets the demo run on one machine without it. Stops cleanly on SIGTERM/SIGINT
between checks.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from chain.errors import ChainError
from chain.keys import SigningKey
from chain.store import Store


def pending_for(store: Store, key: SigningKey) -> list[Any]:
    """Proposals in the arenas this key verifies, without an attestation from it, oldest first."""
    out = []
    for arena in store.arenas():
        if key.public not in arena.verifiers:
            continue
        done = {a.proposal for a in store.attestations(arena.id) if a.verifier == key.public}
        out.extend(p for p in store.proposals(arena.id) if p.id not in done)
    return sorted(out, key=lambda p: (p.timestamp, p.id))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", type=Path, required=True)
    ap.add_argument("--key", type=Path, required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--poll", type=float, default=1.0)
    ap.add_argument("--unsafe-no-sandbox", action="store_true")
    args = ap.parse_args(argv)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    key = SigningKey.load(args.key)
    from verify.attest import verify_proposal

    print(f"verifier {key.public.hex()[:12]} watching {args.store}", flush=True)
    with Store.open(args.store) as store:
        while not stop.is_set():
            todo = pending_for(store, key)
            if not todo:
                stop.wait(args.poll)
                continue
            proposal = todo[0]
            started = time.monotonic()
            print(f"checking {proposal.hex[:12]}: {proposal.message.splitlines()[0][:80]!r}", flush=True)
            att = verify_proposal(key, store, proposal, threads=args.threads,
                                  unsafe_no_sandbox=args.unsafe_no_sandbox)
            if stop.is_set():
                break  # a check cut short by shutdown is not signed
            try:
                store.add(att)
            except ChainError as e:
                print(f"attestation refused by the store: {e}", flush=True)
                continue
            print(f"  {att.verdict} mean gain {att.mean_gain_ubpb:+d} ubpb "
                  f"in {time.monotonic() - started:.0f}s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
