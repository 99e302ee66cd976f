#!/usr/bin/env bash
# The by-hand network check: a relay, three verifiers and `ratchet propose`, each its own process
# (as if in separate terminals), on loopback, with real sandboxed checks on the `tiny` arena at a
# reduced budget (60,000 tokens per run). Prints how long the hand-made change took to be accepted.
#   bash scripts/hand_run.sh [DIR] [PORT]      (default /tmp/ratchet-hand-run, 4101)
set -u
cd "$(dirname "$0")/.."
R="$PWD/.venv/bin/ratchet"
D=${1:-/tmp/ratchet-hand-run}; PORT=${2:-4101}
rm -rf "$D"; mkdir -p "$D"
trap 'kill -TERM $(jobs -p) 2>/dev/null; wait' EXIT
T0=$(date +%s)
for h in relay v1 v2 v3 alice; do "$R" --home "$D/$h" keys new >/dev/null; done
K() { "$R" --home "$D/$1" --json keys show | python3 -c 'import json,sys; print(json.load(sys.stdin)["public_key"])'; }
"$R" --home "$D/relay" arena init tiny --verifier "$(K v1)" --verifier "$(K v2)" --verifier "$(K v3)" \
    --quorum 2 --set budget_value=60000
"$R" --home "$D/relay" node --listen 127.0.0.1 --port "$PORT" > "$D/relay.out" 2>&1 &
ADDR=""
for _ in $(seq 1 60); do
  ADDR=$(grep -o "/ip4/127.0.0.1/tcp/$PORT/p2p/[A-Za-z0-9]*" "$D/relay.out" | head -1)
  [ -n "$ADDR" ] && break; sleep 1
done
[ -n "$ADDR" ] || { echo "the relay did not start; see $D/relay.out" >&2; exit 1; }
echo "relay: $ADDR"
for v in v1 v2 v3; do
  "$R" --home "$D/$v" verify --listen 127.0.0.1 --port 0 --bootstrap "$ADDR" --threads 1 > "$D/$v.out" 2>&1 &
done
sed 's/^SEQ_LEN = 128 /SEQ_LEN = 64 /' model/scripts/tiny.py > "$D/train.py"
sleep 5
"$R" --home "$D/alice" propose "$D/train.py" -m "shorter sequences: more steps in the same token budget" \
    --bootstrap "$ADDR" --wait 60
T1=$(date +%s)
H=0
for _ in $(seq 1 120); do
  H=$("$R" --home "$D/relay" --json status | python3 -c 'import json,sys; print(json.load(sys.stdin)["arenas"][0]["accepted"])')
  [ "$H" = "1" ] && break
  sleep 5
done
T2=$(date +%s)
echo "accepted=$H proposed_after=$((T1 - T0))s accepted_after=$((T2 - T0))s"
"$R" --home "$D/relay" log -n 1
[ "$H" = "1" ]
