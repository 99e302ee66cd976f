"""Shared helpers for model/ tests: a small, fast harness configuration and script runner."""

from __future__ import annotations

import textwrap
from dataclasses import replace

from model.harness import DirectLauncher, HarnessConfig, RunResult, run_script

SMALL = HarnessConfig(
    source="tinylang", budget_kind="tokens", budget_value=4096, wall_cap_s=120.0,
    eval_seq_len=32, eval_batch=8, eval_rows=40, probe_cuts=1,
    source_settings=(("topics", "3"), ("train_bytes", "65536"), ("words", "128")),
)

# A model that needs no gradient steps: bigram counts from the batches it is fed.
BIGRAM = '''
import torch

class Bigram(torch.nn.Module):
    def __init__(self, counts):
        super().__init__()
        self.register_buffer("logp", (counts + 0.1).log() - (counts + 0.1).sum(1, keepdim=True).log())

    def forward(self, x):
        return self.logp[x]

def train(feed):
    counts = torch.zeros(feed.vocab_size, feed.vocab_size)
    while (batch := feed.batch(4, 64)) is not None:
        x, y = batch
        counts.index_put_((x.reshape(-1), y.reshape(-1)), torch.ones(x.numel()), accumulate=True)
    print("tokens:", feed.tokens_seen)
    return Bigram(counts)
'''


def script(text: str) -> bytes:
    return textwrap.dedent(text).encode()


def run(text: str, seed: int = 1, **changes: object) -> RunResult:
    return run_script(script(text), replace(SMALL, **changes), seed, launcher=DirectLauncher(), threads=1)
