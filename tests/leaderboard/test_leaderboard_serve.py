"""`ratchet serve` as a real process, the way `ratchet demo` starts it: listen, answer, stop on SIGTERM."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from lb_world import World


def _ratchet(home: Path, *args: str) -> list[str]:
    return [sys.executable, "-c", "from node.cli import main; main()", "--home", str(home), *args]


def _children(pid: int) -> list[int]:
    """Live child processes of `pid` (from /proc: Linux only, like the sandbox)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            out.append(int(stat.parent.name))
    return out


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _read_line(proc: subprocess.Popen[str], timeout: float) -> str:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    if not ready:
        raise AssertionError(f"no output within {timeout} s")
    return proc.stdout.readline()


@pytest.mark.timeout(60)
def test_serve_process_answers_and_stops_on_sigterm(world: World) -> None:
    proc = subprocess.Popen(_ratchet(world.home, "serve", "--host", "127.0.0.1", "--port", "0"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = _read_line(proc, 30)
        assert line.startswith("leaderboard: http://127.0.0.1:"), line
        url = line.split()[1].rstrip("/")
        with urllib.request.urlopen(url + "/api/arenas", timeout=10) as r:
            body = json.load(r)
        assert body["arenas"][0]["head"]["id"] == world.accepted[-1].id.hex()
        with urllib.request.urlopen(url + "/", timeout=10) as r:
            assert "val_bpb over chain height" in r.read().decode()
        builders = _children(proc.pid)
        assert builders  # the snapshot builder (and multiprocessing's resource tracker)
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
        assert time.monotonic() - started < 10
        deadline = time.monotonic() + 15  # the resource tracker leaves once its pipe closes
        while any(_alive(pid) for pid in builders) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(_alive(pid) for pid in builders)
    finally:
        if proc.poll() is None:
            proc.terminate()  # graceful: the server stops its builder process too
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


@pytest.mark.timeout(60)
def test_builder_process_leaves_with_a_killed_server(world: World) -> None:
    proc = subprocess.Popen(_ratchet(world.home, "serve", "--port", "0"), stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    try:
        assert _read_line(proc, 30).startswith("leaderboard: ")
        kids = _children(proc.pid)
        assert kids
    finally:
        proc.kill()  # SIGKILL: the server cannot stop its builder itself
        proc.wait(timeout=10)
    deadline = time.monotonic() + 20
    while any(_alive(pid) for pid in kids) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = [pid for pid in kids if _alive(pid)]
    for pid in left:  # never leave a stray process behind, even when failing
        os.kill(pid, signal.SIGKILL)
    assert left == []


def test_serve_reports_a_busy_port(world: World) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = subprocess.run(_ratchet(world.home, "serve", "--port", str(port)), capture_output=True, text=True,
                           timeout=30)
    assert r.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in r.stderr
