"""The node's long-running roles and what their commands call.

- runner.run_role: asyncio host loop + trio network (bridge), signals, clean shutdown.
- verifier.Verifier: the verifier's queue and parallel workers; pending_checks orders it.
- propose: build a proposal on the head and publish it (through a local node or briefly via peers).
- status.collect: what `ratchet status` shows.
- fakecheck: scripted verdicts for network tests and benchmarks (never a real check).
"""
