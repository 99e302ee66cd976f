"""Hostile (or merely broken): training that diverges to NaN with an absurd learning rate."""

import torch
import torch.nn.functional as F


def train(feed):
    emb = torch.nn.Embedding(256, 256)
    opt = torch.optim.SGD(emb.parameters(), lr=1e12)
    for _ in range(20):
        batch = feed.batch(8, 32)
        if batch is None:
            break
        x, y = batch
        loss = F.cross_entropy(emb(x).view(-1, 256), y.reshape(-1)) * 1e30
        opt.zero_grad()
        loss.backward()
        opt.step()
    print("loss", float(loss))
    return emb
