"""Dependency direction: the chain package imports nothing heavy (docs/ARCHITECTURE.md, "Which package may import which")."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys

import chain

FORBIDDEN = ("torch", "libp2p", "aiohttp", "trio")


def test_importing_chain_pulls_in_no_heavy_dependency() -> None:
    modules = ["chain"] + [f"chain.{m.name}" for m in pkgutil.iter_modules(chain.__path__)]
    assert {"chain.store", "chain.consensus", "chain.credit", "chain.objects"} <= set(modules)
    code = (
        "import importlib, json, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    loaded = json.loads(out.stdout)
    assert "chain.store" in loaded
    bad = sorted(m for m in loaded if m.split(".")[0] in FORBIDDEN)
    assert bad == [], f"importing chain loaded {bad}"
