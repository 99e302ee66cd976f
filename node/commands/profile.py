"""`ratchet profile set|show`: the name, team and URL a key goes by (a signed Profile object).

`set` signs a new profile with this node's key and stores it; a node running on
the same data directory gossips it (as `ratchet propose` hands it proposals),
else it spreads when one runs there. Names prove nothing: `show` prints the key
beside the name and says when another key's name looks the same.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from node.context import Context
from node.render import short, when

if TYPE_CHECKING:
    from chain.objects import Profile
    from chain.profiles import LookAlikes

MIN_PREFIX = 8


@click.group()
def profile() -> None:
    """Set or show the display name, team and URL of a key."""


@profile.command("set")
@click.option("--name", required=True, help="Display name (1 to 40 characters).")
@click.option("--team", default=None, help="Team name (up to 40 characters; \"\" for none; default: keep).")
@click.option("--url", default=None, help="An http(s) URL (\"\" for none; default: keep).")
@click.option("--wait", "wait_s", type=click.FloatRange(0), default=10.0, show_default=True,
              help="Seconds to wait for a node running on this data directory to publish it.")
@click.pass_obj
def profile_set(ctx: Context, name: str, team: str | None, url: str | None, wait_s: float) -> None:
    """Sign a new profile of this node's key and publish it."""
    from chain.errors import ChainError
    from chain.profiles import sign_profile
    from node.commands.keys import load_key
    from node.p2p.statusfile import local_node, wait_for

    key = load_key(ctx)
    store = ctx.store()
    previous = store.current_profiles().get(key.public)
    team = team if team is not None else (previous.team if previous else "")
    url = url if url is not None else (previous.url if previous else "")
    try:
        new = sign_profile(key, name, team, url, previous=previous)
    except ChainError as e:
        raise click.ClickException(f"profile not set: {e}") from e
    if previous is not None and (new.name, new.team, new.url) == (previous.name, previous.team, previous.url):
        ctx.emit({**profile_dict(previous, store.current_profiles()), "changed": False, "via": None, "confirmed_by": []},
                 f"unchanged: {_line(previous)}")
        return
    node = local_node(ctx.home)
    before = node.get("counters", {}).get("published", 0) if node else 0
    store.add(new)
    result: dict[str, Any] = {**profile_dict(new, store.current_profiles()), "changed": True,
                              "via": "local-node" if node else None, "confirmed_by": []}
    if node is None:
        ctx.emit(result, f"set {_line(new)}\nstored in {ctx.home}; no node runs on this data directory, so it "
                         "spreads when one does (ratchet node, verify or contribute)")
        return
    if wait_for(ctx.home, lambda s: s.get("counters", {}).get("published", 0) > before, wait_s):
        result["confirmed_by"] = ["local-node"]
    said = "published" if result["confirmed_by"] else f"stored; not yet published after {wait_s:.0f}s"
    ctx.emit(result, f"set {_line(new)}\n{said} by the local node (pid {node['pid']})")


@profile.command("show")
@click.argument("key_hex", metavar="[KEY]", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the profile as JSON.")
@click.pass_obj
def profile_show(ctx: Context, key_hex: str | None, as_json: bool) -> None:
    """Show the profile of KEY (a public key, or a prefix of 8+ hex characters; default: this node's)."""
    store = ctx.store()
    profiles = store.current_profiles()
    if key_hex is None:
        from node.commands.keys import load_key

        owner = load_key(ctx).public
    else:
        owner = _resolve(key_hex, profiles)
    p = profiles.get(owner)
    if p is None:
        hint = " (set one with `ratchet profile set --name NAME`)" if key_hex is None else ""
        raise click.ClickException(f"key {owner.hex()} has no profile in this store{hint}")
    data = profile_dict(p, profiles)
    if as_json:
        ctx.as_json = True
    ctx.emit(data, profile_text(data))


def profile_dict(p: Profile, profiles: dict[bytes, Profile]) -> dict[str, Any]:
    """A profile as `show` prints it, with the keys (among `profiles`, the current ones) whose names
    look like its name."""
    from chain.profiles import look_alikes, team_id

    found: LookAlikes = look_alikes(profiles)
    return {
        "key": p.owner.hex(), "name": p.name, "team": p.team, "team_id": team_id(p.team) if p.team else None,
        "url": p.url, "timestamp": p.timestamp, "id": p.hex,
        "name_looks_like": [k.hex() for k in found.names.get(p.owner, ())],
        "team_looks_like": list(found.teams.get(p.team, ())),
    }


def _resolve(text: str, profiles: dict[bytes, Profile]) -> bytes:
    prefix = text.strip().lower()
    if len(prefix) < MIN_PREFIX or len(prefix) > 64 or any(c not in "0123456789abcdef" for c in prefix):
        raise click.BadParameter(f"{text[:70]!r}: give a public key as hex, at least {MIN_PREFIX} characters",
                                 param_hint="KEY")
    if len(prefix) == 64:
        return bytes.fromhex(prefix)
    found = [k for k in profiles if k.hex().startswith(prefix)]
    if not found:
        raise click.ClickException(f"no key with a profile starts with {prefix}")
    if len(found) > 1:
        raise click.ClickException(f"{len(found)} keys with a profile start with {prefix}: give more characters")
    return found[0]


def _line(p: Profile) -> str:
    team = f", team {p.team!r}" if p.team else ""
    return f"{p.name!r} (key {short(p.owner)}){team}"


def profile_text(d: dict[str, Any]) -> str:
    """profile_dict's result as lines of text."""
    lines = [f"key:      {d['key']}", f"name:     {d['name']}  (key {short(d['key'])})"]
    if d["team"]:
        lines.append(f"team:     {d['team']}  (team {d['team_id']})")
    if d["url"]:
        lines.append(f"url:      {d['url']}")
    lines += [f"updated:  {when(d['timestamp'])}", f"profile:  {d['id']}"]
    if d["name_looks_like"]:
        others = ", ".join(short(k) for k in d["name_looks_like"])
        lines.append(f"warning:  this name looks like the name of key {others}: names prove nothing, keys do")
    if d["team_looks_like"]:
        lines.append(f"warning:  this team's name looks like {', '.join(map(repr, d['team_looks_like']))}")
    return "\n".join(lines)
