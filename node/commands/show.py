"""`ratchet show ID`: one object; for a commit, its attestations and diff against its parent."""

from __future__ import annotations

from typing import Any

import click

from chain.consensus import state_for
from chain.errors import ChainError
from chain.metrics import fmt_ubpb
from chain.objects import Arena, Attestation, Blob, Profile, Proposal
from node.commands.arena import arena_dict
from node.commands.log import commit_dict
from node.context import Context
from node.render import short, unified_diff, when


@click.command()
@click.argument("object_id")
@click.option("--no-diff", is_flag=True, help="Do not print the diff of a commit.")
@click.pass_obj
def show(ctx: Context, object_id: str, no_diff: bool) -> None:
    """Show an object by id (or a unique id prefix of at least 4 hex characters)."""
    store = ctx.store()
    try:
        oid = store.resolve(object_id.strip().lower())
        obj = store.get(oid)
    except ChainError as e:
        raise click.ClickException(str(e)) from e
    if isinstance(obj, Arena):
        d = {"type": "arena", **arena_dict(obj)}
        ctx.emit(d, "\n".join(f"{k}: {v}" for k, v in d.items()))
    elif isinstance(obj, Blob):
        _show_blob(ctx, obj)
    elif isinstance(obj, Proposal):
        _show_proposal(ctx, obj, no_diff)
    elif isinstance(obj, Attestation):
        d = attestation_dict(obj)
        ctx.emit(d, _attestation_text(d))
    elif isinstance(obj, Profile):
        from node.commands.profile import profile_dict, profile_text

        profiles = store.current_profiles()
        d = {"type": "profile", **profile_dict(obj, profiles), "current": profiles.get(obj.owner) == obj}
        ctx.emit(d, profile_text(d) + ("" if d["current"] else "\n(superseded by a newer profile of this key)"))


def _show_blob(ctx: Context, blob: Blob) -> None:
    data: bytes = blob.data
    text = data.decode("utf-8", "replace")
    ctx.emit({"type": "blob", "id": blob.hex, "size": len(data), "text": text},
             f"blob {blob.hex} ({len(data)} bytes)\n\n{text}")


def _show_proposal(ctx: Context, p: Proposal, no_diff: bool) -> None:
    store = ctx.store()
    state = state_for(store, p.arena)
    atts = store.attestations(p.arena, p.id)
    d: dict[str, Any] = {"type": "proposal", **commit_dict(state, state.commits[p.id], atts)}
    d["attestations"] = [attestation_dict(a) for a in atts]
    diff = ""
    try:
        parent_script = _script_of(ctx, p.parent)
        diff = unified_diff(parent_script, store.blob_data(p.script))
    except ChainError as e:
        diff = f"(diff unavailable: {e})"
    d["diff"] = diff
    if ctx.as_json:
        ctx.emit(d)
        return
    lines = [click.style(f"commit {d['id']}", fg="yellow"),
             f"Parent:  {d['parent']}", f"Author:  {d['author']}", f"Date:    {when(p.timestamp)}",
             f"Status:  {d['status']}" + (f" ({d['reason']})" if d["reason"] else ""),
             f"Gain:    {d['gain_bpb']} (cumulative {d['cumulative_bpb']})",
             f"Claim:   parent {d['claim']['parent_bpb']} -> candidate {d['claim']['candidate_bpb']}"
             f" on {d['claim']['hardware'] or '?'}", ""]
    lines += ["    " + line for line in (p.message or "(no message)").splitlines()] + [""]
    lines.append(f"Attestations ({len(atts)}):")
    for a in d["attestations"]:
        lines.append(f"  {a['verifier'][:12]}  {a['verdict']:<24} mean gain {a['mean_gain_bpb']}"
                     f"  on {a['hardware']}  {a['wall_s']:.1f}s" + (f"  flags {','.join(a['flags'])}" if a["flags"] else ""))
        if a["compute_ratio"] is not None:
            lines.append(f"      compute class {a['compute_class']:+d}, candidate/parent CPU {a['compute_ratio']:.3f}x")
        spent = zip(a["parent_tokens"], a["candidate_tokens"], a["parent_cpu_s"], a["candidate_cpu_s"], strict=False)
        for s, pm, cm in zip(a["seeds"], a["parent_bpb"], a["candidate_bpb"], strict=False):
            row = next(spent, None)
            extra = f"  tokens {row[0]}/{row[1]}  CPU {row[2]:.1f}/{row[3]:.1f} s" if row else ""
            lines.append(f"      seed {s:>10}  parent {pm}  candidate {cm}{extra}")
    if not no_diff:
        lines += ["", diff or "(no change)"]
    click.echo("\n".join(lines))


def _script_of(ctx: Context, commit_or_arena: bytes) -> bytes:
    store = ctx.store()
    obj = store.get(commit_or_arena)
    if isinstance(obj, Arena | Proposal):
        return store.blob_data(obj.script)
    raise click.ClickException(f"{short(commit_or_arena)} is neither an arena nor a commit")


def attestation_dict(a: Attestation) -> dict[str, Any]:
    return {
        "type": "attestation", "id": a.hex, "proposal": a.proposal.hex(), "arena": a.arena.hex(),
        "verifier": a.verifier.hex(), "verdict": a.verdict, "seeds": list(a.seeds),
        "parent_bpb": [fmt_ubpb(x) for x in a.parent_ubpb],
        "candidate_bpb": [fmt_ubpb(x) for x in a.candidate_ubpb],
        "floor_bpb": [fmt_ubpb(x) for x in a.floor_ubpb],
        "mean_gain_bpb": fmt_ubpb(a.mean_gain_ubpb, signed=True) if a.parent_ubpb else "-",
        "parent_tokens": list(a.parent_tokens), "candidate_tokens": list(a.candidate_tokens),
        "parent_cpu_s": [x / 1000 for x in a.parent_cpu_ms], "candidate_cpu_s": [x / 1000 for x in a.candidate_cpu_ms],
        "compute_ratio": a.compute_ratio, "compute_class": a.compute_class,
        "compute_x": a.compute_x_milli / 1000,
        "hardware": a.hardware, "harness": a.harness, "flags": list(a.flags),
        "wall_s": a.wall_ms / 1000, "timestamp": a.timestamp,
    }


def _attestation_text(d: dict[str, Any]) -> str:
    return "\n".join(f"{k}: {v}" for k, v in d.items())
