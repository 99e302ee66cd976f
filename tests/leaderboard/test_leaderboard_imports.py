"""Of the project's packages the leaderboard imports chain and journalfile only (docs/ARCHITECTURE.md,
"Which package may import which"): it loads chain, aiohttp and jinja2 and none of torch, numpy, libp2p,
trio, node, verify or model (journalfile, standard library only, is allowed)."""

from __future__ import annotations

import json
import subprocess
import sys


def test_leaderboard_imports_only_chain_journalfile_and_web_libraries() -> None:
    code = (
        "import sys, json; import leaderboard.app, leaderboard.views, leaderboard.server; "
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    top = set(json.loads(out.stdout))
    assert {"leaderboard", "chain", "aiohttp", "jinja2"} <= top
    assert not top & {"torch", "libp2p", "trio", "numpy", "node", "verify", "model"}


def test_shared_state_imports_no_other_leaderboard_module() -> None:
    """state <- live, security, views <- app: the shared state sits at the bottom, so no import circle."""
    code = "import sys, json; import leaderboard.state; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert [m for m in json.loads(out.stdout) if m.startswith("leaderboard")] == ["leaderboard", "leaderboard.state"]
