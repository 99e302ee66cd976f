"""The bubblewrap sandbox that runs untrusted training scripts (a model.harness Launcher).

Inside the sandbox a script sees a read-only system (/usr and its symlinks, a
handful of /etc files the dynamic loader needs), the read-only paths the
harness names (the interpreter, site-packages, the harness source), a fresh
/proc of its own pid namespace, a minimal /dev, and three size-limited tmpfs
mounts it may write: /tmp, /dev/shm and its working directory, into which the caller's
files (train.py) are bound read-only. It does not see the node's home, keys,
store, the project's other packages, other processes or any network (fresh
user, pid, net, ipc, uts and cgroup namespaces; nested user namespaces are
refused).

Resource limits come in two places, because RLIMIT_NPROC counts tasks per
(user namespace, uid) and exempts uid 0: set before bubblewrap runs, it
would count every process of the verifier's uid on the machine. So
`preexec` (in the child, before exec of bwrap) sets the per-process limits
that inherit cleanly (address space, open files, file size, CPU seconds, no
core dumps), and a few lines of Python run as the sandbox's first process
(the shim) install a seccomp filter that refuses new user namespaces (where
a script would be root over its own mounts: unlimited tmpfs, a reset task
count) and set RLIMIT_NPROC where it counts only the sandbox's own tasks:
- verifier not root: inside the sandbox's new user namespace (uid 65534
  there), so the count is per (that namespace, uid);
- verifier root: a user namespace could only map uid 0, which the limit
  exempts, so bwrap runs without one and the shim drops (setuid) to a fresh
  unused uid per run, whose tasks are the sandbox's alone.
Either way a fork bomb stops at `max_tasks` without touching the verifier.
The shim also keeps only an allow-list of environment variables.
The wall-clock cap is the caller's: killing bwrap (its process group)
kills the sandbox's init (--die-with-parent), and the kernel then kills
every process of its pid namespace.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from verify.errors import VerifyError

BWRAP = "bwrap"
SANDBOX_UID = 65534  # "nobody" inside the sandbox's own user namespace
ROOT_MODE_UIDS = (3_000_000, 3_900_000)  # when the verifier runs as root: a fresh uid per run
MERGED_DIRS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
ETC_FILES = ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime")
ENV_KEEP = ("PATH", "PYTHONPATH", "HOME", "TMPDIR", "PYTHONHASHSEED", "PYTHONDONTWRITEBYTECODE",
            "LANG", "LC_ALL", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
            "CUDA_VISIBLE_DEVICES")
GIB = 1 << 30

# Runs first inside the sandbox (python -I -S -c): the task limit, counted per sandbox;
# a seccomp filter refusing new user namespaces (clone/unshare with CLONE_NEWUSER,
# clone3 whose flags it cannot read: ENOSYS makes libc fall back to clone); then the
# drop to the run's uid (root mode), the environment allow-list and exec of the worker.
_SHIM = """
import ctypes, os, platform, resource, struct, sys
n, keep, uid, argv = int(sys.argv[1]), sys.argv[2].split(","), int(sys.argv[3]), sys.argv[5:]
resource.setrlimit(resource.RLIMIT_NPROC, (n, n))
ARCH = {"x86_64": (0xC000003E, 56, 272, 435), "aarch64": (0xC00000B7, 220, 97, 435)}
if platform.machine() in ARCH:
    audit, clone, unshare, clone3 = ARCH[platform.machine()]
    LD, JEQ, JSET, RET = 0x20, 0x15, 0x45, 0x06
    ALLOW, EPERM, ENOSYS = 0x7FFF0000, 0x00050001, 0x00050026
    prog = [(LD, 0, 0, 4), (JEQ, 1, 0, audit), (RET, 0, 0, ENOSYS), (LD, 0, 0, 0),
            (0x35, 0, 1, 0x40000000), (RET, 0, 0, ENOSYS),
            (JEQ, 0, 1, clone3), (RET, 0, 0, ENOSYS),
            (JEQ, 1, 0, clone), (JEQ, 0, 3, unshare),
            (LD, 0, 0, 16), (JSET, 0, 1, 0x10000000), (RET, 0, 0, EPERM),
            (RET, 0, 0, ALLOW)]
    buf = ctypes.create_string_buffer(b"".join(struct.pack("HBBI", *i) for i in prog))
    fprog = struct.pack("HxxxxxxP", len(prog), ctypes.addressof(buf))
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(38, 1, 0, 0, 0) or libc.prctl(22, 2, ctypes.c_char_p(fprog), 0, 0):
        raise SystemExit("sandbox: seccomp filter refused: errno %d" % ctypes.get_errno())
if uid >= 0:
    os.setgroups([]); os.setgid(uid); os.setuid(uid)
    if os.getuid() != uid or os.geteuid() != uid:
        raise SystemExit("sandbox: could not drop to uid %d" % uid)
os.execve(argv[0], argv, {k: v for k, v in os.environ.items() if k in keep})
"""


class SandboxError(VerifyError):
    """Base error of the sandbox."""


class SandboxUnavailableError(SandboxError):
    def __init__(self, missing: str) -> None:
        super().__init__(f"no usable sandbox: {missing}")
        self.missing = missing


def _default_memory() -> int:
    """Half the machine's RAM, at most 16 GiB: room for a CPU arena, not for a runaway script."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        total = 8 * GIB
    return max(GIB, min(16 * GIB, total // 2))


@dataclass(frozen=True)
class Limits:
    """Per-run resource limits. memory_bytes None leaves the address space unlimited (CUDA maps
    far more virtual memory than it uses, so a GPU run relies on the device's own memory)."""

    memory_bytes: int | None = field(default_factory=_default_memory)  # RLIMIT_AS per process
    max_tasks: int = 128  # processes + threads inside the sandbox (RLIMIT_NPROC in its userns)
    max_open_files: int = 1024  # RLIMIT_NOFILE
    max_file_bytes: int = 256 << 20  # RLIMIT_FSIZE: the largest file it may write (incl. its log)
    cpu_seconds: int | None = 4 * 3600  # RLIMIT_CPU per process: a backstop under the wall cap
    tmpfs_bytes: int = 512 << 20  # size of each writable tmpfs (/tmp and the working directory)


class BubblewrapLauncher:
    """Launcher for model.harness.run_script: the worker runs under bwrap (see module doc)."""

    name = "bubblewrap"

    def __init__(self, limits: Limits | None = None, *, devices: tuple[str, ...] = (),
                 bwrap: str | None = None) -> None:
        self.limits = limits or Limits()
        self.devices = tuple(devices)  # e.g. ("/dev/nvidia0", "/dev/nvidiactl", "/dev/nvidia-uvm")
        found = bwrap or shutil.which(BWRAP)
        if found is None:
            raise SandboxUnavailableError("bubblewrap (bwrap) is not installed")
        self.bwrap = found

    def wrap(self, argv: list[str], *, workdir: Path, readable: list[Path]) -> list[str]:
        workdir = Path(workdir).resolve()
        lim = self.limits
        cmd = [self.bwrap, *self._identity(), "--hostname", "sandbox", "--die-with-parent",
               "--new-session",
               "--ro-bind", "/usr", "/usr"]
        for d in MERGED_DIRS:
            if os.path.islink(d):
                cmd += ["--symlink", os.readlink(d), d]
            elif os.path.isdir(d):
                cmd += ["--ro-bind", d, d]
        for f in ETC_FILES:
            cmd += ["--ro-bind-try", f, f]
        cmd += ["--proc", "/proc", "--dev", "/dev"]
        for dev in self.devices:
            cmd += ["--dev-bind", dev, dev]
        if self.devices:  # the CUDA driver reads PCI topology from sysfs
            cmd += ["--ro-bind-try", "/sys/bus", "/sys/bus", "--ro-bind-try", "/sys/devices", "/sys/devices",
                    "--ro-bind-try", "/sys/module/nvidia", "/sys/module/nvidia"]
        cmd += ["--size", str(lim.tmpfs_bytes), "--perms", "1777", "--tmpfs", "/dev/shm"]
        # /tmp first: a bind under /tmp made before it would be hidden by the tmpfs.
        cmd += ["--size", str(lim.tmpfs_bytes), "--perms", "1777", "--tmpfs", "/tmp"]
        made = {Path("/"), Path("/tmp"), Path("/usr"), Path("/dev"), Path("/proc")}
        for p in _minimal_cover([*readable, *_interpreter_paths()]):
            if not _under(p, Path("/usr")):
                cmd += _parents(p, made) + ["--ro-bind", str(p), str(p)]
        cmd += _parents(workdir, made)
        cmd += ["--size", str(lim.tmpfs_bytes), "--perms", "0777", "--tmpfs", str(workdir)]
        for entry in sorted(workdir.iterdir()):
            cmd += ["--ro-bind", str(entry), str(entry)]
        # the new root and /dev are tmpfs mounts with no size limit: read-only once set up
        cmd += ["--remount-ro", "/dev", "--remount-ro", "/", "--chdir", str(workdir), "--",
                str(Path(sys.executable).resolve()), "-I", "-S", "-c", _SHIM, str(lim.max_tasks),
                ",".join(ENV_KEEP), str(self._run_uid()), "--", *argv]
        return cmd

    def _identity(self) -> list[str]:
        """Namespaces and user: see the module doc for why root and non-root differ."""
        if os.geteuid() != 0:
            return ["--unshare-all", "--unshare-user", "--disable-userns",
                    "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID), "--cap-drop", "ALL"]
        # Root: no user namespace (its only mapping would be uid 0, which RLIMIT_NPROC
        # exempts); the shim drops to an unused uid of its own instead.
        return ["--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
                "--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]

    def _run_uid(self) -> int:
        """The uid the shim switches to when bwrap runs as root (-1: stay, a user namespace did it).

        Fresh per run, from a range no real account uses, so the task limit
        counts this sandbox's tasks only."""
        if os.geteuid() != 0:
            return -1
        return ROOT_MODE_UIDS[0] + int.from_bytes(os.urandom(4), "big") % (ROOT_MODE_UIDS[1] - ROOT_MODE_UIDS[0])

    def preexec(self) -> None:
        lim = self.limits
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_FSIZE, (lim.max_file_bytes, lim.max_file_bytes))
        resource.setrlimit(resource.RLIMIT_NOFILE, (lim.max_open_files, lim.max_open_files))
        if lim.memory_bytes is not None:
            resource.setrlimit(resource.RLIMIT_AS, (lim.memory_bytes, lim.memory_bytes))
        if lim.cpu_seconds is not None:
            resource.setrlimit(resource.RLIMIT_CPU, (lim.cpu_seconds, lim.cpu_seconds))


def gpu_devices(index: int = 0) -> tuple[str, ...]:
    """Device nodes of one NVIDIA GPU and the driver's control nodes (those that exist here)."""
    names = [f"/dev/nvidia{index}", "/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools",
             "/dev/nvidia-modeset"]
    return tuple(n for n in names if os.path.exists(n))


def launcher_for_device(device: str) -> BubblewrapLauncher:
    """The sandbox for an arena's device: a GPU run gets its GPU's nodes and no address-space
    limit (CUDA reserves far more virtual memory than it uses)."""
    if device.startswith("cuda"):
        index = int(device.split(":", 1)[1]) if ":" in device else 0
        return BubblewrapLauncher(Limits(memory_bytes=None), devices=gpu_devices(index))
    return BubblewrapLauncher()


def _interpreter_paths() -> list[Path]:
    """What the shim needs: the interpreter binary's tree and the standard library."""
    exe = Path(sys.executable).resolve()
    return [exe.parent.parent, Path(sys.base_prefix).resolve()]


def _parents(p: Path, made: set[Path]) -> list[str]:
    """Directories leading to a mount point, world-traversable (bwrap would make them 0700)."""
    out: list[str] = []
    for d in reversed(p.parents):
        if d not in made:
            made.add(d)
            out += ["--perms", "0755", "--dir", str(d)]
    return out


def _under(p: Path, root: Path) -> bool:
    return p == root or root in p.parents


def _minimal_cover(paths: list[Path]) -> list[Path]:
    """Existing, resolved paths with those inside another one dropped, shortest first."""
    out: list[Path] = []
    for p in sorted({Path(x).resolve() for x in paths if Path(x).exists()}, key=lambda q: len(q.parts)):
        if not any(_under(p, q) for q in out):
            out.append(p)
    return out


_probe_cache: dict[str, str | None] = {}


def sandbox_available() -> str | None:
    """None if bubblewrap can start a sandbox here, else a sentence naming what is missing.

    Starts one real sandbox (cached per process): installed-but-unusable
    bubblewrap (no unprivileged user namespaces, a container that forbids
    them) is the common failure and only shows up when trying.
    """
    exe = shutil.which(BWRAP)
    if exe is None:
        return "bubblewrap (bwrap) is not installed (Debian/Ubuntu: apt-get install bubblewrap)"
    if exe in _probe_cache:
        return _probe_cache[exe]
    result = _probe(exe)
    _probe_cache[exe] = result
    return result


def _probe(exe: str) -> str | None:
    import tempfile

    launcher = BubblewrapLauncher(bwrap=exe)
    with tempfile.TemporaryDirectory(prefix="ratchet-probe-") as tmp:
        exe_py = str(Path(sys.executable).resolve())
        argv = launcher.wrap([exe_py, "-I", "-S", "-c", "print('ok')"], workdir=Path(tmp),
                             readable=[])
        try:
            r = subprocess.run(argv, capture_output=True, timeout=30, preexec_fn=launcher.preexec,
                               cwd=tmp, env={"PATH": "/usr/bin:/bin"})
        except (OSError, subprocess.TimeoutExpired) as e:
            return f"bubblewrap at {exe} could not start a sandbox ({e})"
    if r.returncode != 0 or r.stdout.strip() != b"ok":
        err = r.stderr.decode("utf-8", "replace").strip().splitlines()
        why = err[-1] if err else f"exit status {r.returncode}"
        hint = ""
        if "namespace" in why or "ermission" in why:
            hint = ("; unprivileged user namespaces may be disabled (sysctl "
                    "kernel.unprivileged_userns_clone=1, or kernel.apparmor_restrict_unprivileged_userns=0)")
        return f"bubblewrap at {exe} cannot create a sandbox here ({why}){hint}"
    return None
