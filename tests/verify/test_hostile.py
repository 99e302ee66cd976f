"""The hostile suite: every malicious script ends with the right verdict and leaves the verifier unharmed."""

from __future__ import annotations

import re
import socket
import uuid

import pytest
from conftest import SEEDS, hostile, small_arena, worker_pids
from test_sandbox import pids_with, wait_until

from verify.check import run_check

pytestmark = pytest.mark.timeout(600)
CAP_S = 15  # the cap starts once the worker has imported torch (HELO), so a loaded machine needs no extra room


@pytest.fixture(autouse=True)
def no_leftover_workers():
    before = worker_pids()
    yield
    # the sandbox's pid namespace dies with bwrap, asynchronously: allow it a moment
    assert wait_until(lambda: worker_pids() <= before, 10), "a worker process outlived its check"


def check(arena_and_ref, script: bytes, launcher, cache, seeds=SEEDS[:1]):
    arena, ref = arena_and_ref
    return run_check(ref.data, script, arena, seeds, threads=1, parent_cache=cache, launcher=launcher)


@pytest.mark.parametrize("name, verdict", [
    ("syntax_error.txt", "invalid:syntax_error"),
    ("peeks_future.py", "cheat:peeks_future"),
    ("mixes_rows.py", "cheat:batch_mixing"),
    ("stateful_eval.py", "cheat:stateful_eval"),
    ("nan_divergence.py", "invalid:nonfinite_logits"),
    ("memory_hog.py", "invalid:out_of_memory"),
])
def test_caught_by_the_harness_or_limits(name, verdict, arena_and_ref, test_launcher, parent_cache):
    r = check(arena_and_ref, hostile(name), test_launcher, parent_cache)
    assert r.verdict == verdict, r.detail
    assert r.parent_ubpb == [] and r.runs == 1  # no parent run spent on a failed candidate
    assert "BREACH" not in r.detail


# Lookahead at a few positions (tests/verify/hostile/lookahead.py, one MODE per script): short rows
# and many cuts per position, so each check is cheap and its detection is far from chance.
LOOKAHEAD = {"eval_seq_len": "32", "eval_batch": "16", "eval_rows": "576", "probe_cuts": "18"}


@pytest.fixture(scope="module")
def lookahead_arena(verifier_key):
    return small_arena(verifier_key, **LOOKAHEAD)


@pytest.mark.parametrize("mode", ["first", "middle", "hashed", "plausible", "ahead2"])
def test_lookahead_at_a_few_positions_is_caught(mode, lookahead_arena, test_launcher, parent_cache):
    r = check(lookahead_arena, hostile("lookahead.py", mode=mode), test_launcher, parent_cache)
    assert r.verdict == "cheat:peeks_future", r.detail
    assert r.parent_ubpb == [] and "BREACH" not in r.detail


def test_lookahead_only_in_the_trainer_is_caught(lookahead_arena, test_launcher, parent_cache):
    # The fresh evaluator answers honestly, so the probes' repeat of a scored batch already
    # disagrees with the trainer: reported as state (the first check in evaluate.Scorer.check).
    r = check(lookahead_arena, hostile("lookahead.py", mode="trainer"), test_launcher, parent_cache)
    assert r.verdict in ("cheat:stateful_eval", "cheat:peeks_future"), r.detail


def test_the_honest_lookahead_control_passes_the_probes(lookahead_arena, test_launcher, parent_cache):
    r = check(lookahead_arena, hostile("lookahead.py", mode="none"), test_launcher, parent_cache)
    assert not r.verdict.startswith(("cheat:", "invalid:")), r.detail


@pytest.mark.parametrize("name, blocked", [
    ("read_validation.py", "no validation data reachable"),
    ("huge_file.py", "blocked: stopped after"),
])
def test_blocked_by_the_sandbox(name, blocked, arena_and_ref, test_launcher, parent_cache):
    r = check(arena_and_ref, hostile(name), test_launcher, parent_cache)
    assert r.verdict == "invalid:script_error", r.detail
    assert blocked in r.detail and "BREACH" not in r.detail


def test_node_home_and_keys_stay_unread_and_untouched(arena_and_ref, test_launcher, parent_cache, tmp_path):
    home = tmp_path / "node-home"
    home.mkdir()
    secret = "ed25519-secret-" + uuid.uuid4().hex
    key = home / "verifier.key"
    key.write_text(secret)
    before = key.stat()
    script = hostile("read_node_home.py", canary_file=str(key), canary_dir=str(home))
    r = check(arena_and_ref, script, test_launcher, parent_cache)
    assert r.verdict == "invalid:script_error", r.detail
    assert "blocked: no node files visible" in r.detail
    assert secret not in r.detail and "BREACH" not in r.detail
    after = key.stat()
    assert key.read_text() == secret and after.st_mtime_ns == before.st_mtime_ns
    assert sorted(p.name for p in home.iterdir()) == ["verifier.key"]


def test_network_is_unreachable(arena_and_ref, test_launcher, parent_cache):
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(4)
        srv.setblocking(False)
        script = hostile("network.py", port=str(srv.getsockname()[1]))
        r = check(arena_and_ref, script, test_launcher, parent_cache)
        assert r.verdict == "invalid:script_error", r.detail
        assert "blocked: no network" in r.detail
        with pytest.raises(BlockingIOError):
            srv.accept()  # nobody ever connected


def test_fork_bomb_is_contained_and_cleaned_up(arena_and_ref, test_launcher, parent_cache):
    token = "bomb-" + uuid.uuid4().hex
    r = check(arena_and_ref, hostile("fork_bomb.py", token=token), test_launcher, parent_cache)
    assert r.verdict == "invalid:script_error", r.detail
    assert "blocked: fork refused after" in r.detail
    n = int(re.findall(r"fork refused after (\d+) children", r.detail)[-1])
    assert n < test_launcher.limits.max_tasks
    assert wait_until(lambda: not pids_with(token), 10), "fork bomb children survived the check"


@pytest.mark.parametrize("name", ["past_cap.py", "sleep_forever.py"])
def test_wall_clock_cap(name, verifier_key, test_launcher):
    # the cap runs from HELO (the worker has imported torch): a slow start on a loaded machine
    # does not eat into it, and a worker that never starts is WorkerStartError, not a verdict
    arena, ref = small_arena(verifier_key, wall_cap_s=str(CAP_S))
    r = run_check(ref.data, hostile(name), arena, SEEDS[:1], threads=1, launcher=test_launcher)
    assert r.verdict == "invalid:timeout", r.detail
    assert CAP_S * 1000 <= r.wall_ms < (CAP_S + 30) * 1000


@pytest.mark.parametrize("name", ["fake_metric.py", "monkeypatch_harness.py"])
def test_measured_as_no_gain(name, arena_and_ref, test_launcher, parent_cache):
    r = check(arena_and_ref, hostile(name), test_launcher, parent_cache)
    assert r.verdict == "no_gain", r.detail
    # the harness's own measurement: far worse than the parent, whatever the script printed
    assert r.candidate_ubpb[0] > r.parent_ubpb[0] + 100_000


@pytest.mark.parametrize("name", ["carried_data.py", "rebuild_generator.py"])
def test_data_brought_from_outside_is_the_wrong_data(name, arena_and_ref, test_launcher, parent_cache):
    # Memorised text of a seed the author knew, or rebuilt from guessed seeds: on the
    # verifier's secret seed its confident predictions are wrong, worse than uniform.
    r = check(arena_and_ref, hostile(name), test_launcher, parent_cache)
    assert r.verdict == "invalid:diverged", r.detail
    assert "worse than uniform" in r.detail and "BREACH" not in r.detail


def test_oversized_script(arena_and_ref, test_launcher):
    arena, ref = arena_and_ref
    big = ref.data + b"#" * (arena.max_script_bytes - len(ref.data) + 1)
    r = run_check(ref.data, big, arena, SEEDS, threads=1, launcher=test_launcher)
    assert r.verdict == "invalid:script_too_large" and r.runs == 0
