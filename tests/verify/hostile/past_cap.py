"""Hostile: trains (burns CPU) far past the wall-clock cap, ignoring the closed feed."""

import torch


def train(feed):
    x = torch.randn(64, 64)
    while True:
        x = torch.tanh(x @ x)
