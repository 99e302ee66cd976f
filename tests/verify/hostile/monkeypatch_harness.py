"""Hostile: imports the harness and rewrites it from inside the worker, then does not train.

Everything it patches lives in its own (untrusted) process: the trusted parent
scores the logits it returns, which are those of an untrained model.
"""

import torch

import model.harness.evaluate as evaluate
import model.harness.run as run
import model.harness.worker as worker


class Zero(torch.nn.Module):
    def forward(self, x):
        return torch.zeros(*x.shape, 256)


def train(feed):
    evaluate.Scorer.bpb = lambda self: 0.0001
    evaluate.Scorer.check = lambda self: None
    run.DIVERGED_BPB = 1e9
    worker.VOCAB = 256
    original = worker.wire.send

    def send(fd, tag, payload=b""):  # claim a tiny score in every frame we can
        return original(fd, tag, payload)

    worker.wire.send = send
    print("val_bpb: 0.0001 (patched)")
    return Zero()
