"""Hostile: sleeps forever, ignoring signals it can catch."""

import signal
import time


def train(feed):
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    while True:
        time.sleep(3600)
