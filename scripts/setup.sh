# Sourced by scripts/test.sh and scripts/demo.sh: installs what Ratchet needs.
VENV="${RATCHET_VENV:-$PWD/.venv}"

ensure_system_packages() {
    local missing=()
    for pkg in "$@"; do
        case "$pkg" in
            bubblewrap) command -v bwrap >/dev/null 2>&1 || missing+=(bubblewrap) ;;
            chromium) command -v chromium >/dev/null 2>&1 || missing+=(chromium) ;;
            iproute2) command -v ip >/dev/null 2>&1 || missing+=(iproute2) ;;
            *) dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg") ;;
        esac
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        echo "installing system packages: ${missing[*]}" >&2
        local sudo=""
        [ "$(id -u)" -ne 0 ] && sudo="sudo"
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}

ensure_venv() {
    if [ ! -x "$VENV/bin/python" ]; then
        echo "creating venv in $VENV" >&2
        python3 -m venv "$VENV"
    fi
    local stamp="$VENV/.ratchet-installed"
    if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
        echo "installing Ratchet and its dependencies into $VENV" >&2
        # torch first, pinned, so the CPU wheel is used and no CUDA packages are pulled.
        "$VENV/bin/pip" install -q "torch==2.13.0" 2>&1 | grep -v "is ignored" >&2 || true
        "$VENV/bin/pip" install -q -e ".[test]" 2>&1 | grep -v "is ignored" >&2 || true
        "$VENV/bin/python" -c "import torch, libp2p, optuna, chain" || { echo "venv install failed" >&2; return 1; }
        touch "$stamp"
    fi
}
