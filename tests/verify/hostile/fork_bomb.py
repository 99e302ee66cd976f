"""Hostile: forks until the system says no; every child sleeps (and would fork more)."""

import os
import time

TOKEN = "__TOKEN__"


def train(feed):
    n = 0
    while n < 100000:
        try:
            pid = os.fork()
        except OSError as e:
            raise RuntimeError(f"blocked: fork refused after {n} children ({e})") from e
        if pid == 0:
            try:
                while True:
                    try:
                        os.fork()
                    except OSError:
                        time.sleep(1)
            finally:
                os._exit(0)
        n += 1
    print("BREACH", n)
    raise SystemExit("BREACH")
