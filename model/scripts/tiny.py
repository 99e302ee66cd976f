"""Reference training script of the `tiny` arena: a small byte-level GPT.

Plain PyTorch: rotary position embeddings, SDPA causal attention, a GELU
MLP, AdamW with warmup and cosine decay. The harness calls train(feed)
(see model/harness/__init__.py for the contract); nothing runs at import.
"""

import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

N_LAYER = 2  # transformer blocks
N_HEAD = 4  # attention heads
N_EMBD = 64  # model width
MLP_MULT = 4  # MLP hidden width / model width
BATCH_SIZE = 16  # sequences per step
SEQ_LEN = 128  # bytes per sequence
LR = 3e-3  # peak learning rate (AdamW)
WEIGHT_DECAY = 0.01  # AdamW decoupled weight decay on matrices
BETAS = (0.9, 0.95)  # AdamW betas
WARMUP_FRAC = 0.05  # fraction of the budget spent warming up
FINAL_LR_FRAC = 0.1  # learning rate at the end / peak
GRAD_CLIP = 1.0  # max gradient norm
INIT_STD = 0.02  # std of the normal init
ROPE_BASE = 10000.0  # rotary embedding base
TIE_EMBEDDINGS = True  # share the input embedding and output head
LOG_EVERY = 200  # steps between progress lines


class Rotary(nn.Module):
    def __init__(self, head_dim: int, base: float) -> None:
        super().__init__()
        inv = 1.0 / (base ** (torch.arange(0, head_dim, 2).float() / head_dim))
        self.register_buffer("inv_freq", inv, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, H, T, D)
        t = torch.arange(x.shape[-2], device=x.device, dtype=self.inv_freq.dtype)
        freqs = torch.outer(t, self.inv_freq)  # (T, D/2)
        cos, sin = freqs.cos().to(x.dtype), freqs.sin().to(x.dtype)
        x1, x2 = x[..., 0::2], x[..., 1::2]
        return torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1).flatten(-2)


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(N_EMBD)
        self.qkv = nn.Linear(N_EMBD, 3 * N_EMBD, bias=False)
        self.proj = nn.Linear(N_EMBD, N_EMBD, bias=False)
        self.ln2 = nn.LayerNorm(N_EMBD)
        self.fc = nn.Linear(N_EMBD, MLP_MULT * N_EMBD, bias=False)
        self.out = nn.Linear(MLP_MULT * N_EMBD, N_EMBD, bias=False)
        self.rotary = Rotary(N_EMBD // N_HEAD, ROPE_BASE)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, C)
        B, T, C = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(C, dim=-1)
        q, k, v = (z.view(B, T, N_HEAD, C // N_HEAD).transpose(1, 2) for z in (q, k, v))  # (B, H, T, D)
        q, k = self.rotary(q), self.rotary(k)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(y.transpose(1, 2).reshape(B, T, C))
        return x + self.out(F.gelu(self.fc(self.ln2(x))))


class GPT(nn.Module):
    def __init__(self, vocab: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, N_EMBD)
        self.blocks = nn.ModuleList(Block() for _ in range(N_LAYER))
        self.ln_f = nn.LayerNorm(N_EMBD)
        self.head = nn.Linear(N_EMBD, vocab, bias=False)
        if TIE_EMBEDDINGS:
            self.head.weight = self.embed.weight
        for name, p in self.named_parameters():
            if p.dim() == 2:
                std = INIT_STD / math.sqrt(2 * N_LAYER) if name.endswith(("proj.weight", "out.weight")) else INIT_STD
                nn.init.normal_(p, std=std)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:  # (B, T) -> (B, T, vocab)
        x = self.embed(idx)
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_f(x))


def lr_at(progress: float) -> float:
    if progress < WARMUP_FRAC:
        return LR * progress / WARMUP_FRAC
    p = (progress - WARMUP_FRAC) / max(1e-9, 1 - WARMUP_FRAC)
    return LR * (FINAL_LR_FRAC + (1 - FINAL_LR_FRAC) * 0.5 * (1 + math.cos(math.pi * min(p, 1.0))))


def train(feed):
    model = GPT(feed.vocab_size).to(feed.device)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    other = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": WEIGHT_DECAY},
                             {"params": other, "weight_decay": 0.0}], lr=LR, betas=BETAS)
    t0, step, loss_ema = time.time(), 0, None
    while True:
        for group in opt.param_groups:
            group["lr"] = lr_at(feed.progress())
        batch = feed.batch(BATCH_SIZE, SEQ_LEN)
        if batch is None:
            break
        x, y = batch
        loss = F.cross_entropy(model(x).view(-1, feed.vocab_size), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
        opt.step()
        step += 1
        loss_ema = loss.item() if loss_ema is None else 0.9 * loss_ema + 0.1 * loss.item()
        if step % LOG_EVERY == 0:
            print(f"step {step} loss {loss_ema:.4f} bpb {loss_ema / math.log(2):.4f}", flush=True)
    elapsed = time.time() - t0
    params = sum(p.numel() for p in model.parameters())
    print(f"steps: {step}")
    print(f"tokens: {feed.tokens_seen}")
    print(f"train_loss_bpb: {(loss_ema or 0.0) / math.log(2):.4f}")
    print(f"train_seconds: {elapsed:.1f}")
    print(f"params: {params}")
    return model
