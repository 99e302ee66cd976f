"""The contributor's research loop: what `ratchet contribute` runs unattended.

Where things live:
- knobs.py    parse a script's top-level UPPER_CASE constants and infer how each may move
- mutate.py   Change / Mutation: rewrite only those literals; validity rules; rebase
- search.py   proposers of mutations: a journal-guided bandit and plain random search
- agent.py    the agent proposer: runs a user-named coding-agent command on a working copy
- journal.py  the append-only local journal of every experiment (its file: journalfile)
- localcheck.py  the paired local check against the head (verifier's harness + statistics)
- loop.py     the loop itself: sync head, propose a candidate, check, propose, repeat
- limits.py   resource limits: niceness, hours, pause flag and signals

The `ratchet node` the contributor publishes through, and `ratchet demo`'s
processes, are supervised by node/supervise/.
"""
