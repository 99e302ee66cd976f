"""Hostile: writes a huge file into its working directory, then into /tmp."""

import os


def train(feed):
    chunk = b"\0" * (8 << 20)
    written = 0
    for path in ("huge.bin", "/tmp/huge.bin", os.path.expanduser("~/huge.bin")):
        try:
            with open(path, "wb") as f:
                for _ in range(100000):
                    f.write(chunk)
                    written += len(chunk)
        except OSError as e:
            last = e
    if written > 4 << 30:
        print("BREACH", written)
        raise SystemExit("BREACH")
    raise RuntimeError(f"blocked: stopped after {written >> 20} MiB ({last})")
