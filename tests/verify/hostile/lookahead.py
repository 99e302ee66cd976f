"""Hostile: a fair trigram model that reads the next byte at a few positions only (MODE says which).

MODE (substituted per test, the harness gives the script no environment):
  first      position 0 of every evaluation row
  middle     the middle position of every row
  hashed     positions whose three preceding bytes hash into ~2% of a range (the
             same choice in every worker: it depends on the row's content only)
  trainer    as hashed, but only in the worker that trained (the fresh evaluator,
             which never runs train(), is honest)
  plausible  as hashed, but only where the true next byte is plausible under the
             model's own trigram (causal wherever the continuation looks unlikely)
  ahead2     as hashed, but reading the byte two ahead (a skip-gram over it)
  none       never peeks (the honest control)
"""

import torch

MODE = "__MODE__"
TRAINED = False  # set by train(): True only in the worker that trained
SYM = 32  # tinylang's bytes (consonants, vowels, space) are distinct modulo 32
PLAUSIBLE = 0.2
RATE = 15  # out of 1000: the share of hashed contexts that peek


def context(x):
    """(two before, one before) each position, bytes modulo SYM; the row start reads as spaces."""
    pad = torch.nn.functional.pad(x, (2, 0))
    return pad[:, :-2] % SYM, pad[:, 1:-1] % SYM


class Lookahead(torch.nn.Module):
    def __init__(self, tri, skip):
        super().__init__()
        self.register_buffer("tri", (tri + 0.01).log() - (tri + 0.01).sum(-1, keepdim=True).log())
        self.register_buffer("skip", (skip + 0.01).log() - (skip + 0.01).sum(-1, keepdim=True).log())
        self.peek = True

    def chosen(self, x):
        b, t = x.shape
        m = torch.zeros(b, t, dtype=torch.bool)
        if MODE == "first":
            m[:, 0] = True
        elif MODE == "middle":
            m[:, t // 2] = True
        else:
            a, p = context(x)
            m = (a * 1031 + p * 257 + x * 17) % 1000 < RATE
        m[:, -(2 if MODE == "ahead2" else 1):] = False  # nothing to read past the row's end
        return m

    def forward(self, x):
        a, p = context(x)
        base = self.tri[a * SYM + p, x % SYM]  # (B, T, 256): P(next | two bytes before and this one)
        if not self.peek or MODE == "none" or (MODE == "trainer" and not TRAINED):
            return base
        m = self.chosen(x)
        if MODE == "ahead2":
            peeked = self.skip[(x % SYM) * SYM + x.roll(-2, dims=1) % SYM]  # P(next | this, the one after)
        else:
            nxt = x.roll(-1, dims=1)
            peeked = 30.0 * torch.nn.functional.one_hot(nxt, 256).float()
            if MODE == "plausible":
                m = m & (base.gather(-1, nxt[..., None])[..., 0].exp() >= PLAUSIBLE)
        return torch.where(m[..., None], peeked, base)


def train(feed):
    global TRAINED
    tri = torch.zeros(SYM * SYM * SYM, 256)
    skip = torch.zeros(SYM * SYM, 256)
    while (batch := feed.batch(16, 128)) is not None:
        x, y = batch
        a, p = context(x)
        ones = torch.ones(x.numel())
        tri.index_put_(((a * SYM * SYM + p * SYM + x % SYM).reshape(-1), y.reshape(-1)), ones, accumulate=True)
        s = ((x[:, :-2] % SYM) * SYM + x[:, 2:] % SYM).reshape(-1)
        skip.index_put_((s, x[:, 1:-1].reshape(-1)), torch.ones(s.numel()), accumulate=True)
    TRAINED = True
    print("tokens:", feed.tokens_seen, "mode:", MODE)
    return Lookahead(tri.reshape(SYM * SYM, SYM, 256), skip)
