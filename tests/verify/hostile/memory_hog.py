"""Hostile: allocates (and touches) memory without bound."""


def train(feed):
    hoard = []
    for _ in range(100000):
        block = bytearray(128 << 20)
        block[::4096] = b"x" * len(block[::4096])
        hoard.append(block)
    print("BREACH", len(hoard))
    raise SystemExit("BREACH")
