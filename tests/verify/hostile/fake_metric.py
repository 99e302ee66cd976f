"""Hostile: prints a fake metric and never trains. The harness computes val_bpb itself."""

import torch


class Uniform(torch.nn.Module):
    def forward(self, x):
        return torch.zeros(*x.shape, 256)


def train(feed):
    print("val_bpb: 0.000100")
    print("RESULT val_bpb=0.0001 tokens=999999999")
    return Uniform()
