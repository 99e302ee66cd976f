"""Integer-only randomness: SplitMix64 streams keyed by a stretched seed.

Every draw is exact 64-bit integer arithmetic (numpy uint64 wraps modulo
2**64), so a seed yields the same bytes on every platform and numpy version.

The key is stretched with PBKDF2: seeds are 31-bit, so a script that could
test candidate seeds cheaply against the training text it sees could rebuild
the whole source, validation text included. At ~2**16 HMAC rounds per guess,
trying all seeds costs years; deriving the key once costs tens of ms.
"""

from __future__ import annotations

import hashlib

import numpy as np

GAMMA = np.uint64(0x9E3779B97F4A7C15)
M1 = np.uint64(0xBF58476D1CE4E5B9)
M2 = np.uint64(0x94D049BB133111EB)
KDF_ROUNDS = 1 << 16


def derive_key(seed: int, domain: bytes) -> bytes:
    """The 32-byte key every stream of one draw derives from."""
    if not 0 <= seed < 2**63:
        raise ValueError(f"seed out of range: {seed}")
    return hashlib.pbkdf2_hmac("sha256", str(seed).encode(), domain, KDF_ROUNDS)


def subkey(key: bytes, name: str) -> bytes:
    return hashlib.sha256(key + b"/" + name.encode()).digest()


def stream(key: bytes, name: str, n: int, start: int = 0) -> np.ndarray:
    """n uint64 values of stream `name`: SplitMix64 outputs start+1 .. start+n."""
    state = np.uint64(int.from_bytes(subkey(key, name)[:8], "little"))
    idx = np.arange(start + 1, start + n + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = state + idx * GAMMA
        z = (z ^ (z >> np.uint64(30))) * M1
        z = (z ^ (z >> np.uint64(27))) * M2
        return z ^ (z >> np.uint64(31))


def below(r: np.ndarray, n: int) -> np.ndarray:
    """Map uniform uint64 values to [0, n) (bias below n / 2**64)."""
    return (r % np.uint64(n)).astype(np.int64)
