#!/usr/bin/env python3
"""Benchmark the chain core: encoding, decoding, signatures, store inserts, full validation.

Every figure is a median over --reps repetitions, next to a baseline measured
in the same run on the same data (raw msgpack, OpenSSL Ed25519, plain SQLite,
a trusted read), so the ratio column stays meaningful on a noisy machine.

    python scripts/bench_chain.py                 # the table
    python scripts/bench_chain.py --json          # machine-readable
    python scripts/bench_chain.py --commits 2000  # a smaller validation chain
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import msgpack
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from chain.audit import validate_store
from chain.builders import key, make_arena, make_attestation, make_proposal
from chain.consensus import compute_state, state_for
from chain.keys import domain, verify, verify_batch
from chain.objects import Arena, ChainObject, decode
from chain.store import Store

VERIFIERS = 3


@dataclass
class Row:
    name: str
    value: float
    unit: str
    baseline: str = ""
    baseline_value: float | None = None
    ratio: float | None = None  # value / baseline_value
    note: str = ""


def cpu_seconds() -> float:
    """User + system CPU of this process and of its finished children (the worker processes)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def median_time(fn: Callable[[], Any], reps: int) -> float:
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def build_chain(commits: int) -> tuple[Arena, list[ChainObject]]:
    """A linear chain: each commit a script blob, a proposal and one attestation per verifier."""
    verifiers = [key(1 + i) for i in range(VERIFIERS)]
    arena, script = make_arena(key(0), [v.public for v in verifiers], quorum=VERIFIERS)
    objs: list[ChainObject] = [script, arena]
    parent = arena.id
    for i in range(commits):
        p, blob = make_proposal(key(10 + i % 7), arena, parent, message=f"commit {i}: tweak LR",
                                timestamp=1_700_000_000_000 + i)
        objs += [blob, p] + [make_attestation(v, p, gain_ubpb=100 + i % 13) for v in verifiers]
        parent = p.id
    return arena, objs


def rate_row(name: str, count: int, secs: float, baseline: str, base_secs: float, note: str = "") -> Row:
    ours, base = count / secs, count / base_secs
    return Row(name, ours, "/s", baseline, base, ours / base, note)


def bench_objects(objs: list[ChainObject], reps: int) -> list[Row]:
    encoded = [o.encode() for o in objs]
    values = [(type(o), o._values) for o in objs]  # noqa: SLF001 - the benchmark rebuilds objects
    wire = [[o.TYPE, o.VERSION, *o._values] for o in objs]  # noqa: SLF001
    n = len(objs)
    rows = [
        rate_row("objects encoded (build + validate + pack)", n,
                 median_time(lambda: [cls(*vals) for cls, vals in values], reps),
                 "msgpack.packb", median_time(lambda: [msgpack.packb(w) for w in wire], reps)),
        rate_row("objects decoded (structure, no signatures)", n,
                 median_time(lambda: [decode(e, verify=False) for e in encoded], reps),
                 "msgpack.unpackb", median_time(lambda: [msgpack.unpackb(e) for e in encoded], reps)),
        rate_row("objects decoded (full, with signatures)", n,
                 median_time(lambda: [decode(e) for e in encoded], reps),
                 "msgpack.unpackb", median_time(lambda: [msgpack.unpackb(e) for e in encoded], reps)),
    ]
    claims = [c[1:] for o in objs for c in o.signature_claims()]
    m = len(claims)
    openssl = [(Ed25519PublicKey.from_public_bytes(pub), sig, domain(t) + msg) for pub, sig, t, msg in claims]

    def ossl() -> None:
        for pk, sig, msg in openssl:
            pk.verify(sig, msg)

    base = median_time(ossl, reps)
    rows.append(rate_row("signatures verified (libsodium, 1 core)", m,
                         median_time(lambda: [verify(*c) for c in claims], reps),
                         "OpenSSL Ed25519 (cryptography)", base))
    size = -(-m // 8)  # 8 even chunks for 2 workers
    chunks = [claims[i : i + size] for i in range(0, m, size)]
    with ProcessPoolExecutor(2) as pool:
        list(pool.map(verify_batch, chunks[:2]))  # start the workers outside the timing
        two = median_time(lambda: list(pool.map(verify_batch, chunks)), reps)
    rows.append(rate_row("signatures verified (libsodium, 2 processes)", m, two,
                         "OpenSSL Ed25519 (cryptography)", base))
    return rows


def bench_inserts(objs: list[ChainObject], reps: int, tmp: Path) -> Row:
    def ours() -> None:
        home = Path(tempfile.mkdtemp(dir=tmp))
        with Store.open(home) as s:
            for o in objs:
                s.add(o)

    def plain() -> None:
        home = Path(tempfile.mkdtemp(dir=tmp))
        db = sqlite3.connect(home / "plain.sqlite3", isolation_level=None)
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")
        db.execute("CREATE TABLE t (id BLOB PRIMARY KEY, data BLOB)")
        for o in objs:
            db.execute("BEGIN IMMEDIATE")
            db.execute("INSERT INTO t VALUES (?, ?)", (o.id, o.encode()))
            db.execute("COMMIT")
        db.close()

    return rate_row("store inserts (Store.add, validated, 1 txn each)", len(objs), median_time(ours, reps),
                    "plain sqlite INSERT (1 txn each)", median_time(plain, reps),
                    "includes signature checks and an fsynced file per blob")


def bench_validation(commits: int, reps: int, workers: int, tmp: Path) -> list[Row]:
    arena, objs = build_chain(commits)
    home = tmp / "validate"
    t = time.perf_counter()
    with Store.open(home) as s:
        for o in objs:
            s.add(o)
    build_s = time.perf_counter() - t
    reports, cpu = [], []
    with Store.open(home) as s:
        for _ in range(reps):
            before = cpu_seconds()
            r = validate_store(s, workers=workers)
            cpu.append(cpu_seconds() - before)
            assert len(r.states[arena.id].accepted) == commits, "the benchmark chain must be fully accepted"
            reports.append(r)
        trusted = median_time(lambda: state_for(s, arena.id), reps)
        props, atts = s.proposals(arena.id), s.attestations(arena.id)
        state_s = median_time(lambda: compute_state(arena, props, atts), reps)
    total = statistics.median(r.total_s for r in reports)
    label = f"{commits:,} commits x {VERIFIERS} attestations"
    rows = [
        Row(f"full validation of {label}", total, "s", "trusted load + compute_state (state_for)",
            trusted, total / trusted,
            f"{reports[0].objects:,} objects, {reports[0].signatures:,} signatures, {workers} worker processes"),
    ]
    for part in ("load_s", "decode_s", "rules_s", "verify_s"):
        rows.append(Row(f"  of which {part[:-2]}", statistics.median(getattr(r, part) for r in reports), "s"))
    rows.append(Row("  CPU time (this process + workers)", statistics.median(cpu), "s",
                    note="divided by 2 cores: the floor for the wall time"))
    rows.append(Row(f"compute_state alone ({label})", state_s, "s"))
    rows.append(Row(f"building that store ({len(objs):,} x Store.add)", build_s, "s", note="once"))
    return rows


def render(rows: list[Row]) -> str:
    def fmt(v: float | None, unit: str = "") -> str:
        if v is None:
            return ""
        if unit == "/s":
            return f"{v:,.0f}/s"
        if unit == "s":
            return f"{v:.3f} s"
        return f"{v:.2f}"

    table = [("measurement", "median", "baseline", "baseline median", "ratio", "note")]
    for r in rows:
        table.append((r.name, fmt(r.value, r.unit), r.baseline, fmt(r.baseline_value, r.unit),
                      "" if r.ratio is None else f"{r.ratio:.2f}x", r.note))
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--commits", type=int, default=10_000, help="commits in the validation chain")
    ap.add_argument("--sample", type=int, default=400, help="commits in the micro-benchmark sample")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2, help="processes checking signatures in validation")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    _, sample = build_chain(args.sample)
    with tempfile.TemporaryDirectory(prefix="bench-chain-") as d:
        tmp = Path(d)
        rows = bench_objects(sample, max(args.reps, 5))
        rows.append(bench_inserts(sample[: 5 * min(args.sample, 200)], args.reps, tmp))
        rows += bench_validation(args.commits, args.reps, args.workers, tmp)
    env = {"python": platform.python_version(), "cpus": os.cpu_count(), "machine": platform.machine(),
           "sample_objects": len(sample), "reps": args.reps}
    if args.json:
        json.dump({"env": env, "rows": [asdict(r) for r in rows]}, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(f"chain benchmark: python {env['python']}, {env['cpus']} cpus, medians of {args.reps}+ runs")
        print(render(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
