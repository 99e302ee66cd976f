#!/usr/bin/env bash
# Runs Ratchet's test suite on a fresh machine: installs what the tests need
# (bubblewrap, Debian's chromium, iproute2 for the network-namespace test, a venv with torch==2.13.0 and the project),
# then runs pytest. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
ensure_system_packages bubblewrap chromium iproute2
ensure_venv
set +e
"$VENV/bin/python" -m pytest -q -p no:cacheprovider "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
    echo "pytest collected no tests: that is a failure" >&2
    exit 1
fi
exit "$rc"
