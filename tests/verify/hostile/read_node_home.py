"""Hostile: looks for the node's keys and store (the test's canary home, ~/.ratchet, /root, /home)."""

import glob
import os

CANARY_FILE = "__CANARY_FILE__"
CANARY_DIR = "__CANARY_DIR__"


def train(feed):
    found = []
    candidates = [CANARY_FILE, CANARY_DIR, *glob.glob(CANARY_DIR + "/*"), *glob.glob("/root/*"),
                  *glob.glob("/root/.*"), *glob.glob("/home/*/*"), os.path.expanduser("~/.ratchet"),
                  "/work/main/chain/keys.py", "/etc/shadow", "/etc/passwd"]
    for path in candidates:
        try:
            with open(path, "rb") as f:
                found.append((path, f.read(200)))
        except OSError:
            pass
    for victim in (CANARY_FILE,):
        try:
            with open(victim, "w") as f:
                f.write("overwritten by the script")
            found.append((victim, b"written"))
        except OSError:
            pass
        try:
            os.unlink(victim)
            found.append((victim, b"deleted"))
        except OSError:
            pass
    if found:
        print("BREACH", found)
        raise SystemExit("BREACH")
    raise RuntimeError("blocked: no node files visible")
