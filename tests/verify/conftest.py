"""Fixtures for verify tests: a small tiny-arena (seconds per run), a verifier key, a shared parent cache."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from chain.keys import SigningKey
from chain.seeds import derive_seeds

HOSTILE = Path(__file__).resolve().parent / "hostile"
# The tiny arena shrunk to a few seconds of training per run. The margin is wider than
# tiny's: at this budget neutral perturbations move val_bpb by up to ~0.006 (measured).
SMALL = {"budget_kind": "tokens", "budget_value": "60000", "wall_cap_s": "600", "train_bytes": "131072", "words": "128",
         "topics": "3", "eval_seq_len": "64", "eval_batch": "16", "eval_rows": "80", "probe_cuts": "1", "seeds": "3",
         "margin_ubpb": "20000"}
# Seeds as a verifier draws them (31 bits from a signature): small ones an author could guess.
SEEDS = derive_seeds(b"verify-tests", 3)


def small_arena(key: SigningKey, **changes: str):
    from model.arenas import build_arena

    arena, blob = build_arena("tiny", key, [key.public], 1, overrides={**SMALL, **changes},
                              created_at_ms=1_700_000_000_000)
    return arena, blob


def hostile(name: str, **subs: str) -> bytes:
    text = (HOSTILE / name).read_text()
    for k, v in subs.items():
        text = text.replace(f"__{k.upper()}__", v)
    return text.encode()


TAG = "ratchet-test-" + uuid.uuid4().hex[:12]


def worker_pids() -> set[int]:
    """This session's worker processes (tagged by TaggedLauncher; others' tests run alongside)."""
    out = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmd = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            if TAG.encode() in cmd:
                out.add(int(entry))
    return out


@pytest.fixture(scope="session")
def verifier_key() -> SigningKey:
    return SigningKey.generate()


@pytest.fixture(scope="session")
def arena_and_ref(verifier_key):
    return small_arena(verifier_key)


@pytest.fixture(scope="session")
def parent_cache() -> dict:
    return {}


@pytest.fixture(scope="session")
def test_launcher():
    """The sandbox with limits small enough for a shared test machine."""
    from verify.sandbox import Limits

    return TaggedLauncher(Limits(memory_bytes=2 << 30, tmpfs_bytes=256 << 20,
                                 max_file_bytes=128 << 20))


def _tagged_launcher_class():
    from verify.sandbox import BubblewrapLauncher

    class Tagged(BubblewrapLauncher):
        """The sandbox, with the worker's command line tagged (python -X) so tests can find it."""

        def wrap(self, argv, *, workdir, readable):
            return super().wrap([argv[0], "-X", f"tag={TAG}", *argv[1:]], workdir=workdir,
                                readable=readable)

    return Tagged


def TaggedLauncher(limits=None):  # noqa: N802 - a class factory used like a class
    return _tagged_launcher_class()(limits)
