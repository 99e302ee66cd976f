"""Reference training script of the `gpu` arena: a modern small GPT for one GPU and a seconds budget.

RMSNorm (no learned gains), rotary embeddings, QK-norm, ReLU^2 MLP, logit
soft-capping, zero-initialised output projections; Muon (orthogonalised
momentum) for the hidden matrices and AdamW for embeddings and the head;
bf16 autocast and torch.compile on CUDA. The schedule follows
feed.progress(), so it adapts to a wall-clock budget. On CPU it runs in
float32 without compiling (tests shrink the constants below).
"""

import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

N_LAYER = 8  # transformer blocks
N_HEAD = 8  # attention heads
N_EMBD = 512  # model width
MLP_MULT = 4  # MLP hidden width / model width
BATCH_SIZE = 64  # sequences per step
SEQ_LEN = 512  # bytes per sequence
MATRIX_LR = 0.02  # Muon learning rate for hidden matrices
ADAM_LR = 3e-3  # AdamW learning rate for embeddings and head
ADAM_BETAS = (0.9, 0.95)  # AdamW betas
MUON_MOMENTUM = 0.95  # Muon momentum (Nesterov)
NS_STEPS = 5  # Newton-Schulz iterations per Muon step
WEIGHT_DECAY = 0.0  # AdamW weight decay
WARMUP_FRAC = 0.02  # fraction of the budget warming up
WARMDOWN_FRAC = 0.3  # final fraction decaying linearly to zero
LOGIT_CAP = 30.0  # soft cap on output logits
ROPE_BASE = 10000.0  # rotary embedding base
GRAD_CLIP = 1.0  # max gradient norm (0 disables)
COMPILE = True  # torch.compile the model on CUDA
LOG_EVERY = 100  # steps between progress lines


def rms_norm(x: torch.Tensor) -> torch.Tensor:
    return F.rms_norm(x, (x.size(-1),))


class Rotary(nn.Module):
    def __init__(self, head_dim: int) -> None:
        super().__init__()
        inv = 1.0 / (ROPE_BASE ** (torch.arange(0, head_dim, 2).float() / head_dim))
        self.register_buffer("inv_freq", inv, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, H, T, D)
        t = torch.arange(x.shape[-2], device=x.device, dtype=torch.float32)
        freqs = torch.outer(t, self.inv_freq)  # (T, D/2)
        cos, sin = freqs.cos().to(x.dtype), freqs.sin().to(x.dtype)
        x1, x2 = x[..., 0::2], x[..., 1::2]
        return torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1).flatten(-2)


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.qkv = nn.Linear(N_EMBD, 3 * N_EMBD, bias=False)
        self.proj = nn.Linear(N_EMBD, N_EMBD, bias=False)
        self.fc = nn.Linear(N_EMBD, MLP_MULT * N_EMBD, bias=False)
        self.out = nn.Linear(MLP_MULT * N_EMBD, N_EMBD, bias=False)
        self.rotary = Rotary(N_EMBD // N_HEAD)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.out.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, C)
        B, T, C = x.shape
        q, k, v = self.qkv(rms_norm(x)).split(C, dim=-1)
        q, k, v = (z.view(B, T, N_HEAD, C // N_HEAD).transpose(1, 2) for z in (q, k, v))  # (B, H, T, D)
        q, k = self.rotary(rms_norm(q)), self.rotary(rms_norm(k))  # QK-norm, then rotary
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(y.transpose(1, 2).reshape(B, T, C))
        return x + self.out(F.relu(self.fc(rms_norm(x))).square())


class GPT(nn.Module):
    def __init__(self, vocab: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, N_EMBD)
        self.blocks = nn.ModuleList(Block() for _ in range(N_LAYER))
        self.head = nn.Linear(N_EMBD, vocab, bias=False)
        nn.init.zeros_(self.head.weight)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:  # (B, T) -> (B, T, vocab)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=idx.is_cuda):
            x = rms_norm(self.embed(idx))
            for block in self.blocks:
                x = block(x)
            logits = self.head(rms_norm(x)).float()
        return LOGIT_CAP * torch.tanh(logits / LOGIT_CAP)


def orthogonalize(g: torch.Tensor, steps: int) -> torch.Tensor:
    """Approximately the nearest semi-orthogonal matrix to g (quintic Newton-Schulz)."""
    a, b, c = 3.4445, -4.7750, 2.0315
    x = g.to(torch.bfloat16 if g.is_cuda else torch.float32)
    tall = x.size(0) > x.size(1)
    if tall:
        x = x.T
    x = x / (x.norm() + 1e-7)
    for _ in range(steps):
        s = x @ x.T
        x = a * x + (b * s + c * s @ s) @ x
    return (x.T if tall else x).to(g.dtype)


class Muon(torch.optim.Optimizer):
    """Momentum whose update is orthogonalised per matrix (for 2-D hidden weights only)."""

    def __init__(self, params, lr: float, momentum: float, steps: int) -> None:
        super().__init__(params, {"lr": lr, "momentum": momentum, "steps": steps})

    @torch.no_grad()
    def step(self) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                buf = self.state[p].get("buf")
                if buf is None:
                    buf = self.state[p]["buf"] = torch.zeros_like(p.grad)
                buf.mul_(group["momentum"]).add_(p.grad)
                g = p.grad.add(buf, alpha=group["momentum"])  # Nesterov
                scale = max(1.0, p.size(0) / p.size(1)) ** 0.5
                p.add_(orthogonalize(g, group["steps"]), alpha=-group["lr"] * scale)


def lr_factor(progress: float) -> float:
    if progress < WARMUP_FRAC:
        return progress / WARMUP_FRAC
    if progress > 1 - WARMDOWN_FRAC:
        return max(0.0, (1 - progress) / WARMDOWN_FRAC)
    return 1.0


def train(feed):
    model = GPT(feed.vocab_size).to(feed.device)
    hidden = [p for b in model.blocks for p in b.parameters() if p.dim() == 2]
    opts = [Muon(hidden, MATRIX_LR, MUON_MOMENTUM, NS_STEPS),
            torch.optim.AdamW([model.embed.weight, model.head.weight], lr=ADAM_LR, betas=ADAM_BETAS,
                              weight_decay=WEIGHT_DECAY)]
    base = [[g["lr"] for g in o.param_groups] for o in opts]
    step_fn = model
    if COMPILE and feed.device.startswith("cuda"):
        step_fn = torch.compile(model)
    t0, step, loss_ema = time.time(), 0, None
    while True:
        f = lr_factor(feed.progress())
        for o, lrs in zip(opts, base, strict=True):
            for g, lr in zip(o.param_groups, lrs, strict=True):
                g["lr"] = lr * f
        batch = feed.batch(BATCH_SIZE, SEQ_LEN)
        if batch is None:
            break
        x, y = batch
        loss = F.cross_entropy(step_fn(x).view(-1, feed.vocab_size), y.reshape(-1))
        for o in opts:
            o.zero_grad(set_to_none=True)
        loss.backward()
        if GRAD_CLIP:
            torch.nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
        for o in opts:
            o.step()
        step += 1
        if step % LOG_EVERY == 0 or loss_ema is None:
            value = loss.item()
            loss_ema = value if loss_ema is None else 0.8 * loss_ema + 0.2 * value
        if step % LOG_EVERY == 0:
            print(f"step {step} loss {loss_ema:.4f} progress {feed.progress():.2f}", flush=True)
    print(f"steps: {step}")
    print(f"tokens: {feed.tokens_seen}")
    print(f"train_loss_bpb: {(loss_ema or 0.0) / math.log(2):.4f}")
    print(f"train_seconds: {time.time() - t0:.1f}")
    print(f"params: {sum(p.numel() for p in model.parameters())}")
    return step_fn
