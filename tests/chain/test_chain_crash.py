"""Kill-during-write: a writer SIGKILLed at random moments leaves a consistent store.

A child process extends a chain in a loop (blob file, proposal, attestations,
each its own write); the test kills it with SIGKILL at a random moment, reopens
the store, re-validates everything (every row decodes and verifies, every blob
file re-hashes to its id, index tables match, rules hold) and lets the next
child resume from the stored head.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from chain.audit import validate_store
from chain.builders import key, make_arena
from chain.store import Store

KILLS = 6

WRITER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from chain.builders import key, make_arena, make_attestation, make_proposal
    from chain.consensus import state_for
    from chain.store import Store

    home, run = Path(sys.argv[1]), int(sys.argv[2])
    vs = [key(1), key(2), key(3)]
    arena, blob = make_arena(key(0), [v.public for v in vs], quorum=2)
    with Store.open(home) as s:
        s.add(blob)
        s.add(arena)
        parent = state_for(s, arena.id).head  # resume where the last writer died
        print("ready", flush=True)
        for i in range(100_000):  # bounded; the test kills it long before
            size = (i * 7919) % 200_000  # some blobs big enough to be caught mid-write
            script = (b"# run %d step %d\\n" % (run, i)) + b"x" * size
            p, b = make_proposal(key(10), arena, parent, message=f"run {run} step {i}", script=script)
            s.add(b)
            s.add(p)
            for v in vs[:2]:
                s.add(make_attestation(v, p))
            parent = p.id
""")


def test_store_survives_sigkill_at_random_moments(tmp_path: Path) -> None:
    seed = random.randrange(2**32)
    print(f"random seed {seed}")
    rng = random.Random(seed)
    home = tmp_path / "home"
    arena, _ = make_arena(key(0), [key(i).public for i in (1, 2, 3)], quorum=2)
    previous = 0
    for run in range(KILLS):
        child = subprocess.Popen([sys.executable, "-c", WRITER, str(home), str(run)],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            assert child.stdout is not None
            assert child.stdout.readline() == b"ready\n", child.stderr.read().decode() if child.stderr else ""
            time.sleep(rng.uniform(0.05, 0.6))  # the random moment of the crash is the point
            assert child.poll() is None, "the writer ended before it was killed"
            os.kill(child.pid, signal.SIGKILL)
        finally:
            if child.poll() is None:
                child.kill()
            child.wait(timeout=30)
        assert child.returncode == -signal.SIGKILL
        with Store.open(home) as s:
            report = validate_store(s)  # raises on any inconsistency
            state = report.states[arena.id]
            n = len(state.commits)
            assert n >= previous
            # Every commit with its two attestations stored is accepted, and all lie on one line.
            complete = {cid for cid in state.commits if len(s.attestations(arena.id, cid)) == 2}
            assert state.accepted == complete
            assert set(state.lineage(state.head)) == state.accepted
            # At most one commit per crash lacks its votes (the next writer resumes from the
            # accepted head, so it stays a dead end).
            assert n - len(complete) <= run + 1
            for blob_id in (c.proposal.script for c in state.commits.values()):
                if s.has(blob_id):
                    assert s.blob_data(blob_id)  # row present => file present and valid
            previous = n
    assert previous > KILLS, "the writers made no progress"
