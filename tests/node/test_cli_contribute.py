"""`ratchet contribute`'s flags: bad input is a usage error before anything starts."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import click
import pytest

from chain.store import Store
from node.commands.contribute import ContributeSettings

CLI = [sys.executable, "-c", "from node.cli import main; main()"]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("flag", ["--bootstrap=garbage", "--bootstrap=/ip4/127.0.0.1/tcp/4001",
                                  "--listen=not-an-address", "--hours=25-3"])
def test_bad_network_flags_are_refused_before_a_node_starts(tmp_path: Path, flag: str) -> None:
    home = tmp_path / "home"
    for args in (["keys", "new"], ["arena", "init", "tiny"]):
        subprocess.run([*CLI, "--home", str(home), *args], check=True, capture_output=True, timeout=60)
    with Store.open(home) as store:
        before = store.counts()
    r = subprocess.run([*CLI, "--home", str(home), "contribute", flag, "--max-experiments", "1"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "Invalid value" in r.stderr and flag.split("=", 1)[0].lstrip("-") in r.stderr
    assert not (home / "logs" / "contribute-node.log").exists()  # no node was started
    with Store.open(home) as store:
        assert store.counts() == before


def test_settings_are_built_and_checked_once_from_the_flags() -> None:
    flags = {"proposer": "search", "agent_cmd": None, "agent_timeout": 60.0, "threads": 1, "gpus": None,
             "seeds": 2, "max_experiments": 1, "max_pending": 2, "overrides": ("wall_cap_s=30", "5000"),
             "niceness": 0, "hours": "22-7", "no_confirm": True, "no_claims": False,
             "unsafe_no_sandbox": False, "search_seed": 3}
    settings = ContributeSettings.from_flags(**flags)
    assert settings.hours == (22, 7) and settings.search_seed == 3 and settings.agent_timeout_s == 60.0
    loop = settings.loop
    assert (loop.seeds, loop.confirm, loop.claims, loop.max_experiments) == (2, False, True, 1)
    assert loop.budget_overrides == {"wall_cap_s": 30, "budget_value": 5000}
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.proposer = "random"  # type: ignore[misc]
    for bad, hint in (({"proposer": "agent"}, "--agent-cmd"), ({"proposer": "guess"}, "--proposer"),
                      ({"hours": "25-3"}, "--hours"), ({"overrides": ("seeds=3",)}, "--budget-override")):
        with pytest.raises(click.BadParameter) as e:
            ContributeSettings.from_flags(**{**flags, **bad})
        assert e.value.param_hint == hint
