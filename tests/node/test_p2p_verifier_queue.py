"""The verifier's queue order, the scripted checks, and the CLI's answers without a running node."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from chain.builders import key, make_arena, make_attestation, make_proposal
from chain.store import Store
from node.cli import main
from node.roles.fakecheck import liar, requested_verdict, scripted
from node.roles.verifier import pending_checks


def test_queue_puts_decidable_and_nearly_decided_proposals_first(tmp_path: Path) -> None:
    me, v2, v3 = key(1), key(2), key(3)
    arena, ref = make_arena(key(0), [me.public, v2.public, v3.public], quorum=2)
    with Store.open(tmp_path) as store:
        store.add(arena)
        store.add(ref)

        def prop(parent: bytes, name: str, ts: int, with_blob: bool = True):  # type: ignore[no-untyped-def]
            p, b = make_proposal(key(10), arena, parent, message=name, timestamp=ts)
            if with_blob:
                store.add(b)
            store.add(p)
            return p

        p1 = prop(arena.id, "p1", 1)
        p2 = prop(arena.id, "p2", 2)
        store.add(make_attestation(v2, p2))  # one improves vote: closest to quorum
        prop(p1.id, "p3", 3)  # parent still pending
        p4 = prop(arena.id, "p4", 4)
        store.add(make_attestation(me, p4, "no_gain"))  # already checked by me
        p5 = prop(arena.id, "p5", 5)
        store.add(make_attestation(v2, p5))
        store.add(make_attestation(v3, p5))  # accepted without me
        p7 = prop(arena.id, "p7", 7)
        store.add(make_attestation(v2, p7, "no_gain"))
        store.add(make_attestation(v3, p7, "no_gain"))  # rejected
        prop(p7.id, "p6", 6)  # child of a rejected commit: can never be accepted
        prop(arena.id, "p8", 8, with_blob=False)  # its script has not arrived yet
        assert [p.message for p in pending_checks(store, me)] == ["p2", "p1", "p3"]
        # A key outside the set is a volunteer: it checks what its volunteer ticket gives it, decided or not.
        from chain.seeds import seed_proof
        from chain.sortition import volunteer_chosen

        theirs = [p.message for p in pending_checks(store, key(99))]
        held = {p.message: p for p in store.proposals(arena.id)}
        assert theirs and set(theirs) == {m for m, p in held.items() if m not in ("p6", "p8")
                                         and volunteer_chosen(seed_proof(key(99), p.id))}


def test_scripted_checks_sign_valid_attestations_with_the_named_verdict(tmp_path: Path) -> None:
    arena, ref = make_arena(key(0), [key(1).public], quorum=1)
    p, b = make_proposal(key(10), arena, arena.id, script=b"x = 1\n# verdict: improves\n")
    with Store.open(tmp_path) as store:
        for obj in (arena, ref, b, p):
            store.add(obj)
        honest, lying = scripted(key(1), store, p), liar(key(1), store, p)
        assert (honest.verdict, lying.verdict) == ("improves", "no_gain")
        assert store.add(honest)  # the store validates it like any attestation
    assert requested_verdict(b"nothing") == "no_gain"


def test_propose_without_a_node_or_peers_says_what_to_do(tmp_path: Path) -> None:
    arena, ref = make_arena(key(0), [key(1).public], quorum=1)
    key(10).save(tmp_path / "keys" / "identity.pem")
    with Store.open(tmp_path) as store:
        store.add(arena)
        store.add(ref)
    script = tmp_path / "train.py"
    script.write_text("LR = 1\n")
    runner = CliRunner()
    result = runner.invoke(main, ["--home", str(tmp_path), "propose", str(script), "-m", "x"])
    assert result.exit_code != 0 and "start `ratchet node`" in result.output
    result = runner.invoke(main, ["--home", str(tmp_path), "propose", str(script), "-m", "x",
                                  "--bootstrap", "/ip4/127.0.0.1/tcp/1"])
    assert result.exit_code != 0 and "/p2p/" in result.output
    result = runner.invoke(main, ["--home", str(tmp_path), "status"])
    assert result.exit_code == 0, result.output
    assert "not running" in result.output and "nothing accepted yet" in result.output
    result = runner.invoke(main, ["--home", str(tmp_path), "verify", "--check-with", "no.such:thing"])
    assert result.exit_code != 0 and "cannot load" in result.output
