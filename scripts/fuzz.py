#!/usr/bin/env python3
"""Fuzz every decoder of untrusted bytes with mutated valid encodings; print a table.

Entry points: chain.objects.decode, chain.objects.decode_stream, Store.add_encoded
(the store on a tmpfs when /dev/shm exists, so blob fsyncs do not dominate), the
wire decoders of node/p2p and its gossip validator (tests/hardening/wirefuzz.py).
Every input must end in a valid object or a named error (a ChainError, or the
wire's own named errors); anything else is a crash, anything over 2 s a hang.
The store is re-validated in full (chain.audit) at the end.

    python scripts/fuzz.py                 # 100,000 inputs per entry point
    python scripts/fuzz.py --quick         # 3,000 per entry point
    python scripts/fuzz.py -n 20000 --seed 7 --entry decode
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "hardening"))

import wirefuzz  # noqa: E402
from fuzzkit import Corpus, Mutator, build_corpus  # noqa: E402
from fuzzoracle import (  # noqa: E402
    Entry,
    Tally,
    decode_entry,
    describe,
    feed,
    open_store_oracle,
    stream_entry,
)

from chain.audit import validate_store  # noqa: E402
from chain.encoding import pack  # noqa: E402

WRAP_SHARE = 0.4  # of inputs to an entry with `wrap`: mutated chain objects packed its way


def run_entry(entry: Entry, n: int, rng: random.Random, corpus: Corpus, progress: bool) -> Tally:
    tally = Tally(entry.name)
    mutator = Mutator(rng, corpus)
    mutator.pool = mutator.pool + entry.seeds  # splices draw from this entry's messages too
    pool = corpus.encodings()
    t0 = time.perf_counter()
    for i in range(n):
        if i < len(entry.seeds):  # the valid seeds first, once each
            data, ops = entry.seeds[i], ["seed"]
        elif entry.wrap is not None and rng.random() < WRAP_SHARE:
            inner = [mutator.mutate(rng.choice(pool)) for _ in range(rng.randint(1, 3))]
            data, ops = entry.wrap(inner), ["wrapped", *mutator.last_ops]
        else:
            data = mutator.mutate(rng.choice(entry.seeds))
            ops = mutator.last_ops
        feed(entry.name, entry.fn, data, tally, ops, named=entry.named)
        if progress and i and i % 10_000 == 0:
            print(f"  {entry.name}: {i} inputs, {i / (time.perf_counter() - t0):,.0f}/s", file=sys.stderr)
    tally.elapsed_s = time.perf_counter() - t0
    return tally


def print_table(tallies: list[Tally]) -> None:
    print(f"{'entry point':<26}{'inputs':>9}{'accepted':>10}{'rejected':>10}{'crashes':>9}{'hangs':>7}"
          f"{'inputs/s':>10}{'slowest ms':>12}")
    for t in tallies:
        rejected = sum(t.rejections.values())
        print(f"{t.entry:<26}{t.inputs:>9,}{t.accepted:>10,}{rejected:>10,}{t.crashes:>9}{t.hangs:>7}"
              f"{t.inputs / t.elapsed_s:>10,.0f}{t.slowest_s * 1000:>12.1f}")
    print()
    for t in tallies:
        print(f"{t.entry} rejections by error class:")
        for cls, count in t.rejections.most_common():
            print(f"    {cls:<28}{count:>9,}")
    for t in tallies:
        for f in t.findings[:10]:
            print(f"FINDING {f.entry} {f.kind}: {f.detail}\n    ops={f.ops}\n    input={describe(f.data)}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=100_000, help="inputs per entry point")
    ap.add_argument("--quick", action="store_true", help="3,000 inputs per entry point")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--entry", action="append", help="only these entry points (repeatable)")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    ap.add_argument("--progress", action="store_true")
    args = ap.parse_args(argv)
    n = 3_000 if args.quick else args.n
    seed = args.seed if args.seed is not None else random.randrange(2**32)
    print(f"seed {seed}, {n:,} inputs per entry point")
    corpus = build_corpus()
    shm = Path("/dev/shm")
    tmp_root = shm if shm.is_dir() else None
    tallies: list[Tally] = []
    with tempfile.TemporaryDirectory(prefix="ratchet-fuzz-", dir=tmp_root) as tmp:
        oracle = open_store_oracle(Path(tmp) / "home", corpus.preload)
        entries: list[Entry] = [
            Entry("chain.objects.decode", decode_entry, corpus.encodings()),
            Entry("chain.objects.decode_stream", stream_entry, corpus.streams(),
                  wrap=lambda encs: b"".join(pack(e) for e in encs)),
            Entry("Store.add_encoded", oracle, corpus.encodings()),
            *wirefuzz.entries(corpus, Path(tmp)),
        ]
        for entry in entries:
            if args.entry and entry.name not in args.entry:
                continue
            rng = random.Random(f"{seed}:{entry.name}")
            tallies.append(run_entry(entry, n, rng, corpus, args.progress))
        oracle.check_files()
        report = validate_store(oracle.store, workers=0)
        oracle.close()
        oracle.store.close()
    print_table(tallies)
    print(f"\nstore after fuzzing: {report.objects} objects, full re-validation passed")
    if args.json:
        args.json.write_text(json.dumps([
            {"entry": t.entry, "inputs": t.inputs, "accepted": t.accepted, "rejections": dict(t.rejections),
             "crashes": t.crashes, "hangs": t.hangs, "inputs_per_s": t.inputs / t.elapsed_s,
             "slowest_ms": t.slowest_s * 1000, "seed": seed} for t in tallies], indent=2))
    return 1 if any(t.findings for t in tallies) else 0


if __name__ == "__main__":
    sys.exit(main())
