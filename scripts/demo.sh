#!/usr/bin/env bash
# Runs Ratchet's main job on a fresh machine: installs what it needs (bubblewrap,
# a venv with torch==2.13.0 and Ratchet), then starts `ratchet demo`: a local
# network of separate processes on the `tiny` arena (a contributor running the
# built-in search, three verifiers with a quorum of two, and the leaderboard).
# Extra arguments go to `ratchet demo`. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
ensure_system_packages bubblewrap
ensure_venv
exec "$VENV/bin/ratchet" demo "$@"
