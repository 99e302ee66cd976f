"""`ratchet replay ATTESTATION`: run a recorded check again, from what the attestation says.

The attestation names the proposal (and so both scripts and the arena), the
seeds, the compute classes parent and candidate ran at (their token budgets,
verify.compute) and, per seed, the training tokens each run consumed. Replay
runs parent and candidate on those seeds with those budgets, in the sandbox,
checks that each consumed the recorded tokens, and prints the recorded and replayed val_bpb side by side (and the
CPU time, which is this machine's, not the verifier's). With the same thread
count and CPU instruction set the metrics agree bit for bit; across machines
they differ by about 1e-5 to 2e-4 bpb. Exit status 0 when every replayed
metric is within --tolerance of the recorded one.
"""

from __future__ import annotations

from typing import Any

import click

from node.context import Context

DEFAULT_TOLERANCE_UBPB = 300


@click.command()
@click.argument("attestation_id")
@click.option("--threads", type=click.IntRange(1, 256), default=1, show_default=True,
              help="Torch threads per run (a compute arena's verifier runs one per run on two cores).")
@click.option("--tolerance", "tolerance_ubpb", type=click.IntRange(0), default=DEFAULT_TOLERANCE_UBPB,
              show_default=True, help="Largest |recorded - replayed| per run, in micro-bpb.")
@click.option("--unsafe-no-sandbox", is_flag=True, help="Run WITHOUT the sandbox (only for code you trust).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_obj
def replay(ctx: Context, attestation_id: str, threads: int, tolerance_ubpb: int, unsafe_no_sandbox: bool,
           as_json: bool) -> None:
    """Re-run the check an attestation records, with its seeds and token counts."""
    from tqdm import tqdm

    from chain.errors import ChainError
    from chain.metrics import fmt_ubpb, to_ubpb
    from chain.objects import Attestation
    from model.arenas import harness_config
    from model.errors import ModelError
    from model.harness import run_script
    from verify.attest import scripts_for
    from verify.check import make_launcher
    from verify.errors import VerifyError

    ctx.as_json = ctx.as_json or as_json
    store = ctx.store()
    try:
        att = store.get(store.resolve(attestation_id.strip().lower()))
        if not isinstance(att, Attestation):
            raise click.ClickException(f"{attestation_id} names a {att.TYPE}, not an attestation")
        proposal = store.get(att.proposal)
        arena, parent_script, candidate_script = scripts_for(store, proposal)
    except (ChainError, VerifyError) as e:
        raise click.ClickException(str(e)) from e
    if not att.candidate_tokens or len(att.parent_tokens) != len(att.seeds):
        raise click.ClickException(f"nothing to replay: the attestation ({att.verdict}) recorded no measured "
                                   "runs with their token counts")
    config = harness_config(arena)
    try:
        launcher = make_launcher(unsafe_no_sandbox, config.device)
    except VerifyError as e:
        raise click.ClickException(str(e)) from e
    rows: list[dict[str, Any]] = []
    worst = 0
    jobs = [(i, role) for i in range(len(att.seeds)) for role in ("parent", "candidate")]
    budgets = {"parent": None, "candidate": None}
    if config.budget_kind == "compute":
        from verify.compute import tokens_at

        budgets = {"parent": tokens_at(arena.budget_value, att.parent_class),
                   "candidate": tokens_at(arena.budget_value, att.compute_class)}
    for i, role in tqdm(jobs, disable=ctx.as_json, leave=False, desc="replaying", unit="run"):
        seed = att.seeds[i]
        tokens = getattr(att, f"{role}_tokens")[i]
        recorded = getattr(att, f"{role}_ubpb")[i]
        script = parent_script if role == "parent" else candidate_script
        try:
            r = run_script(script, config, seed, launcher=launcher, threads=threads, tokens=budgets[role])
        except ModelError as e:
            raise click.ClickException(str(e)) from e
        replayed = to_ubpb(r.val_bpb) if r.ok and r.val_bpb is not None else None
        diff = None if replayed is None else replayed - recorded
        worst = max(worst, abs(diff) if diff is not None and r.tokens == tokens else 10**9)
        rows.append({"seed": seed, "role": role, "tokens": tokens, "replayed_tokens": r.tokens,
                     "recorded_ubpb": recorded, "replayed_ubpb": replayed, "diff_ubpb": diff,
                     "recorded_cpu_ms": getattr(att, f"{role}_cpu_ms")[i], "replayed_cpu_ms": int(r.cpu_s * 1000),
                     "status": f"{r.status}:{r.reason}" if r.reason else r.status})
    ok = worst <= tolerance_ubpb
    data = {"attestation": att.hex, "proposal": att.proposal.hex(), "verdict": att.verdict,
            "compute_class": att.compute_class, "threads": threads, "runs": rows,
            "max_abs_diff_ubpb": worst, "tolerance_ubpb": tolerance_ubpb, "agrees": ok}
    lines = [f"replay of attestation {att.hex[:12]} ({att.verdict}, compute class {att.compute_class:+d}) "
             f"on {threads} thread(s)", "",
             f"{'seed':>10}  {'run':<9}  {'tokens':>9}  {'recorded':>9}  {'replayed':>9}  {'diff':>9}  "
             f"{'CPU s rec/here':>15}"]
    for row in rows:
        rep = fmt_ubpb(row["replayed_ubpb"]) if row["replayed_ubpb"] is not None else row["status"]
        diff = fmt_ubpb(row["diff_ubpb"], signed=True) if row["diff_ubpb"] is not None else "-"
        lines.append(f"{row['seed']:>10}  {row['role']:<9}  {row['tokens']:>9}  {fmt_ubpb(row['recorded_ubpb']):>9}  "
                     f"{rep:>9}  {diff:>9}  {row['recorded_cpu_ms'] / 1000:>7.1f}/{row['replayed_cpu_ms'] / 1000:<7.1f}")
    lines += ["", ("agrees" if ok else "DISAGREES") + f": largest difference {worst} ubpb (tolerance {tolerance_ubpb})"]
    ctx.emit(data, "\n".join(lines))
    if not ok:
        click.get_current_context().exit(1)
