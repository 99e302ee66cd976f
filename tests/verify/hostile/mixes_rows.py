"""Hostile: a model that lets rows of an evaluation batch see each other."""

import torch


class Mix(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(256, 256)

    def forward(self, x):
        h = self.emb(x)  # (B, T, 256)
        return h + h.mean(dim=0, keepdim=True)  # every row sees the batch


def train(feed):
    feed.batch(1, 8)
    return Mix()
