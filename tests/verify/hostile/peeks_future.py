"""Hostile: a model whose logits at position t use the byte at t + 1 (it would score near 0 bpb)."""

import torch


class Peek(torch.nn.Module):
    def forward(self, x):  # (B, T) -> (B, T, 256)
        nxt = torch.roll(x, -1, dims=1)
        return 30.0 * torch.nn.functional.one_hot(nxt, 256).float()


def train(feed):
    feed.batch(1, 8)
    return Peek()
