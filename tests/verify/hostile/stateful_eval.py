"""Hostile: a model that remembers what it saw in earlier evaluation calls."""

import torch


class Memo(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(256, 256)
        self.seen = torch.zeros(256)

    def forward(self, x):
        counts = torch.bincount(x.reshape(-1), minlength=256).float()
        self.seen += counts  # state carried across calls
        return self.emb(x) + (self.seen + 1).log()


def train(feed):
    feed.batch(1, 8)
    return Memo()
