"""run_script: one training run of an untrusted script under the harness (the trusted parent).

The parent draws the data, starts the worker through a Launcher, serves
training batches until the budget is spent, enforces the wall-clock cap by
killing the worker's process group, then runs the evaluation schedule and
scores. Every way a script can fail ends in a RunResult naming it; only
harness-side problems (missing data) raise.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from model.errors import WorkerStartError
from model.harness import wire
from model.harness.config import HarnessConfig
from model.harness.cpuclock import TreeClock
from model.harness.evaluate import (
    VOCAB,
    CallSpec,
    EvalFailure,
    Scorer,
    draw_futures,
    inputs,
    schedule,
)
from model.harness.launch import DirectLauncher, Launcher
from model.sources import Data, draw, rng, source_key

MODEL_DIR = Path(__file__).resolve().parent.parent
PROJECT_ROOT = MODEL_DIR.parent
WORKER_FAILS = {"syntax_error", "import_error", "missing_train", "script_error", "out_of_memory",
                "wrong_return", "eval_error", "bad_logits_shape", "unpicklable_model"}
CHEATS = {"peeks_future", "batch_mixing", "stateful_eval"}
DIVERGED_BPB = 8.0  # worse than guessing uniformly among 256 bytes
DETAIL_CHARS = 3000
DRAWN_KEPT = 4  # generated datasets kept for the next runs of the same seed (a pair, a rerun)
_drawn: OrderedDict[tuple[HarnessConfig, int], Data] = OrderedDict()
_draw_lock = threading.Lock()


def drawn(config: HarnessConfig, seed: int, key: bytes) -> Data:
    """The generated data of `seed`, made once for the runs that need it (the parent and candidate of
    a paired check draw the same seed side by side; the second waits for the first's). The runs only
    read it: rows are copied out, probe futures drawn with each run's own generator."""
    with _draw_lock:
        hit = _drawn.get((config, seed))
        if hit is None:
            hit = _drawn[(config, seed)] = draw(config, seed, key)
            while len(_drawn) > DRAWN_KEPT:
                _drawn.popitem(last=False)
        _drawn.move_to_end((config, seed))
        return hit


@dataclass(frozen=True)
class RunResult:
    status: str  # "ok" | "invalid" | "cheat"
    reason: str  # "" when ok, else a slug
    detail: str  # human text: the failure, the tail of the script's output
    val_bpb: float | None
    floor_bpb: float | None
    tokens: int
    train_s: float
    wall_s: float
    params: int
    startup_s: float = 0.0  # start until the script was imported (worker start, torch import, data draw)
    eval_s: float = 0.0  # the evaluation calls and scoring
    cpu_s: float = 0.0  # CPU time of the trainer's whole process tree, from torch imported to training done

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.train_s if self.train_s > 0 else 0.0


class _Fail(Exception):  # noqa: N818 - internal control flow: a verdict on the script
    def __init__(self, status: str, reason: str, detail: str = "") -> None:
        super().__init__(reason)
        self.status, self.reason, self.detail = status, reason, detail


def worker_argv(script_name: str, cmd_fd: int, resp_fd: int) -> list[str]:
    return [sys.executable, "-B", "-s", "-m", "model.harness.worker",
            "--script", script_name, "--cmd-fd", str(cmd_fd), "--resp-fd", str(resp_fd)]


def readable_paths() -> list[Path]:
    """What the worker must be able to read: this package's source and the interpreter's trees."""
    import site

    paths = {MODEL_DIR, Path(sys.prefix), Path(sys.base_prefix), Path(sys.exec_prefix)}
    paths.update(Path(p) for p in site.getsitepackages())
    return sorted(p.resolve() for p in paths if p.exists())


def worker_env(workdir: Path) -> dict[str, str]:
    # No OMP_NUM_THREADS: measured here, setting it halves torch's CPU speed
    # (OpenMP's wait policy changes); the worker calls torch.set_num_threads.
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(PROJECT_ROOT),
            "HOME": str(workdir), "TMPDIR": str(workdir), "PYTHONHASHSEED": "0",
            "PYTHONDONTWRITEBYTECODE": "1", "LANG": "C.UTF-8"}


def run_script(script: bytes, config: HarnessConfig, seed: int, *, launcher: Launcher | None = None,
               threads: int = 2, progress: Callable[[int, int], None] | None = None,
               tokens: int | None = None, after_train: Callable[[], None] | None = None,
               cancel: Callable[[], bool] | None = None) -> RunResult:
    """Train `script` on the data of `seed` under `config`; never raises for the script's faults.

    `tokens` replaces the budget of a `tokens` or `compute` arena (the token
    count of the run's compute class, verify.compute); `after_train` is called
    once training ended and before the CPU time is read and evaluation starts
    (a paired check waits there for the other run: verify.check); `cancel`,
    polled at every batch, ends the run early as invalid:cancelled.
    """
    if tokens is not None and config.budget_kind == "seconds":
        raise ValueError("a token count applies to a tokens or compute budget, not seconds")
    start = time.monotonic()
    key = source_key(config, seed)
    ready: Data | None = None
    if config.source == "text":
        ready = draw(config, seed, key)  # a missing or corrupt file surfaces before any process starts

    def data() -> Data:
        # Generated while the worker imports torch: the two overlap on separate cores.
        return ready if ready is not None else drawn(config, seed, key)

    with tempfile.TemporaryDirectory(prefix="ratchet-run-") as tmp:
        run = _Run(config, key, data, launcher or DirectLauncher(), threads, progress, start,
                   Path(tmp), script)
        run.token_budget = tokens if tokens is not None else config.budget_value
        run.after_train, run.cancel = after_train, cancel
        return run.execute()


class _Worker:
    """One worker process (the trainer, or the fresh evaluator) and the parent's ends of its pipes."""

    def __init__(self, launcher: Launcher, root: Path, name: str, script: bytes, extra: list[str]) -> None:
        self.workdir = root / name
        self.workdir.mkdir()
        (self.workdir / "train.py").write_bytes(script)
        self.log_path = root / f"{name}.log"
        cmd_r, self.cmd = os.pipe()
        self.resp, resp_w = os.pipe()
        try:
            argv = launcher.wrap(worker_argv("train.py", cmd_r, resp_w) + extra, workdir=self.workdir,
                                 readable=readable_paths())
            with open(self.log_path, "wb") as log:
                self.proc = subprocess.Popen(
                    argv, cwd=self.workdir, env=worker_env(self.workdir), stdin=subprocess.DEVNULL,
                    stdout=log, stderr=subprocess.STDOUT, pass_fds=(cmd_r, resp_w),
                    preexec_fn=launcher.preexec, start_new_session=True)
        except BaseException:
            for fd in (self.cmd, self.resp):
                os.close(fd)
            raise
        finally:
            os.close(cmd_r)
            os.close(resp_w)
        os.set_blocking(self.cmd, False)
        os.set_blocking(self.resp, False)

    def close(self) -> None:
        _kill(self.proc)
        for fd in (self.cmd, self.resp):
            try:
                os.close(fd)
            except OSError:
                pass


class _Run:
    def __init__(self, config: HarnessConfig, key: bytes, data: Callable[[], Data], launcher: Launcher,
                 threads: int, progress: Callable[[int, int], None] | None, start: float, root: Path,
                 script: bytes) -> None:
        self.c, self.key, self._draw, self.launcher = config, key, data, launcher
        self._data: Data | None = None
        self.threads, self.progress, self.start = threads, progress, start
        self.root, self.script = root, script
        self.deadline = start + config.wall_cap_s
        self.tokens, self.params = 0, 0
        self.model = b""
        self.train_start: float | None = None
        self.train_end: float | None = None
        self.ready_at: float | None = None
        self.eval_end: float | None = None
        self.workers: list[_Worker] = []
        self.futures: dict[int, np.ndarray] = {}  # the lookahead rows' drawn futures (evaluate.draw_futures)
        self.token_budget = config.budget_value
        self.after_train: Callable[[], None] | None = None
        self.cancel: Callable[[], bool] | None = None
        self.clock: TreeClock | None = None
        self.cpu_s = 0.0
        self.current: _Worker | None = None  # the worker being talked to (whose death a failure is)
        seed = int.from_bytes(rng.subkey(key, "batches"), "little")
        self.batches = np.random.Generator(np.random.PCG64(seed))

    def execute(self) -> RunResult:
        try:
            try:
                val_bpb = self._protocol()
            except _Fail as f:
                return self._result(f.status, f.reason, f.detail, None)
            except wire.Deadline:
                return self._result("invalid", "timeout", f"ran past the wall-clock cap of {self.c.wall_cap_s:g} s",
                                    None)
            except wire.PeerClosed:
                return self._result("invalid", "crashed", self._death(), None)
            except wire.WireError as e:
                return self._result("invalid", "protocol_error", e.what, None)
            except EvalFailure as e:
                return self._result(e.status, e.reason, e.detail, None)
            if val_bpb > DIVERGED_BPB + 1e-9:  # uniform logits score 8 exactly, up to rounding
                return self._result("invalid", "diverged", f"val_bpb {val_bpb:.3f} is worse than uniform", val_bpb)
            return self._result("ok", "", "", val_bpb)
        finally:
            for w in self.workers:
                w.close()

    @property
    def data(self) -> Data:
        if self._data is None:
            raise RuntimeError("data used before it was drawn")
        return self._data

    # -- the conversation ----------------------------------------------------
    def _conf(self) -> bytes:
        conf = {"threads": self.threads, "device": self.c.device, "eval_seq_len": self.c.eval_seq_len,
                "budget_kind": self.c.budget_kind,
                "budget_value": self.c.budget_value if self.c.budget_kind == "seconds" else self.token_budget,
                "init_seed": int.from_bytes(rng.subkey(self.key, "init")[:4], "little")}
        return json.dumps(conf).encode()

    def _spawn(self, name: str, extra: list[str]) -> _Worker:
        w = _Worker(self.launcher, self.root, name, self.script, extra)
        self.workers.append(w)
        self.current = w
        return w

    def _protocol(self) -> float:
        trainer = self._spawn("train", [])
        # The fresh evaluator starts at once: it imports torch on the other core while the
        # trainer imports torch and builds its model, then waits, idle, for the trained model
        # (scripts/bench_arena.py: fixed cost per short run 0.73-0.89x). It sees nothing of
        # the trainer but that model.
        checker = self._spawn("probe", ["--eval"])
        self._configure(checker, time.monotonic() + self.c.startup_timeout_s)
        self.current = trainer
        self._hello(trainer)
        # The probes and their drawn futures depend on the key alone: drawn while the
        # trainer imports the script (scripts/bench_attacks.py measures the cost).
        c = self.c
        scored, probes = schedule(c.eval_rows, c.eval_batch, c.eval_seq_len, self.key, probe_cuts=c.probe_cuts)
        self.futures = draw_futures(probes, c.eval_seq_len, self.data.futures, self.key)
        self._recv(trainer, {wire.REDY: 0})
        self.ready_at = time.monotonic()
        self._train(trainer)
        if self.after_train is not None:
            self.after_train()
        # Charged: everything the trainer's process tree ran from torch imported until now
        # (the script's import, model building, training, any work left running in the background).
        self.cpu_s = self.clock.read() if self.clock is not None else 0.0
        scorer = Scorer.for_probes(self.data.val, c.eval_seq_len, c.tolerance, probes)
        self._calls(trainer, scored, scorer)
        self.current = checker
        self._await_helo(checker, min(time.monotonic() + self.c.startup_timeout_s, self.deadline))
        wire.send_by(checker.cmd, wire.MODB, self.model, self.deadline)
        self.model = b""
        self._recv(checker, {wire.REDY: 0})
        self._calls(checker, probes, scorer)
        scorer.check()
        self.eval_end = time.monotonic()
        return scorer.bpb()

    def _recv(self, w: _Worker, limits: dict[bytes, int]) -> tuple[bytes, bytes]:
        tag, payload = wire.recv_by(w.resp, self.deadline, {**limits, wire.FAIL: wire.MAX_FAIL_BYTES})
        if tag == wire.FAIL:
            slug, _, text = payload.partition(b"\n")
            reason = slug.decode("ascii", "replace")
            if reason not in WORKER_FAILS:
                reason = "script_error"
            raise _Fail("invalid", reason, text.decode("utf-8", "replace"))
        return tag, payload

    def _hello(self, w: _Worker) -> None:
        """Configure the trainer (drawing the data meanwhile) and wait until torch is imported.

        Nothing of the script has run before HELO: a death or hang until then
        is the environment's fault, raised as WorkerStartError, not a verdict.
        """
        deadline = time.monotonic() + self.c.startup_timeout_s
        self._configure(w, deadline)
        self._data = self._draw()
        self._await_helo(w, deadline)
        self.clock = TreeClock(w.proc.pid)
        self.clock.start()
        self._start_send(w, wire.GOGO, b"", deadline)
        # The script's wall-clock cap starts now: a slow interpreter start is not its fault.
        self.deadline = time.monotonic() + self.c.wall_cap_s

    def _configure(self, w: _Worker, deadline: float) -> None:
        self._start_send(w, wire.CONF, self._conf(), deadline)

    def _start_send(self, w: _Worker, tag: bytes, payload: bytes, deadline: float) -> None:
        """A frame sent before the script runs: a worker gone then is the environment's fault."""
        try:
            wire.send_by(w.cmd, tag, payload, deadline)
        except (wire.PeerClosed, wire.Deadline) as e:
            raise WorkerStartError(e.what, _tail(w.log_path)) from e

    def _await_helo(self, w: _Worker, deadline: float) -> None:
        try:
            wire.recv_by(w.resp, deadline, {wire.HELO: 0})
        except (wire.PeerClosed, wire.Deadline) as e:
            raise WorkerStartError(e.what, _tail(w.log_path)) from e

    def _train(self, w: _Worker) -> None:
        c = self.c
        train = self.data.train
        budget_s = c.budget_value if c.budget_kind == "seconds" else None
        limit = self.token_budget
        while True:
            tag, payload = self._recv(w, {wire.NEXT: wire.SHAPE2.size,
                                          wire.MODL: wire.COUNT.size + c.max_model_bytes})
            now = time.monotonic()
            if tag == wire.MODL:
                if len(payload) < wire.COUNT.size:
                    raise wire.WireError("short MODL frame")
                (self.params,) = wire.COUNT.unpack_from(payload)
                self.model = payload[wire.COUNT.size:]
                self.train_end = now
                return
            if len(payload) != wire.SHAPE2.size:
                raise wire.WireError("short NEXT frame")
            b, t = wire.SHAPE2.unpack(payload)
            if not (1 <= t <= c.max_seq_len and 1 <= b and b * t <= c.max_batch_tokens and t + 1 < len(train)):
                raise _Fail("invalid", "bad_batch_request",
                            f"batch ({b}, {t}) outside 1 <= T <= {c.max_seq_len}, B*T <= {c.max_batch_tokens}")
            if self.train_start is None:
                self.train_start = now
            if self.cancel is not None and self.cancel():
                raise _Fail("invalid", "cancelled", "the check no longer needs this run")
            if budget_s is None:
                closed = self.tokens + b * t > limit
            else:
                closed = now - self.train_start >= budget_s
            if closed:
                wire.send_by(w.cmd, wire.STOP, b"", self.deadline)
                continue
            offsets = self.batches.integers(0, len(train) - t - 1, size=b)
            rows = train[offsets[:, None] + np.arange(t + 1)]
            wire.send_by(w.cmd, wire.BTCH, rows.tobytes(), self.deadline)
            self.tokens += b * t
            if self.progress is not None:
                if budget_s is None:
                    self.progress(self.tokens, limit)
                else:
                    self.progress(min(int(now - self.train_start), budget_s), budget_s)

    def _calls(self, w: _Worker, calls: list[CallSpec], scorer: Scorer) -> None:
        c = self.c
        n = c.eval_batch * c.eval_seq_len * VOCAB * 4
        head = wire.SHAPE2.pack(c.eval_batch, c.eval_seq_len)
        for call in calls:
            x = inputs(self.data.val, call, c.eval_seq_len, self.futures)
            wire.send_by(w.cmd, wire.EVAL, head + x.tobytes(), self.deadline)
            _, payload = self._recv(w, {wire.LOGT: wire.SHAPE3.size + n})
            shape = wire.SHAPE3.unpack_from(payload) if len(payload) >= wire.SHAPE3.size else None
            if shape != (c.eval_batch, c.eval_seq_len, VOCAB) or len(payload) != wire.SHAPE3.size + n:
                raise _Fail("invalid", "bad_logits_shape", f"logits frame of shape {shape}, {len(payload)} bytes")
            logits = np.frombuffer(payload, dtype="<f4", offset=wire.SHAPE3.size)
            scorer.add(call, logits.reshape(c.eval_batch, c.eval_seq_len, VOCAB))
        wire.send_by(w.cmd, wire.DONE, b"", self.deadline)

    # -- endings -------------------------------------------------------------
    def _death(self) -> str:
        w = self.current
        if w is None:
            return "no worker"
        try:
            rc = w.proc.wait(timeout=max(0.1, min(5.0, self.deadline - time.monotonic())))
        except subprocess.TimeoutExpired:
            return "the worker closed its pipe but kept running"
        if rc < 0:
            name = signal.Signals(-rc).name if -rc in signal.Signals._value2member_map_ else str(-rc)
            return f"the worker was killed by {name} (a resource limit?)"
        return f"the worker exited with status {rc} before finishing"

    def _result(self, status: str, reason: str, detail: str, val_bpb: float | None) -> RunResult:
        for w in self.workers:
            _kill(w.proc)
        tails = [_tail(w.log_path) for w in self.workers]
        if status == "ok" or self.current is self.workers[0]:
            tails = tails[:1]  # the trainer's output; the evaluator's only when it failed
        text = "\n".join(x for x in (detail.strip(), *tails) if x)
        end = self.train_end or time.monotonic()
        train_s = end - self.train_start if self.train_start is not None else 0.0
        floor = self._data.floor_bpb if self._data is not None else None
        startup = (self.ready_at or self.start) - self.start
        evals = self.eval_end - self.train_end if self.eval_end and self.train_end else 0.0
        cpu = self.cpu_s or (self.clock.last - (self.clock.base or 0.0) if self.clock is not None else 0.0)
        return RunResult(status, reason, text[-DETAIL_CHARS:], val_bpb, floor, self.tokens, train_s,
                         time.monotonic() - self.start, int(self.params), startup, evals, cpu)


def _kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


def _tail(path: Path, limit: int = 2000) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - limit))
            return f.read().decode("utf-8", "replace").strip()
    except OSError:
        return ""

