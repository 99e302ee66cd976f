"""The bubblewrap sandbox, exercised with real bwrap and real processes (no harness needed)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from verify.sandbox import (
    BubblewrapLauncher,
    Limits,
    SandboxUnavailableError,
    sandbox_available,
)

PY = sys.executable
ROOT = Path(__file__).resolve().parents[2]


def sandboxed(code: str, workdir: Path, *, limits: Limits | None = None, timeout: float = 60,
              env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run `code` with the project's interpreter inside the sandbox, as the harness would."""
    launcher = BubblewrapLauncher(limits)
    workdir.mkdir(exist_ok=True)
    (workdir / "train.py").write_text("# the script\n")
    argv = launcher.wrap([PY, "-c", textwrap.dedent(code)], workdir=workdir,
                         readable=[Path(sys.prefix), ROOT / "model"])
    return subprocess.run(argv, cwd=workdir, env=env or {"PATH": "/usr/bin:/bin", "HOME": str(workdir)},
                          preexec_fn=launcher.preexec, start_new_session=True, capture_output=True,
                          text=True, timeout=timeout)


def pids_with(token: str) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            if token.encode() in cmdline and int(entry) != os.getpid():
                out.append(int(entry))
    return out


def wait_until(pred, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


def test_sandbox_is_available_here():
    assert sandbox_available() is None


def test_missing_bwrap_is_named(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory: no bwrap on the PATH
    why = sandbox_available()
    assert why is not None and "bubblewrap" in why and "not installed" in why
    with pytest.raises(SandboxUnavailableError) as e:
        BubblewrapLauncher()
    assert "bwrap" in e.value.missing


def test_filesystem_view_hides_home_keys_and_project(tmp_path):
    home = tmp_path / "node-home"
    home.mkdir()
    secret = "secret-" + uuid.uuid4().hex
    (home / "key").write_text(secret)
    r = sandboxed(f"""
        import os
        print("ROOT", sorted(os.listdir("/")))
        print("HOME_VISIBLE", os.path.exists({str(home)!r}))
        print("ROOTHOME", os.path.exists("/root/.ssh") or os.path.exists("/root/.bashrc"))
        print("PROJECT", sorted(os.listdir({str(ROOT)!r})))
        print("UID", os.getuid())
        print("ENV", sorted(os.environ))
        try:
            print("READ", open({str(home / "key")!r}).read())
        except OSError as e:
            print("DENIED", type(e).__name__)
    """, tmp_path / "work", env={"PATH": "/usr/bin", "HOME": "/x", "RATCHET_SECRET": secret})
    assert r.returncode == 0, r.stderr
    assert secret not in r.stdout + r.stderr
    assert "HOME_VISIBLE False" in r.stdout and "ROOTHOME False" in r.stdout
    assert "DENIED FileNotFoundError" in r.stdout
    uid = int(r.stdout.split("UID ", 1)[1].split()[0])
    assert uid == 65534 if os.geteuid() != 0 else 3_000_000 <= uid < 3_900_000
    project = eval(r.stdout.split("PROJECT ", 1)[1].splitlines()[0])
    assert "chain" not in project and "verify" not in project and "node" not in project
    assert "'RATCHET_SECRET'" not in r.stdout and "'HOME'" in r.stdout
    top = set(eval(r.stdout.split("ROOT ", 1)[1].splitlines()[0]))
    # system dirs, plus the parents of the interpreter (a venv in a checkout anywhere, e.g. /check)
    interpreter_tops = {Path(sys.prefix).resolve().parts[1], Path(sys.base_prefix).resolve().parts[1]}
    assert top <= {"usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32", "etc", "proc", "dev",
                   "tmp", "root", "work", "home", "opt"} | interpreter_tops
    assert (home / "key").read_text() == secret


def test_writes_stay_in_private_tmpfs(tmp_path):
    work = tmp_path / "work"
    r = sandboxed("""
        import os
        open("scratch.bin", "wb").write(b"x" * 1000)
        open("/tmp/scratch.bin", "wb").write(b"y" * 1000)
        open("/dev/shm/scratch.bin", "wb").write(b"y" * 1000)
        open("/dev/null", "wb").write(b"y" * 1000)
        for target in ("train.py", "/usr/evil", "/etc/evil", "/evil", "/dev/evil", "/proc/evil"):
            try:
                open(target, "a").write("evil")
                print("WROTE", target)
            except OSError as e:
                print("REFUSED", target, e.errno)
        print("LISTED", sorted(os.listdir(".")))
    """, work)
    assert r.returncode == 0, r.stderr
    assert "WROTE" not in r.stdout
    assert "LISTED ['scratch.bin', 'train.py']" in r.stdout
    assert sorted(p.name for p in work.iterdir()) == ["train.py"]  # nothing leaked to the host
    assert (work / "train.py").read_text() == "# the script\n"
    assert not Path("/usr/evil").exists()


def test_no_network_even_to_loopback(tmp_path):
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(4)
        srv.setblocking(False)
        port = srv.getsockname()[1]
        r = sandboxed(f"""
            import socket
            for host in ("127.0.0.1", "8.8.8.8"):
                try:
                    socket.create_connection((host, {port}), timeout=2).close()
                    print("CONNECTED", host)
                except OSError as e:
                    print("BLOCKED", host, e.errno)
        """, tmp_path / "work")
        assert r.returncode == 0, r.stderr
        assert "CONNECTED" not in r.stdout and r.stdout.count("BLOCKED") == 2
        with pytest.raises(BlockingIOError):
            srv.accept()


def test_processes_are_private(tmp_path):
    r = sandboxed(f"""
        import os
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
        print("PIDS", len(pids), {os.getpid()} in map(int, pids))
    """, tmp_path / "work")
    n, seen_me = r.stdout.split("PIDS ", 1)[1].split()
    assert int(n) <= 4 and seen_me == "False"


def test_fork_bomb_stops_at_task_limit_and_leaves_nothing(tmp_path):
    token = "forkbomb-" + uuid.uuid4().hex
    r = sandboxed(f"""
        import os, time
        TOKEN = {token!r}
        n = 0
        while n < 10000:
            try:
                pid = os.fork()
            except OSError as e:
                print("FORK_REFUSED", n, e.errno, flush=True)
                break
            if pid == 0:
                time.sleep(600)
                os._exit(0)
            n += 1
        os._exit(3)
    """, tmp_path / "work", limits=Limits(max_tasks=24))
    assert "FORK_REFUSED" in r.stdout, r.stdout + r.stderr
    forked = int(r.stdout.split("FORK_REFUSED ", 1)[1].split()[0])
    assert forked < 24
    # the verifier itself can still fork freely
    assert subprocess.run(["true"]).returncode == 0
    # the sleeping children died with the sandbox's pid namespace
    assert wait_until(lambda: not pids_with(token), 10), pids_with(token)


def test_killing_the_process_group_ends_the_whole_sandbox(tmp_path):
    token = "sleeper-" + uuid.uuid4().hex
    work = tmp_path / "work"
    work.mkdir()
    (work / "train.py").write_text("")
    launcher = BubblewrapLauncher()
    code = f"import os,time\nTOKEN={token!r}\nfor _ in range(3):\n    os.fork() or os.setsid()\ntime.sleep(600)"
    argv = launcher.wrap([PY, "-c", code], workdir=work, readable=[Path(sys.prefix)])
    proc = subprocess.Popen(argv, cwd=work, env={"PATH": "/usr/bin"}, preexec_fn=launcher.preexec,
                            start_new_session=True)
    try:
        assert wait_until(lambda: len(pids_with(token)) >= 8, 30), pids_with(token)
        os.killpg(proc.pid, signal.SIGKILL)  # what the harness does at the wall-clock cap
        proc.wait(timeout=10)
        assert wait_until(lambda: not pids_with(token), 10), pids_with(token)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def test_memory_limit(tmp_path):
    r = sandboxed("""
        chunks = []
        try:
            for _ in range(64):
                chunks.append(bytearray(64 << 20))
            print("ALLOCATED", len(chunks))
        except MemoryError:
            print("MEMORY_ERROR", len(chunks))
    """, tmp_path / "work", limits=Limits(memory_bytes=768 << 20))
    assert "MEMORY_ERROR" in r.stdout, r.stdout + r.stderr
    assert int(r.stdout.split("MEMORY_ERROR ", 1)[1].split()[0]) < 12


def test_file_size_and_tmpfs_size_limits(tmp_path):
    r = sandboxed("""
        for path, n in (("big.bin", 40), ("/tmp/a.bin", 15), ("/tmp/b.bin", 15)):
            try:
                with open(path, "wb") as f:
                    for _ in range(n):
                        f.write(b"z" * (1 << 20))
                print("WROTE", path)
            except OSError as e:
                print("STOPPED", path, e.errno)
    """, tmp_path / "work", limits=Limits(max_file_bytes=16 << 20, tmpfs_bytes=24 << 20))
    assert "STOPPED big.bin 27" in r.stdout, r.stdout + r.stderr  # EFBIG: over RLIMIT_FSIZE
    assert "WROTE /tmp/a.bin" in r.stdout
    assert "STOPPED /tmp/b.bin 28" in r.stdout  # ENOSPC: the tmpfs is full


def test_wrap_puts_tmp_before_binds_under_it(tmp_path):
    launcher = BubblewrapLauncher()
    work = tmp_path / "work"
    work.mkdir()
    (work / "train.py").write_text("")
    extra = tmp_path / "lib"
    extra.mkdir()
    argv = launcher.wrap(["python"], workdir=work, readable=[extra])
    tmp_at = argv.index("/tmp")
    assert argv[tmp_at - 1] == "--tmpfs"
    assert argv.index(str(extra)) > tmp_at and argv.index(str(work.resolve())) > tmp_at
    assert "--unshare-net" in argv or "--unshare-all" in argv
    assert "--die-with-parent" in argv and "--new-session" in argv
    assert argv[-1] == "python"


def test_nested_user_namespaces_are_refused(tmp_path):
    r = sandboxed("""
        import os, subprocess, threading
        r = subprocess.run(["unshare", "-U", "true"], capture_output=True)
        print("UNSHARE", r.returncode)
        t = threading.Thread(target=lambda: print("THREAD_OK"))
        t.start(); t.join()
        pid = os.fork()
        if pid == 0:
            os._exit(7)
        print("FORK_OK", os.waitpid(pid, 0)[1] >> 8)
        print("SPAWN_OK", subprocess.run(["true"]).returncode)
    """, tmp_path / "work")
    assert "UNSHARE" in r.stdout and "UNSHARE 0" not in r.stdout, r.stdout + r.stderr
    # threads, fork and subprocesses still work under the filter
    assert "THREAD_OK" in r.stdout and "FORK_OK 7" in r.stdout and "SPAWN_OK 0" in r.stdout


def test_gpu_launcher_binds_only_existing_device_nodes(tmp_path):
    from verify.sandbox import gpu_devices, launcher_for_device

    cpu = launcher_for_device("cpu")
    assert cpu.devices == () and cpu.limits.memory_bytes is not None
    gpu = launcher_for_device("cuda:0")
    assert gpu.limits.memory_bytes is None
    assert gpu.devices == gpu_devices(0) and all(Path(d).exists() for d in gpu.devices)
    work = tmp_path / "work"
    work.mkdir()
    argv = gpu.wrap(["python"], workdir=work, readable=[])
    for dev in gpu.devices:
        assert argv[argv.index(dev) - 1] == "--dev-bind"
