"""The untrusted side: imports the submitted script, trains it on the feed, answers evaluation.

Runs as its own process (`python -m model.harness.worker --script train.py
--cmd-fd N --resp-fd M`), possibly inside a sandbox. It needs only the script
file, the interpreter with torch and numpy, this package's source and the two
inherited pipe ends. Everything it reports is treated by the parent as
untrusted: a script can rewrite this module's objects at will, so nothing here
decides a score. The worker's job is to give an honest script clear failure
reasons (a slug and the tail of the traceback).
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
import os
import sys
import time
import traceback
from typing import Any

from model.harness import wire

VOCAB = 256


class Feed:
    """What the script sees of the data: batches of the shape it asks for, until the budget is spent.

    batch(B, T) returns (x, y), int64 tensors of shape (B, T) on `device`,
    y being x shifted by one byte, or None once the feed has closed.
    """

    def __init__(self, fds: tuple[int, int], conf: dict[str, Any], torch: Any) -> None:
        self._cmd, self._resp = fds
        self._torch = torch
        self.vocab_size: int = VOCAB
        self.eval_seq_len: int = int(conf["eval_seq_len"])
        self.device: str = str(conf["device"])
        self.budget_kind: str = str(conf["budget_kind"])
        self.budget_value: int = int(conf["budget_value"])
        self.tokens_seen = 0
        self.closed = False
        self._start: float | None = None
        self._pending: tuple[int, int] | None = None

    @property
    def budget_tokens(self) -> int | None:
        return None if self.budget_kind == "seconds" else self.budget_value

    def progress(self) -> float:
        """Fraction of the budget spent so far (tokens, or seconds since the first batch)."""
        if self.closed:
            return 1.0
        if self.budget_kind != "seconds":
            return min(1.0, self.tokens_seen / self.budget_value)
        if self._start is None:
            return 0.0
        return min(1.0, (time.monotonic() - self._start) / self.budget_value)

    def batch(self, batch_size: int, seq_len: int) -> tuple[Any, Any] | None:
        if self.closed:
            return None
        b, t = int(batch_size), int(seq_len)
        if b < 1 or t < 1:
            raise ValueError(f"batch shape must be positive, got ({b}, {t})")
        if self._start is None:
            self._start = time.monotonic()
        if self._pending != (b, t):
            self.drain()  # a prefetched batch of another shape is dropped (it was counted)
            if self.closed:
                return None
            wire.send(self._resp, wire.NEXT, wire.SHAPE2.pack(b, t))
        self._pending = None
        tag, payload = wire.recv(self._cmd)
        if tag == wire.STOP:
            self.closed = True
            return None
        if tag != wire.BTCH or len(payload) != b * (t + 1):
            raise RuntimeError(f"harness protocol: unexpected {tag!r} of {len(payload)} bytes")
        # Ask for the next batch now, so the parent prepares it while this one trains.
        wire.send(self._resp, wire.NEXT, wire.SHAPE2.pack(b, t))
        self._pending = (b, t)
        torch = self._torch
        rows = torch.frombuffer(bytearray(payload), dtype=torch.uint8).view(b, t + 1).long()
        if self.device != "cpu":
            rows = rows.to(self.device, non_blocking=True)
        self.tokens_seen += b * t
        return rows[:, :-1], rows[:, 1:]

    def drain(self) -> None:
        """Read the answer to an outstanding prefetch request, if any."""
        if self._pending is None:
            return
        self._pending = None
        tag, _ = wire.recv(self._cmd)
        if tag == wire.STOP:
            self.closed = True


def fail(fd: int, slug: str, text: str) -> None:
    data = (slug.encode() + b"\n" + text.encode("utf-8", "replace"))[: wire.MAX_FAIL_BYTES]
    wire.send(fd, wire.FAIL, data)


def tail_traceback(limit: int = 4000) -> str:
    return "".join(traceback.format_exc())[-limit:]


def load_script(path: str) -> Any:
    spec = importlib.util.spec_from_file_location("train", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules["train"] = module
    spec.loader.exec_module(module)
    return module


def count_params(model: Any, torch: Any) -> int:
    if isinstance(model, torch.nn.Module):
        return sum(int(p.numel()) for p in model.parameters())
    return 0


def evaluate(cmd: int, resp: int, model: Any, feed: Feed, torch: Any) -> None:
    """Answer EVAL frames with logits until DONE."""
    if isinstance(model, torch.nn.Module):
        model.eval()
    while True:
        tag, payload = wire.recv(cmd)
        if tag == wire.DONE:
            return
        b, t = wire.SHAPE2.unpack_from(payload)
        x = torch.frombuffer(bytearray(payload[wire.SHAPE2.size:]), dtype=torch.uint8)
        x = x.view(b, t).long().to(feed.device)
        try:
            with torch.no_grad():
                out = model(x)
        except Exception:  # the script's model failed: report it, the parent decides
            fail(resp, "eval_error", tail_traceback())
            return
        if not isinstance(out, torch.Tensor):
            fail(resp, "bad_logits_shape", f"model(x) returned {type(out).__name__}, not a tensor")
            return
        if tuple(out.shape) != (b, t, VOCAB):
            fail(resp, "bad_logits_shape", f"logits of shape {tuple(out.shape)}, expected {(b, t, VOCAB)}")
            return
        arr = out.detach().to("cpu", torch.float32).contiguous().numpy()
        wire.send(resp, wire.LOGT, wire.SHAPE3.pack(b, t, VOCAB) + arr.astype("<f4", copy=False).tobytes())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="model.harness.worker")
    ap.add_argument("--script", required=True)
    ap.add_argument("--cmd-fd", type=int, required=True)
    ap.add_argument("--resp-fd", type=int, required=True)
    ap.add_argument("--eval", action="store_true", help="a fresh evaluation worker: load the model, answer probes")
    args = ap.parse_args(argv)
    cmd, resp = args.cmd_fd, args.resp_fd
    tag, payload = wire.recv(cmd)
    if tag != wire.CONF:
        return 2
    conf = json.loads(payload)
    import torch

    torch.set_num_threads(int(conf["threads"]))
    torch.manual_seed(int(conf["init_seed"]))
    wire.send(resp, wire.HELO)
    if args.eval:
        # Nothing of the script runs here before the trained model arrives: the fresh evaluator's
        # CPU time is not charged to the script's compute, so it must stay idle while others train.
        return serve_probes(cmd, resp, args.script, conf, torch)
    # Nothing of the script runs until the parent has read the CPU clock's base: its
    # import-time work is charged, however late a loaded parent reads the clock.
    tag, _ = wire.recv(cmd)
    if tag != wire.GOGO:
        return 2
    try:
        source = open(args.script, "rb").read()
        compile(source, "train.py", "exec")
    except SyntaxError:
        fail(resp, "syntax_error", tail_traceback())
        return 1
    try:
        module = load_script(args.script)
    except BaseException:  # noqa: B036 - any failure while importing the script is its verdict
        fail(resp, "import_error", tail_traceback())
        return 1
    feed = Feed((cmd, resp), conf, torch)
    train = getattr(module, "train", None)
    if not callable(train):
        fail(resp, "missing_train", "the script defines no train(feed) function")
        return 1
    wire.send(resp, wire.REDY)
    try:
        model = train(feed)
    except MemoryError:
        fail(resp, "out_of_memory", tail_traceback())
        return 1
    except BaseException:  # noqa: B036 - SystemExit and friends from the script are failures too
        fail(resp, "script_error", tail_traceback())
        return 1
    if not isinstance(model, torch.nn.Module):
        fail(resp, "wrong_return", f"train(feed) returned {type(model).__name__}, not a torch.nn.Module")
        return 1
    feed.drain()
    buf = io.BytesIO()
    try:
        torch.save(model, buf)
    except Exception:  # the model's own objects refuse to pickle: its verdict
        fail(resp, "unpicklable_model", "the model must pickle with torch.save (classes at the top level "
             "of the script, no lambdas or open files):\n" + tail_traceback())
        return 1
    sys.stdout.flush()
    wire.send(resp, wire.MODL, wire.COUNT.pack(count_params(model, torch)) + buf.getvalue())
    del buf
    evaluate(cmd, resp, model, feed, torch)
    sys.stdout.flush()
    return 0


def serve_probes(cmd: int, resp: int, script: str, conf: dict[str, Any], torch: Any) -> int:
    """The fresh worker: the trained model arrives as bytes, then the script is imported (its
    classes unpickle the model) and it answers evaluation calls."""
    tag, payload = wire.recv(cmd)
    if tag != wire.MODB:
        return 2
    try:
        load_script(script)
    except BaseException:  # noqa: B036 - the trainer imported it already; a failure here is its verdict
        fail(resp, "import_error", tail_traceback())
        return 1
    feed = Feed((cmd, resp), conf, torch)
    try:
        model = torch.load(io.BytesIO(payload), map_location=feed.device, weights_only=False)
    except Exception:  # the script's pickled objects fail to load: its verdict
        fail(resp, "unpicklable_model", "the model did not load in a fresh worker:\n" + tail_traceback())
        return 1
    del payload
    wire.send(resp, wire.REDY)
    evaluate(cmd, resp, model, feed, torch)
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
