"""run_check on real runs: genuine improvements pass, neutral changes do not, the sandbox is required."""

from __future__ import annotations

import pytest
from conftest import SEEDS, hostile

from verify.check import FLAG_UNSAFE, run_check
from verify.errors import HarnessMismatchError, NoSandboxError

pytestmark = pytest.mark.timeout(1200)  # minutes of training on a loaded CI machine


def genuine(ref: bytes) -> bytes:
    # four times the optimizer steps for the same tokens: a large, real gain at this budget
    out = ref.replace(b"BATCH_SIZE = 16 ", b"BATCH_SIZE = 4 ")
    assert out != ref
    return out


def test_genuine_improvement_improves(arena_and_ref, test_launcher, parent_cache):
    arena, ref = arena_and_ref
    r = run_check(ref.data, genuine(ref.data), arena, SEEDS, threads=1, parent_cache=parent_cache,
                  launcher=test_launcher)
    assert r.verdict == "improves", r.detail
    assert r.decision is not None and r.decision.lower_bound > arena.margin_ubpb
    assert len(r.parent_ubpb) == len(r.candidate_ubpb) == len(r.floor_ubpb) == 3
    assert all(f < c for f, c in zip(r.floor_ubpb, r.candidate_ubpb, strict=True))
    assert r.flags == [] and r.train_s > 0 and r.wall_ms > 0


def test_neutral_changes_are_no_gain_and_parent_runs_are_reused(arena_and_ref, test_launcher):
    arena, ref = arena_and_ref
    cache: dict = {}
    noop = ref.data + b"\n# a comment changes the bytes, not the computation\n"
    r = run_check(ref.data, noop, arena, SEEDS, threads=1, parent_cache=cache, launcher=test_launcher)
    assert r.verdict == "no_gain", r.detail
    assert r.candidate_ubpb == r.parent_ubpb  # bitwise identical training: proves nothing
    assert r.runs == 6 and len(cache) == 3
    # a perturbation that changes the trajectory but not the expected quality
    init = ref.data.replace(b"INIT_STD = 0.02 ", b"INIT_STD = 0.0201 ")
    assert init != ref.data
    r2 = run_check(ref.data, init, arena, SEEDS, threads=1, parent_cache=cache, launcher=test_launcher)
    assert r2.verdict == "no_gain", r2.detail
    assert r2.runs == 3  # only the candidate ran: same parent, arena and seeds
    assert r2.parent_ubpb == r.parent_ubpb and r2.candidate_ubpb != r2.parent_ubpb


def test_unsafe_no_sandbox_is_flagged_and_warned(arena_and_ref, capfd):
    arena, ref = arena_and_ref
    r = run_check(ref.data, hostile("syntax_error.txt"), arena, SEEDS, threads=1, unsafe_no_sandbox=True)
    assert r.verdict == "invalid:syntax_error"
    assert r.flags == [FLAG_UNSAFE]
    assert "WITHOUT a sandbox" in capfd.readouterr().err


def test_refuses_without_a_sandbox(arena_and_ref, monkeypatch, tmp_path):
    arena, ref = arena_and_ref
    monkeypatch.setenv("PATH", str(tmp_path))  # no bwrap to be found
    with pytest.raises(NoSandboxError) as e:
        run_check(ref.data, ref.data, arena, SEEDS)
    assert "bubblewrap" in str(e.value) and "--unsafe-no-sandbox" in str(e.value)


def test_refuses_an_arena_of_another_harness(arena_and_ref, test_launcher):
    """An arena made by the first harness is never judged by this one's rules; the error names both."""
    from model.harness import HARNESS_VERSION

    arena, ref = arena_and_ref
    for old in ("ratchet-harness-1", "ratchet-harness-999"):
        with pytest.raises(HarnessMismatchError) as e:
            run_check(ref.data, ref.data, arena.replace(harness=old), SEEDS, launcher=test_launcher)
        assert old in str(e.value) and HARNESS_VERSION in str(e.value) and HARNESS_VERSION == "ratchet-harness-2"


def test_the_local_check_measures_what_a_verifier_measures(arena_and_ref, test_launcher, parent_cache):
    from node.research.localcheck import LocalChecker

    arena, ref = arena_and_ref
    cand = ref.data.replace(b"INIT_STD = 0.02 ", b"INIT_STD = 0.0203 ")
    seeds = SEEDS[:2]
    v = run_check(ref.data, cand, arena, seeds, threads=1, parent_cache=parent_cache, launcher=test_launcher)
    assert v.measured, v.detail
    local = LocalChecker(arena, threads=1, launcher=test_launcher)  # its own parent runs, no shared cache
    stage = local.paired("screen", ref.data, cand, seeds, arena.margin_ubpb, cache_parent=True)
    assert stage.seeds == seeds
    assert stage.parent_ubpb == v.parent_ubpb and stage.candidate_ubpb == v.candidate_ubpb
    assert stage.floor_ubpb == v.floor_ubpb and stage.verdict == v.verdict
    assert stage.parent_ubpb != stage.candidate_ubpb  # a real trajectory change, measured alike


def test_the_launcher_honours_the_arenas_device(verifier_key):
    from model.arenas import build_arena
    from node.research.localcheck import LocalChecker
    from verify.check import make_launcher
    from verify.sandbox import gpu_devices

    gpu, _ = build_arena("gpu", verifier_key, [verifier_key.public], 1, created_at_ms=1)
    cpu = make_launcher(False, "cpu")
    cuda = make_launcher(False, "cuda")
    assert cpu.limits.memory_bytes is not None and cpu.devices == ()
    assert cuda.limits.memory_bytes is None and cuda.devices == gpu_devices(0)
    local = LocalChecker(gpu).launcher  # a contributor's check on the gpu arena: the GPU's sandbox
    assert local.limits.memory_bytes is None and local.devices == cuda.devices
    tiny, _ = build_arena("tiny", verifier_key, [verifier_key.public], 1, created_at_ms=1)
    assert LocalChecker(tiny).launcher.limits == cpu.limits
