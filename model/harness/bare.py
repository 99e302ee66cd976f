"""Training in this process, for benchmarks that compare the harness with bare training.

`BareFeed` has the worker feed's interface (model.harness.worker.Feed) and
serves the same batches in the same order for a seed, without pipes, worker
or sandbox; `bare_train` imports a script and runs its train() on one. Never
used to judge a script: it runs untrusted code unconfined, in the caller.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from model.harness.config import HarnessConfig
from model.sources import Data, draw, rng


class BareFeed:
    """The feed's interface in process: the harness's data and batch order, a token budget."""

    def __init__(self, data: Data, budget_tokens: int, eval_seq_len: int) -> None:
        self.train = data.train
        self.g = np.random.Generator(np.random.PCG64(int.from_bytes(rng.subkey(data.key, "batches"), "little")))
        self.vocab_size, self.device, self.eval_seq_len = 256, "cpu", eval_seq_len
        self.budget_kind, self.budget_value, self.budget_tokens = "tokens", budget_tokens, budget_tokens
        self.tokens_seen = 0

    @classmethod
    def for_config(cls, config: HarnessConfig, seed: int) -> BareFeed:
        return cls(draw(config, seed), config.budget_value, config.eval_seq_len)

    def progress(self) -> float:
        return min(1.0, self.tokens_seen / self.budget_value)

    def batch(self, b: int, t: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        if self.tokens_seen + b * t > self.budget_value:
            return None
        off = self.g.integers(0, len(self.train) - t - 1, size=b)
        rows = torch.from_numpy(self.train[off[:, None] + np.arange(t + 1)]).long()
        self.tokens_seen += b * t
        return rows[:, :-1], rows[:, 1:]


def load_module(script: bytes, name: str = "bare_train") -> Any:
    """The script imported as a module (from a temporary file, so tracebacks name it)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "train.py"
        path.write_bytes(script)
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise RuntimeError("cannot load the script")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return module


def bare_train(script: bytes, feed: BareFeed, threads: int) -> tuple[Any, float]:
    """(the trained model, seconds train() took), the script's prints swallowed."""
    module = load_module(script)
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    with contextlib.redirect_stdout(io.StringIO()):
        t = time.perf_counter()
        model = module.train(feed)
        return model, time.perf_counter() - t
