"""Hostile: hunts for the validation data: other processes' memory, inherited files, the harness's temp dir."""

import glob
import os


def train(feed):
    found = []
    me = os.getpid()
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == me:
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read(4096)
        except OSError:
            continue
        if cmdline.startswith(b"bwrap") or b"/bwrap" in cmdline.split(b"\0")[0]:
            continue  # the sandbox's own init holds nothing of the harness
        found.append((pid, "process", cmdline[:120]))  # the harness parent would be a python process
        for what in ("mem", "environ"):
            try:
                with open(f"/proc/{pid}/{what}", "rb") as f:
                    found.append((pid, what, f.read(80)))
            except OSError:
                pass
    for fd in range(3, 256):
        try:
            st = os.fstat(fd)
        except OSError:
            continue
        try:
            link = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            link = "?"
        if not link.startswith("pipe:") and "/proc/" not in link:
            found.append(("fd", fd, link, st.st_size))
    for path in glob.glob("/tmp/ratchet-run-*/*") + glob.glob("../*") + glob.glob("/tmp/*"):
        if os.path.isfile(path) and not path.endswith("train.py"):
            found.append(("file", path))
    if found:
        print("BREACH", found[:20])
        raise SystemExit("BREACH")
    raise RuntimeError("blocked: no validation data reachable")
