"""The harness: runs an untrusted training script in its own process and scores it.

THE SCRIPT <-> HARNESS CONTRACT (the one place it is written down)

A training script is one Python file. Importing it must do no work beyond
definitions. It defines

    def train(feed) -> model

and the harness calls it once, in a separate worker process
(model.harness.worker), with torch's default generator already seeded and the
thread count set. `feed` is the script's only source of data:

    feed.batch(B, T) -> (x, y) | None   int64 tensors (B, T) on feed.device;
                                        y[:, i] == x[:, i + 1 in the text];
                                        None once the budget is spent (the
                                        feed closes; it never reopens)
    feed.progress() -> float            fraction of the budget spent (for schedules)
    feed.budget_kind, feed.budget_value, feed.budget_tokens (None for seconds)
    feed.vocab_size (256: bytes), feed.eval_seq_len, feed.device, feed.tokens_seen

The script chooses the batch shape (B * T at most config.max_batch_tokens);
every token it is handed counts against a `tokens` budget; under a `seconds`
budget the feed closes at the deadline counted from the first batch. Under a
`compute` budget the feed closes after feed.budget_tokens tokens, the count
of the run's compute class, which the verifier chose from the CPU time this
script's process tree used against its parent's (verify/compute.py): a
script that trains faster per token may be given more tokens, one that
spends more per token fewer. That CPU time (threads and child processes
included) is charged from torch imported until training ended; nothing the
script prints counts. A hard wall-clock cap, counted from the moment the
worker has imported torch, kills the worker's whole process group.

`train` returns the model: a callable (usually an nn.Module, put in eval
mode by the harness) mapping int64 inputs (B, T) on feed.device to float
logits (B, T, 256) for the next byte at every position. It is called under
torch.no_grad() on validation inputs only, in batches of eval_batch rows of
eval_seq_len bytes. The model must be causal (position t may depend on
inputs <= t only), treat rows independently and keep no state between calls.
The harness checks all three on probe calls answered by a fresh worker that
loaded the trained model and compares them with the trainer's answers: a
scored batch sent twice; exact copies of scored rows next to other
companions; and lookahead rows. For every position p in 0 .. eval_seq_len-2,
`probe_cuts` distinct validation rows keep their bytes up to p and get a
future drawn from the source given everything before (tinylang: an exact
conditional draw; file-backed text: spliced from held-out text where the
same word prefix occurs), so a lookahead row looks like any other. Any
difference at positions <= p is peeks_future: a model that reads a later byte
anywhere, even at one position of every row, or two bytes ahead, is caught
unless every drawn future agrees with the real one where it reads
(evaluate.py; measured rates in BENCHMARKS.md, "Lookahead attacks").

Everything that decides the score (the data, the budget, the evaluation,
the metric) is the harness's: the parent process generates the data from the
seed, holds the validation targets, and computes val_bpb from the returned
logits. The worker is told nothing of the seed. Printing is free (stdout and
stderr go to a log whose tail is the run's detail); a `key: value` summary at
the end of train() is the convention.

Verdicts: RunResult.status "ok", "invalid" (syntax_error, import_error,
missing_train, script_error, out_of_memory, wrong_return, eval_error,
bad_logits_shape, nonfinite_logits, bad_batch_request, timeout, crashed,
protocol_error, diverged) or "cheat" (peeks_future, batch_mixing,
stateful_eval).

Modules: config (HarnessConfig), launch (Launcher, DirectLauncher), run
(run_script, RunResult), wire (the pipe protocol), worker (the untrusted
side), evaluate (probe schedule, checks, scoring).
"""

from __future__ import annotations

from typing import Any

from model.harness.config import HARNESS_VERSION, HarnessConfig
from model.harness.launch import DirectLauncher, Launcher

__all__ = ["HARNESS_VERSION", "DirectLauncher", "HarnessConfig", "Launcher", "RunResult", "run_script"]


def __getattr__(name: str) -> Any:
    # run_script and RunResult load numpy and the data sources; the worker imports
    # this package too and needs none of that, so they load on first use.
    if name in ("run_script", "RunResult"):
        from model.harness import run

        return getattr(run, name)
    raise AttributeError(name)
