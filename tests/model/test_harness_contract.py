"""The script <-> harness contract across the process boundary, with an honest script."""

from __future__ import annotations

import math

import pytest
from model_helpers import BIGRAM, SMALL, run, script

from model.harness import DirectLauncher, run_script

pytestmark = pytest.mark.timeout(120)


def test_honest_script_is_scored_by_the_parent() -> None:
    seen: list[tuple[int, int]] = []
    r = run_script(script(BIGRAM), SMALL, 7, launcher=DirectLauncher(), threads=1,
                   progress=lambda done, total: seen.append((done, total)))
    assert (r.status, r.reason) == ("ok", ""), r.detail
    assert r.val_bpb is not None and r.floor_bpb is not None
    assert r.floor_bpb < r.val_bpb < 8.0
    # The feed hands out batches of 4 x 64 until the next one would pass the budget.
    assert r.tokens == SMALL.budget_value - SMALL.budget_value % 256
    assert seen[-1] == (r.tokens, SMALL.budget_value) and len(seen) == r.tokens // 256
    assert r.params == 256 * 0  # buffers are not parameters
    assert "tokens:" in r.detail  # the script's own output reaches the detail
    assert r.wall_s >= r.train_s > 0


def test_same_seed_same_score_other_seed_other_data() -> None:
    a, b, c = run(BIGRAM, seed=3), run(BIGRAM, seed=3), run(BIGRAM, seed=4)
    assert a.ok and b.ok and c.ok
    assert a.val_bpb == b.val_bpb and a.floor_bpb == b.floor_bpb
    assert c.floor_bpb != a.floor_bpb and c.val_bpb != a.val_bpb
    assert a.val_bpb is not None and math.isfinite(a.val_bpb)


def test_seconds_budget_closes_the_feed_at_the_deadline() -> None:
    r = run(BIGRAM, budget_kind="seconds", budget_value=1)
    assert r.ok, r.detail
    assert 0.9 <= r.train_s < 10 and r.tokens > 0


def test_worker_imports_nothing_of_the_project_beyond_model() -> None:
    """The sandbox exposes model/ and the interpreter only: the worker must not need chain/ or node/."""
    import json
    import subprocess
    import sys

    from model.harness.run import MODEL_DIR, PROJECT_ROOT, readable_paths

    code = ("import json, sys, model.harness.worker\n"
            "print(json.dumps(sorted(m.__file__ for m in list(sys.modules.values()) if getattr(m, '__file__', None))))")
    out = subprocess.run([sys.executable, "-B", "-s", "-c", code], capture_output=True, check=True, text=True,
                         env={"PYTHONPATH": str(PROJECT_ROOT), "PATH": "/usr/bin:/bin"}, timeout=60)
    files = json.loads(out.stdout)
    project = [f for f in files if f.startswith(str(PROJECT_ROOT) + "/") and "/.venv/" not in f]
    assert project and all(f.startswith(str(MODEL_DIR) + "/") for f in project), project
    assert MODEL_DIR in readable_paths()
    assert "torch" not in " ".join(files)  # torch loads after the config arrives, inside main()


class ScriptedLauncher:
    """A launcher that runs some other command instead of the worker (a broken environment)."""

    name = "scripted"

    def __init__(self, argv: list[str]) -> None:
        self.argv = argv

    def wrap(self, argv: list[str], *, workdir: object, readable: object) -> list[str]:
        return list(self.argv)

    def preexec(self) -> None:
        pass


@pytest.mark.parametrize("argv, cap", [
    (["/bin/sh", "-c", "echo no python here >&2; exit 3"], 60.0),
    (["/bin/sleep", "600"], 2.0),
])
def test_a_worker_that_never_starts_is_the_environments_fault(argv: list[str], cap: float) -> None:
    from dataclasses import replace

    from model.errors import WorkerStartError

    with pytest.raises(WorkerStartError) as e:
        run_script(script(BIGRAM), replace(SMALL, startup_timeout_s=cap), 1, launcher=ScriptedLauncher(argv),
                   threads=1)
    if "sh" in argv[0]:
        assert "no python here" in str(e.value)


SHAPES = '''
import torch

def train(feed):
    seen = []
    for shape in [(4, 64), (4, 64), (2, 32)]:
        x, y = feed.batch(*shape)
        assert x.shape == y.shape == shape and x.dtype == torch.int64
        assert torch.equal(x[:, 1:], y[:, :-1])  # y is x shifted by one byte
        seen.append(x.numel())
    while feed.batch(2, 32) is not None:
        seen.append(64)
    print("script_tokens:", sum(seen), "feed_tokens:", feed.tokens_seen, "progress:", feed.progress())
    return Uniform()


class Uniform(torch.nn.Module):
    def forward(self, x):
        return torch.zeros(*x.shape, 256)
'''


def test_batches_are_shifted_pairs_and_a_dropped_prefetch_counts() -> None:
    r = run(SHAPES)
    assert r.ok, r.detail
    # The worker prefetched one more (4, 64) batch before the shape changed: served, counted, unused.
    assert f"script_tokens: {r.tokens - 256} feed_tokens: {r.tokens - 256} progress: 1.0" in r.detail
    assert r.val_bpb == pytest.approx(8.0)  # uniform logits: exactly 8 bits per byte


def test_reference_tiny_is_bitwise_reproducible() -> None:
    from dataclasses import replace

    from model.arenas import reference_script

    cfg = replace(SMALL, budget_value=8192)
    a = run_script(reference_script("tiny"), cfg, 9, launcher=DirectLauncher(), threads=1)
    b = run_script(reference_script("tiny"), cfg, 9, launcher=DirectLauncher(), threads=1)
    assert a.ok and b.ok and a.val_bpb == b.val_bpb and a.tokens == b.tokens


def test_the_scripts_import_time_work_is_charged_to_its_compute() -> None:
    """The clock's base is read before the script is imported (the worker waits for GOGO)."""
    burner = "import time\n_t = time.process_time()\nwhile time.process_time() - _t < 0.6:\n    pass\n"
    plain = run(BIGRAM)
    burnt = run(burner + BIGRAM)
    assert plain.ok and burnt.ok, (plain.detail, burnt.detail)
    assert burnt.cpu_s >= plain.cpu_s + 0.5, (plain.cpu_s, burnt.cpu_s)
