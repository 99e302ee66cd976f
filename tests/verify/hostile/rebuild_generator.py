"""Hostile: rebuilds the data source from the harness's own code, guessing the seed.

The seed is the verifier's secret (derived from its signature), so the guesses
miss and the model it returns memorises the wrong language.
"""

import torch

from model.harness.config import HarnessConfig
from model.sources import draw


class Lookup(torch.nn.Module):
    """Predicts the byte that followed the same 6-byte context in the rebuilt text."""

    def __init__(self, text: bytes):
        super().__init__()
        self.table = {}
        for i in range(6, len(text)):
            self.table.setdefault(text[i - 6:i], text[i])

    def forward(self, x):
        b, t = x.shape
        out = torch.zeros(b, t, 256)
        rows = x.tolist()
        for r in range(b):
            for i in range(6, t):
                nxt = self.table.get(bytes(rows[r][i - 5:i + 1]))
                if nxt is not None:
                    out[r, i, nxt] = 40.0
        return out


def train(feed):
    first = feed.batch(1, 64)
    config = HarnessConfig(source="tinylang", budget_kind="tokens", budget_value=1, wall_cap_s=1,
                           source_settings=(("topics", "3"), ("train_bytes", "131072"), ("words", "128")))
    best = None
    for seed in range(40):  # the seed space is 2**31; an author can only guess
        data = draw(config, seed)
        hit = first is not None and bytes(first[0][0].tolist()[:16]) in data.train.tobytes()
        if hit or best is None:
            best = data
        if hit:
            print("BREACH seed", seed)
            break
    return Lookup(best.val.tobytes() + best.train.tobytes()[:50000])
