"""verify_proposal: check one stored proposal on this verifier's own seeds and sign what was measured.

The seeds come from the verifier's signature over the proposal id
(chain.seeds): the author cannot predict them, every verifier gets its own,
and the proof is revealed in the attestation so anyone can re-run the check.
The attestation carries the per-seed metrics, what each run consumed as this
machine measured it (training tokens, CPU milliseconds of the trainer's
process tree), the candidate's compute class and drift (verify.compute), this
machine's hardware, the harness version, the verdict, the flags and the wall
time: enough for anyone to re-run the check (`ratchet replay`).

Flags: `unsafe_no_sandbox` (the operator ran it unconfined), `parent_failed`
(the parent did not run here), `overclaim` (the author's claimed gain is far
above the measurement: more than OVERCLAIM_MARGINS margins, and more than
OVERCLAIM_STDERRS standard errors, above the measured mean gain).
"""

from __future__ import annotations

import platform
import time
from typing import Any

from chain.keys import SigningKey
from chain.objects import Arena, Attestation, Proposal
from chain.seeds import derive_seeds, seed_proof
from verify.check import CheckResult, run_check
from verify.compute import Position
from verify.errors import MissingObjectError

FLAG_OVERCLAIM = "overclaim"
OVERCLAIM_MARGINS = 5
OVERCLAIM_STDERRS = 4


def hardware_string(device: str = "cpu", threads: int | None = None) -> str:
    """What this verifier ran on, e.g. 'cpu:AMD EPYC 7B13 x2' (at most 64 characters)."""
    if device.startswith("cuda"):
        try:
            import torch

            name = torch.cuda.get_device_name(0)
        except (ImportError, RuntimeError, AssertionError):
            name = "unknown gpu"
        text = f"cuda:{name}"
    else:
        text = f"cpu:{_cpu_model()}" + (f" x{threads}" if threads else "")
    return text[:64]


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    return " ".join(line.split(":", 1)[1].split())
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def scripts_for(store: Any, proposal: Proposal) -> tuple[Arena, bytes, bytes]:
    """The proposal's arena, its parent's script and its own script, from the store."""
    if not store.has(proposal.arena):
        raise MissingObjectError("arena", proposal.arena)
    arena = store.get(proposal.arena)
    if proposal.parent == arena.id:
        parent_blob = arena.script
    else:
        if not store.has(proposal.parent):
            raise MissingObjectError("parent proposal", proposal.parent)
        parent_blob = store.get(proposal.parent).script
    for what, oid in (("parent script", parent_blob), ("script", proposal.script)):
        if not store.has(oid):
            raise MissingObjectError(what, oid)
    return arena, store.blob_data(parent_blob), store.blob_data(proposal.script)


def parent_position(store: Any, proposal: Proposal) -> Position:
    """The compute class and drift the proposal's parent holds on this store's chain."""
    from chain.consensus import state_for

    if proposal.parent == proposal.arena:
        return Position()
    klass, x_milli = state_for(store, proposal.arena).compute_position(proposal.parent)
    return Position(klass, x_milli)


def spent_fields(result: CheckResult) -> dict[str, Any]:
    """The attestation fields of what the runs consumed (empty unless every seed was measured)."""
    return {"parent_tokens": result.spent("parent", "tokens"),
            "candidate_tokens": result.spent("candidate", "tokens"),
            "parent_cpu_ms": result.spent("parent", "cpu_ms"),
            "candidate_cpu_ms": result.spent("candidate", "cpu_ms"),
            "parent_class": result.parent_class, "compute_class": result.position.klass, "compute_x_milli": result.position.x_milli}


def overclaimed(proposal: Proposal, result: CheckResult, margin_ubpb: int) -> bool:
    if result.decision is None:
        return False
    d = result.decision
    excess = proposal.claimed_gain_ubpb - d.mean_gain
    return excess > OVERCLAIM_MARGINS * max(margin_ubpb, 1) and excess > OVERCLAIM_STDERRS * d.stderr


def verify_proposal(key: SigningKey, store: Any, proposal: Proposal, *, threads: int = 2,
                    unsafe_no_sandbox: bool = False, progress: Any = None,
                    parent_cache: Any = None, launcher: Any = None,
                    now_ms: int | None = None) -> Attestation:
    """Run the paired check of `proposal` on this key's seeds and return the signed attestation.

    Raises MissingObjectError when the store lacks what the check needs, and
    verify.errors.NoSandboxError when no sandbox is usable (unless unsafe_no_sandbox).
    """
    arena, parent_script, candidate_script = scripts_for(store, proposal)
    proof = seed_proof(key, proposal.id)
    seeds = derive_seeds(proof, arena.seeds)
    result = run_check(parent_script, candidate_script, arena, seeds, unsafe_no_sandbox=unsafe_no_sandbox,
                       threads=threads, progress=progress, parent_cache=parent_cache, launcher=launcher,
                       parent_position=parent_position(store, proposal))
    flags = set(result.flags)
    if overclaimed(proposal, result, arena.margin_ubpb):
        flags.add(FLAG_OVERCLAIM)
    from model.harness import HARNESS_VERSION

    device = dict(arena.settings).get("device", "cuda" if arena.hardware.startswith("cuda") else "cpu")
    return Attestation.create(
        key, proposal=proposal.id, arena=arena.id, seeds=seeds, seed_proof=proof,
        parent_ubpb=result.parent_ubpb, candidate_ubpb=result.candidate_ubpb, floor_ubpb=result.floor_ubpb,
        **spent_fields(result),
        hardware=hardware_string(device, threads if device == "cpu" else None), harness=HARNESS_VERSION,
        verdict=result.verdict, flags=sorted(flags), wall_ms=result.wall_ms,
        timestamp=now_ms if now_ms is not None else int(time.time() * 1000),
    )
